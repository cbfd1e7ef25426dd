/* tun2socks.c: the `tun` listener (see tb/tun2socks.h).
 *
 * Packets from the LAN: UDP is parsed here and each flow (client address and
 * port, destination address and port) becomes a datagram association;
 * everything else goes into an lwIP netif (a pool pbuf, then ip_input). On
 * that netif the input hooks (port/lwip/tun2socks_hooks.h) take TCP to any
 * destination: a SYN to port p makes sure a listen PCB for p exists, and
 * lwIP's accept gives a PCB whose local address is the original
 * destination. Each accepted PCB is a tb_stream_t, routed and relayed like a
 * SOCKS5 CONNECT. Packets from lwIP and UDP replies go back to the device.
 *
 * lwIP callbacks never call our owners: they queue (received pbufs stay
 * un-acknowledged in rx, errors become a pending close) and a deferred call
 * hands things over. So an owner may close a stream from any of its
 * callbacks, and lwIP never sees its PCB freed under it. tcp_recved() runs
 * only for bytes the owner took, so a paused stream closes the LAN client's
 * window. A PCB is let go to lwIP (callbacks cleared, tcp_close) as soon as
 * FIN went both ways: lwIP then finishes LAST_ACK or TIME_WAIT and frees it
 * itself; until then lwIP frees it only through the err callback.
 *
 * Sessions (TCP and UDP) are on one LRU list; past max_sessions the least
 * recently active ends (a TCP one with a reset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/inet_chksum.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/sys.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "tb/buf.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb/tun2socks.h"
#include "tb_lwip.h"

#define IP4_HLEN_MIN 20
#define IP6_HLEN_FIX 40
#define UDP_HLEN 8
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_FRAG6 44
#define DNS_PORT 53
#define MTU_MIN 576
#define TX_CHUNK 0xffffu /* tcp_write and tcp_recved take 16-bit lengths */
#define RXBUF_SIZE 32768 /* received segments handed over at once */
/* UDP datagrams that came in fragments: a few at once, 64 KiB each at most,
 * allocated while they are being put together. */
#define FRAG_SLOTS 4
#define FRAG_MAX 65535
#define FRAG_MAP (FRAG_MAX / 64 + 1) /* one bit per 8-byte block */
#define FRAG_TIMEOUT_MS 5000

enum { KIND_TCP, KIND_UDP };

typedef struct frag {
	uint8_t *buf; /* FRAG_MAX bytes of datagram, then FRAG_MAP bytes of map */
	tb_addr_t src, dst; /* addresses only */
	uint32_t id;
	size_t total; /* 0 until the last fragment came */
	size_t got;
	uint64_t start;
} frag_t;

typedef struct sess {
	struct sess *prev, *next; /* LRU: most recent at the head */
	tb_t2s_t *t;
	uint8_t kind;
	bool listed;
	tb_addr_t src, dst; /* the LAN client, the original destination */
	uint64_t last;
} sess_t;

typedef struct tcp_sess {
	sess_t b;
	tb_stream_t s;
	struct tcp_pcb *pcb; /* NULL once dead or let go to lwIP */
	void *open;          /* routing/connecting */
	struct pbuf *rx;     /* received, not yet taken by the owner */
	tb_buf_t tx;         /* written, not yet in lwIP's send buffer */
	tb_defer_t work;
	int err; /* why it died, for the pending on_close */
	uint8_t in_cb;
	bool owned, paused, fin_in, eof_sent, shut_req, shut_done, want_drain, drained_shut;
	bool dead, close_pending, closed, orphan;
} tcp_sess_t;

typedef struct udp_sess {
	sess_t b;
	struct udp_sess *hnext;
	tb_dgram_t *dgram;
	tb_timer_t idle;
	tb_defer_t end;
	uint32_t dns_pending; /* queries to port 53 not yet answered */
	bool ending;
} udp_sess_t;

struct tb_t2s {
	tb_loop_t *loop;
	tb_t2s_env_t env;
	tb_t2s_opts_t o;
	struct netif netif;
	bool netif_added, stopping;
	sess_t *lru_head, *lru_tail;
	size_t ntcp, nudp;
	udp_sess_t **buckets;
	size_t nbuckets; /* a power of two */
	uint8_t *txbuf;  /* one outgoing packet (mtu bytes) */
	uint8_t *rxbuf;  /* RXBUF_SIZE: segments gathered for one hand-over */
	uint16_t ip_id;
	uint32_t frag_id;
	frag_t frags[FRAG_SLOTS];
	tb_t2s_stats_t st;
};

/* lwIP is one stack per process, and so is this: the listen PCBs that catch
 * SYNs, one per destination port in use, shared by every tun listener (the
 * accept callback finds its listener from the netif the SYN came in on). */
static struct {
	struct t2s_port {
		struct tcp_pcb *pcb;
		uint16_t port;
		uint32_t last; /* sys_now() of its last SYN */
	} ports[TB_T2S_LISTEN_MAX];
	unsigned users;
} g;

static err_t t2s_output4(struct netif *n, struct pbuf *p, const ip4_addr_t *ip);
#if LWIP_IPV6
static err_t t2s_output6(struct netif *n, struct pbuf *p, const ip6_addr_t *ip);
#endif
static void sess_end(sess_t *s, int err);

/* ---- checksums and addresses ---- */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	while (n >= 2) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		n -= 2;
		if (sum & 0x80000000u)
			sum = (sum & 0xffff) + (sum >> 16);
	}
	if (n)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t ip_len(const tb_addr_t *a)
{
	return a->family == TB_AF_INET6 ? 16 : 4;
}

/* The pseudo header of RFC 768 / RFC 8200 §8.1. */
static uint32_t csum_pseudo(const tb_addr_t *src, const tb_addr_t *dst, uint8_t proto, size_t len)
{
	uint32_t sum = csum_add(0, src->ip, ip_len(src));

	sum = csum_add(sum, dst->ip, ip_len(dst));
	return sum + proto + (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
}

static bool ip_unicast(const tb_addr_t *a)
{
	static const uint8_t zero[16];

	if (memcmp(a->ip, zero, ip_len(a)) == 0)
		return false;
	if (a->family == TB_AF_INET6)
		return a->ip[0] != 0xff;
	return a->ip[0] < 224 && !(a->ip[0] == 255 && a->ip[1] == 255 && a->ip[2] == 255 && a->ip[3] == 255);
}

static tb_t2s_t *t2s_of_netif(struct netif *n)
{
	if (!n || n->output != t2s_output4)
		return NULL;
	return n->state;
}

/* ---- output to the device ---- */

static void t2s_send(tb_t2s_t *t, const uint8_t *pkt, size_t len)
{
	/* A full device queue drops, like a wire: TCP retransmits. */
	if (t->env.output(t->env.arg, pkt, len) < 0)
		t->st.dropped++;
}

static err_t t2s_send_pbuf(tb_t2s_t *t, struct pbuf *p)
{
	if (p->tot_len > t->o.mtu)
		return ERR_BUF;
	if (p->len == p->tot_len) {
		t2s_send(t, p->payload, p->len);
		return ERR_OK;
	}
	if (pbuf_copy_partial(p, t->txbuf, p->tot_len, 0) != p->tot_len)
		return ERR_BUF;
	t2s_send(t, t->txbuf, p->tot_len);
	return ERR_OK;
}

static err_t t2s_output4(struct netif *n, struct pbuf *p, const ip4_addr_t *ip)
{
	return t2s_send_pbuf(n->state, p);
}

#if LWIP_IPV6
static err_t t2s_output6(struct netif *n, struct pbuf *p, const ip6_addr_t *ip)
{
	return t2s_send_pbuf(n->state, p);
}
#endif

/* ---- UDP toward the LAN, fragmented to the MTU ---- */

/* Bytes [off, off+n) of the datagram "hdr (8 bytes) then data". */
static void udp_span(uint8_t *out, const uint8_t *hdr, const uint8_t *data, size_t off, size_t n)
{
	if (off < UDP_HLEN) {
		size_t k = TB_MIN(n, UDP_HLEN - off);
		memcpy(out, hdr + off, k);
		out += k;
		off += k;
		n -= k;
	}
	if (n)
		memcpy(out, data + (off - UDP_HLEN), n);
}

static void ip4_header(uint8_t *h, const tb_addr_t *src, const tb_addr_t *dst, size_t payload, uint16_t id,
		       uint16_t frag)
{
	h[0] = 0x45;
	h[1] = 0;
	tb_put_be16(h + 2, (uint16_t)(IP4_HLEN_MIN + payload));
	tb_put_be16(h + 4, id);
	tb_put_be16(h + 6, frag);
	h[8] = 64;
	h[9] = PROTO_UDP;
	h[10] = h[11] = 0;
	memcpy(h + 12, src->ip, 4);
	memcpy(h + 16, dst->ip, 4);
	tb_put_be16(h + 10, csum_fold(csum_add(0, h, IP4_HLEN_MIN)));
}

static void ip6_header(uint8_t *h, const tb_addr_t *src, const tb_addr_t *dst, size_t payload, uint8_t nh)
{
	memset(h, 0, 4);
	h[0] = 0x60;
	tb_put_be16(h + 4, (uint16_t)payload);
	h[6] = nh;
	h[7] = 64;
	memcpy(h + 8, src->ip, 16);
	memcpy(h + 24, dst->ip, 16);
}

static void udp_to_lan(tb_t2s_t *t, const tb_addr_t *from, const tb_addr_t *to, const uint8_t *data, size_t len)
{
	bool v6 = to->family == TB_AF_INET6;
	size_t hl = v6 ? IP6_HLEN_FIX : IP4_HLEN_MIN, ulen = UDP_HLEN + len, off, n, fs;
	uint8_t uh[UDP_HLEN];
	uint16_t c;

	if (ulen > 0xffff || (v6 && ulen + 8 > 0xffff)) {
		t->st.dropped++;
		return;
	}
	tb_put_be16(uh, from->port);
	tb_put_be16(uh + 2, to->port);
	tb_put_be16(uh + 4, (uint16_t)ulen);
	uh[6] = uh[7] = 0;
	c = csum_fold(csum_add(csum_add(csum_pseudo(from, to, PROTO_UDP, ulen), uh, UDP_HLEN), data, len));
	tb_put_be16(uh + 6, c ? c : 0xffff);
	if (hl + ulen <= t->o.mtu) {
		if (v6)
			ip6_header(t->txbuf, from, to, ulen, PROTO_UDP);
		else
			ip4_header(t->txbuf, from, to, ulen, t->ip_id++, 0);
		udp_span(t->txbuf + hl, uh, data, 0, ulen);
		t2s_send(t, t->txbuf, hl + ulen);
		return;
	}
	/* Fragments carry multiples of 8 bytes (RFC 791, RFC 8200 §4.5). */
	fs = (t->o.mtu - hl - (v6 ? 8 : 0)) & ~(size_t)7;
	uint16_t id4 = t->ip_id++;
	uint32_t id6 = t->frag_id++;
	for (off = 0; off < ulen; off += n) {
		bool more;
		n = TB_MIN(fs, ulen - off);
		more = off + n < ulen;
		if (v6) {
			uint8_t *f = t->txbuf + IP6_HLEN_FIX;
			ip6_header(t->txbuf, from, to, 8 + n, PROTO_FRAG6);
			f[0] = PROTO_UDP;
			f[1] = 0;
			tb_put_be16(f + 2, (uint16_t)(off | (more ? 1 : 0)));
			tb_put_be32(f + 4, id6);
			udp_span(f + 8, uh, data, off, n);
			t2s_send(t, t->txbuf, IP6_HLEN_FIX + 8 + n);
		} else {
			ip4_header(t->txbuf, from, to, n, id4, (uint16_t)((off >> 3) | (more ? 0x2000 : 0)));
			udp_span(t->txbuf + IP4_HLEN_MIN, uh, data, off, n);
			t2s_send(t, t->txbuf, IP4_HLEN_MIN + n);
		}
	}
}

/* ---- sessions: the LRU list and the cap ---- */

static void sess_touch(sess_t *s)
{
	tb_t2s_t *t = s->t;

	s->last = tb_loop_now(t->loop);
	if (!s->listed || t->lru_head == s)
		return;
	/* unlink, then push at the head */
	s->prev->next = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		t->lru_tail = s->prev;
	s->prev = NULL;
	s->next = t->lru_head;
	t->lru_head->prev = s;
	t->lru_head = s;
}

static void sess_list(tb_t2s_t *t, sess_t *s, uint8_t kind)
{
	s->t = t;
	s->kind = kind;
	s->listed = true;
	s->last = tb_loop_now(t->loop);
	s->prev = NULL;
	s->next = t->lru_head;
	if (t->lru_head)
		t->lru_head->prev = s;
	else
		t->lru_tail = s;
	t->lru_head = s;
	if (kind == KIND_TCP)
		t->ntcp++;
	else
		t->nudp++;
}

static void sess_unlist(sess_t *s)
{
	tb_t2s_t *t = s->t;

	if (!s->listed)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		t->lru_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		t->lru_tail = s->prev;
	s->prev = s->next = NULL;
	s->listed = false;
	if (s->kind == KIND_TCP)
		t->ntcp--;
	else
		t->nudp--;
}

static void enforce_cap(tb_t2s_t *t)
{
	char buf[TB_ADDR_STRLEN];

	while (t->ntcp + t->nudp > t->o.max_sessions && t->lru_tail) {
		sess_t *s = t->lru_tail;
		tb_debug("tun: %u sessions, the cap: ending the least recently used (%s to %s)",
			 t->o.max_sessions, s->kind == KIND_TCP ? "tcp" : "udp",
			 tb_addr_str(&s->dst, buf, sizeof(buf)));
		t->st.evicted++;
		sess_end(s, TB_ECANCELED);
	}
}

/* ---- TCP sessions: the stream over a PCB ---- */

static const tb_stream_ops_t ts_ops;

static void pcb_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
}

/* Resets the LAN client. */
static void ts_kill(tcp_sess_t *ts)
{
	if (!ts->pcb)
		return;
	pcb_detach(ts->pcb);
	tcp_abort(ts->pcb);
	ts->pcb = NULL;
}

/* FIN went both ways: lwIP finishes the close and frees the PCB itself. */
static void ts_let_go(tcp_sess_t *ts)
{
	if (!ts->pcb || !ts->fin_in || !ts->shut_done)
		return;
	pcb_detach(ts->pcb);
	if (tcp_close(ts->pcb) != ERR_OK)
		tcp_abort(ts->pcb);
	ts->pcb = NULL;
}

static void ts_free(tcp_sess_t *ts)
{
	tb_defer_cancel(ts->b.t ? ts->b.t->loop : NULL, &ts->work);
	if (ts->rx)
		pbuf_free(ts->rx);
	tb_buf_free(&ts->tx);
	free(ts);
}

static void ts_schedule(tcp_sess_t *ts)
{
	if (!ts->closed && !ts->orphan)
		tb_defer(ts->b.t->loop, &ts->work);
}

/* Moves queued bytes into lwIP's send buffer; false on a fatal error. */
/* Copies up to len bytes into lwIP's send buffer; how many it took, or a
 * negative TB_E* code when the PCB can take no more at all. */
static long ts_give(tcp_sess_t *ts, const uint8_t *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t n = TB_MIN(TB_MIN(len - done, (size_t)tcp_sndbuf(ts->pcb)), (size_t)TX_CHUNK);
		err_t e;

		if (n == 0 || tcp_sndqueuelen(ts->pcb) >= TCP_SND_QUEUELEN)
			break;
		e = tcp_write(ts->pcb, p + done, (u16_t)n, TCP_WRITE_FLAG_COPY);
		if (e == ERR_MEM)
			break;
		if (e != ERR_OK)
			return tb_lwip_err(e);
		done += n;
	}
	return (long)done;
}

/* Moves queued bytes into lwIP's send buffer; false on a fatal error. */
static bool ts_push(tcp_sess_t *ts)
{
	bool wrote = false;

	while (ts->pcb && tb_buf_len(&ts->tx)) {
		size_t len;
		const uint8_t *p = tb_buf_peek(&ts->tx, &len);
		long n = ts_give(ts, p, len);

		if (n < 0) {
			ts->err = (int)n;
			return false;
		}
		if (n == 0)
			break;
		tb_buf_consume(&ts->tx, (size_t)n);
		wrote = true;
	}
	if (wrote)
		tcp_output(ts->pcb);
	return true;
}

/* Sends FIN once everything queued is in lwIP. True when it just went. */
static bool ts_maybe_shut(tcp_sess_t *ts)
{
	if (!ts->shut_req || ts->shut_done || tb_buf_len(&ts->tx) || !ts->pcb)
		return false;
	/* lwIP retries the FIN from its timer when it lacks memory now. */
	tcp_shutdown(ts->pcb, 0, 1);
	ts->shut_done = true;
	ts_let_go(ts);
	return true;
}

static void ts_recved_n(tcp_sess_t *ts, size_t n)
{
	while (ts->pcb && n > 0) {
		u16_t k = (u16_t)TB_MIN(n, (size_t)TX_CHUNK);
		tcp_recved(ts->pcb, k);
		n -= k;
	}
}

static void ts_deliver(tcp_sess_t *ts)
{
	uint8_t *buf = ts->b.t->rxbuf;
	size_t taken = 0;

	while (ts->rx && !ts->paused && !ts->closed) {
		struct pbuf *q = ts->rx;
		const uint8_t *p = q->payload;
		u16_t n = q->len;

		if (n == 0) { /* an empty pbuf in the chain */
			ts->rx = q->next;
			q->next = NULL;
			pbuf_free(q);
			continue;
		}
		/* Segments are gathered into one hand-over (one send() by the
		 * relay instead of one per segment); a lone one goes as it is. */
		if (q->next && n < RXBUF_SIZE) {
			n = pbuf_copy_partial(q, buf, (u16_t)TB_MIN((size_t)q->tot_len, (size_t)RXBUF_SIZE), 0);
			p = buf;
		}
		tb_stream_emit_data(&ts->s, p, n);
		if (ts->closed)
			break;
		/* Frees what was handed over; rx becomes the rest of the chain. */
		ts->rx = pbuf_free_header(q, n);
		taken += n;
	}
	if (taken) {
		sess_touch(&ts->b);
		ts_recved_n(ts, taken);
	}
	/* lwIP holds a lone segment's ACK for its 250 ms fast timer; a sender
	 * whose window is full then waits that long. The turn is over: ACK. */
	if (ts->pcb && (ts->pcb->flags & TF_ACK_DELAY)) {
		tcp_ack_now(ts->pcb);
		tcp_output(ts->pcb);
	}
}

static void ts_work(tb_loop_t *loop, void *arg)
{
	tcp_sess_t *ts = arg;
	bool shut_now;

	ts->in_cb++;
	if (ts->close_pending) {
		ts->close_pending = false;
		tb_stream_emit_close(&ts->s, ts->err);
		goto out;
	}
	if (!ts_push(ts)) {
		ts_kill(ts);
		tb_stream_emit_close(&ts->s, ts->err);
		goto out;
	}
	shut_now = ts_maybe_shut(ts);
	if ((ts->want_drain && tb_buf_len(&ts->tx) <= ts->s.hiwat / 2) || (shut_now && ts->drained_shut)) {
		ts->want_drain = false;
		ts->drained_shut = false;
		tb_stream_emit_drain(&ts->s);
	}
	if (!ts->owned || ts->closed)
		goto out;
	ts_deliver(ts);
	if (!ts->closed && !ts->rx && ts->fin_in && !ts->eof_sent && !ts->paused) {
		ts->eof_sent = true;
		tb_stream_emit_eof(&ts->s);
	}
out:
	if (--ts->in_cb == 0 && ts->closed)
		ts_free(ts);
}

static int ts_s_write(tb_stream_t *s, const void *data, size_t len)
{
	tcp_sess_t *ts = tb_container_of(s, tcp_sess_t, s);

	long n = 0;

	if (ts->dead || ts->shut_req || !ts->pcb)
		return TB_EPIPE;
	/* Straight into lwIP when nothing waits before it; only the rest is
	 * queued here. */
	if (tb_buf_len(&ts->tx) == 0 && (n = ts_give(ts, data, len)) > 0)
		tcp_output(ts->pcb);
	/* No room for the rest: part of the bytes are gone, so the stream dies. */
	if (n >= 0 && (size_t)n < len && tb_buf_append(&ts->tx, (const uint8_t *)data + n, len - (size_t)n) < 0)
		n = TB_ENOMEM;
	sess_touch(&ts->b);
	if (n < 0 || !ts_push(ts)) {
		if (n < 0)
			ts->err = (int)n;
		/* Reported from the loop, never from inside write(). */
		ts_kill(ts);
		ts->dead = ts->close_pending = true;
		sess_unlist(&ts->b);
		ts_schedule(ts);
		return TB_EPIPE;
	}
	if (tb_buf_len(&ts->tx) >= ts->s.hiwat) {
		ts->want_drain = true;
		return TB_ENOBUFS;
	}
	return 0;
}

static int ts_s_shutdown(tb_stream_t *s)
{
	tcp_sess_t *ts = tb_container_of(s, tcp_sess_t, s);

	if (ts->dead)
		return TB_EPIPE;
	if (ts->shut_req)
		return 0;
	ts->shut_req = true;
	if (!ts_maybe_shut(ts))
		ts->drained_shut = true; /* on_drain tells when the FIN went */
	return 0;
}

static void ts_s_close(tb_stream_t *s)
{
	tcp_sess_t *ts = tb_container_of(s, tcp_sess_t, s);

	if (ts->closed)
		return;
	ts->closed = true;
	if (ts->orphan) {
		ts_free(ts);
		return;
	}
	/* Closed before FIN went both ways (an error, a timeout): reset. */
	ts_kill(ts);
	sess_unlist(&ts->b);
	tb_defer_cancel(ts->b.t->loop, &ts->work);
	if (ts->in_cb == 0)
		ts_free(ts);
}

static void ts_s_pause(tb_stream_t *s)
{
	tb_container_of(s, tcp_sess_t, s)->paused = true;
}

static void ts_s_resume(tb_stream_t *s)
{
	tcp_sess_t *ts = tb_container_of(s, tcp_sess_t, s);

	ts->paused = false;
	if (ts->rx || (ts->fin_in && !ts->eof_sent))
		ts_schedule(ts);
}

static size_t ts_s_queued(const tb_stream_t *s)
{
	return tb_buf_len(&tb_container_of(s, tcp_sess_t, s)->tx);
}

static const tb_stream_ops_t ts_ops = {
	.write = ts_s_write,
	.shutdown = ts_s_shutdown,
	.close = ts_s_close,
	.pause = ts_s_pause,
	.resume = ts_s_resume,
	.queued = ts_s_queued,
};

/* Ends a session now: from the cap, a failed open, or the listener's end. */
static void ts_end(tcp_sess_t *ts, int err)
{
	ts_kill(ts);
	sess_unlist(&ts->b);
	if (ts->open) {
		ts->b.t->env.cancel(ts->b.t->env.arg, ts->open);
		ts->open = NULL;
	}
	if (!ts->owned) {
		ts->closed = true;
		if (ts->in_cb == 0)
			ts_free(ts);
		return;
	}
	/* The owner learns from the loop, and closes. */
	if (!ts->dead) {
		ts->dead = ts->close_pending = true;
		ts->err = err;
		ts_schedule(ts);
	}
}

/* ---- lwIP's TCP callbacks: they only queue ---- */

static err_t on_tcp_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	tcp_sess_t *ts = arg;

	if (!ts) { /* cannot happen: callbacks are cleared with the arg */
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	if (!p) {
		ts->fin_in = true;
		ts_let_go(ts);
	} else if (ts->rx) {
		pbuf_cat(ts->rx, p);
	} else {
		ts->rx = p;
	}
	if (ts->owned)
		ts_schedule(ts);
	return ERR_OK;
}

static err_t on_tcp_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	tcp_sess_t *ts = arg;

	if (!ts)
		return ERR_OK;
	/* Refill lwIP's buffer at once (tcp_write is allowed here); errors,
	 * drain and FIN are for the loop. */
	if (tb_buf_len(&ts->tx))
		(void)ts_push(ts); /* a failure shows again in ts_work */
	if (tb_buf_len(&ts->tx) || ts->want_drain || ts->shut_req)
		ts_schedule(ts);
	return ERR_OK;
}

/* lwIP has freed the PCB (reset, retransmission timeout, out of memory). */
static void on_tcp_err(void *arg, err_t err)
{
	tcp_sess_t *ts = arg;

	if (!ts)
		return;
	ts->pcb = NULL;
	ts_end(ts, err == ERR_RST ? TB_ECONNRESET : err == ERR_ABRT ? TB_ECANCELED : tb_lwip_err(err));
}

static void ts_opened(void *arg, tb_stream_t *remote, int err)
{
	tcp_sess_t *ts = arg;
	tb_t2s_t *t = ts->b.t;
	char buf[TB_ADDR_STRLEN];

	ts->open = NULL;
	if (err < 0) {
		/* The LAN client sees what a refused connect looks like: a reset. */
		tb_debug("tun: tcp to %s: %s", tb_addr_str(&ts->b.dst, buf, sizeof(buf)), tb_strerror(err));
		ts_end(ts, err);
		return;
	}
	ts->owned = true;
	/* The relay resumes us: pending bytes and a FIN are handed over from
	 * the loop, in order. */
	ts->paused = true;
	t->env.relay(t->env.arg, &ts->s, remote);
}

static err_t on_tcp_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct netif *inp = ip_current_input_netif();
	tb_t2s_t *t = t2s_of_netif(inp);
	tcp_sess_t *ts;
	tb_target_t target;

	if (err != ERR_OK || !pcb)
		return ERR_VAL;
#if TCP_LISTEN_BACKLOG
	tcp_backlog_accepted(pcb);
#endif
	if (!t || t->stopping || !(ts = calloc(1, sizeof(*ts)))) {
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	tcp_bind_netif(pcb, inp);
	ts->pcb = pcb;
	tb_lwip_from_ip(&pcb->remote_ip, pcb->remote_port, &ts->b.src);
	tb_lwip_from_ip(&pcb->local_ip, pcb->local_port, &ts->b.dst);
	ts->s.ops = &ts_ops;
	ts->s.hiwat = TB_STREAM_HIWAT_DEFAULT;
	tb_buf_init(&ts->tx);
	tb_defer_init(&ts->work, ts_work, ts);
	sess_list(t, &ts->b, KIND_TCP);
	tcp_arg(pcb, ts);
	tcp_recv(pcb, on_tcp_recv);
	tcp_sent(pcb, on_tcp_sent);
	tcp_err(pcb, on_tcp_err);
	tcp_nagle_disable(pcb); /* the relay writes in large pieces already */
	tb_target_from_addr(&target, &ts->b.dst);
	if (t->env.open(t->env.arg, &target, ts_opened, ts, &ts->open) < 0) {
		ts->open = NULL;
		pcb_detach(pcb);
		ts->pcb = NULL;
		sess_unlist(&ts->b);
		ts_free(ts);
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	/* Over the cap: evicted after tcp_input returns (tb_t2s_lwip_ip*_input). */
	return ERR_OK;
}

/* ---- listen PCBs: one per destination port in use ---- */

static void port_close(struct t2s_port *sp)
{
	if (sp->pcb)
		tcp_close(sp->pcb);
	sp->pcb = NULL;
}

/* The listener for port: existing, else made in a free slot or in place of
 * the one whose last SYN is oldest (its pending handshakes are lost). */
static bool port_listen(uint16_t port)
{
	struct t2s_port *slot = NULL;
	struct tcp_pcb *pcb, *lp;
	u32_t now = sys_now();

	for (size_t i = 0; i < TB_T2S_LISTEN_MAX; i++) {
		struct t2s_port *sp = &g.ports[i];
		if (sp->pcb && sp->port == port) {
			sp->last = now;
			return true;
		}
		if (!slot || (slot->pcb && (!sp->pcb || (u32_t)(now - sp->last) > (u32_t)(now - slot->last))))
			slot = sp;
	}
	port_close(slot);
	if (!(pcb = tcp_new_ip_type(IPADDR_TYPE_ANY)))
		return false;
	ip_set_option(pcb, SOF_REUSEADDR);
	if (tcp_bind(pcb, IP_ANY_TYPE, port) != ERR_OK || !(lp = tcp_listen(pcb))) {
		tcp_close(pcb); /* a CLOSED PCB: freed at once */
		return false;
	}
	tcp_accept(lp, on_tcp_accept);
	slot->pcb = lp;
	slot->port = port;
	slot->last = now;
	return true;
}

/* ---- the input hooks (tun2socks_hooks.h) ---- */

static void ip_data_clear(void)
{
	ip_data.current_netif = NULL;
	ip_data.current_input_netif = NULL;
	ip_data.current_ip4_header = NULL;
#if LWIP_IPV6
	ip_data.current_ip6_header = NULL;
#endif
	ip_data.current_ip_header_tot_len = 0;
	ip_addr_set_zero(&ip_data.current_iphdr_src);
	ip_addr_set_zero(&ip_data.current_iphdr_dest);
}

/* A segment whose IP header was checked: SYNs get their port's listener;
 * then lwIP's TCP. The segment starts at tcp (hlen into p). */
static void ts_segment_in(tb_t2s_t *t, struct pbuf *p, u16_t hlen)
{
	const uint8_t *tcp = (const uint8_t *)p->payload + hlen;
	uint8_t flags = tcp[13];

	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN && !t->stopping && !port_listen(tb_be16(tcp + 2)))
		t->st.dropped++;
	pbuf_remove_header(p, hlen);
	tcp_input(p, &t->netif);
	ip_data_clear();
	enforce_cap(t);
}

int tb_t2s_lwip_ip4_input(struct pbuf *p, struct netif *inp)
{
	tb_t2s_t *t = t2s_of_netif(inp);
	const uint8_t *h = p->payload;
	u16_t hlen, tot;
	tb_addr_t dst;

	if (!t || p->len < IP4_HLEN_MIN)
		return 0;
	hlen = (u16_t)((h[0] & 0x0f) * 4);
	tot = tb_be16(h + 2);
	if (h[9] != PROTO_TCP)
		return 0;
	/* The TCP header's first 20 bytes must follow in this pbuf. */
	if (hlen < IP4_HLEN_MIN || tot < hlen + 20 || tot > p->tot_len || (size_t)hlen + 20 > p->len)
		goto drop;
	if ((tb_be16(h + 6) & 0x3fff) != 0) /* MF or an offset: no reassembly here */
		goto drop;
	if (csum_fold(csum_add(0, h, hlen)) != 0)
		goto drop;
	dst.family = TB_AF_INET;
	memcpy(dst.ip, h + 16, 4);
	if (!ip_unicast(&dst))
		return 0;
	if (tot < p->tot_len)
		pbuf_realloc(p, tot);
	ip_data.current_netif = inp;
	ip_data.current_input_netif = inp;
	ip_data.current_ip4_header = p->payload;
	ip_data.current_ip_header_tot_len = hlen;
	/* ip4_addr_t holds network order: the bytes are copied as they are. */
	ip_addr_set_zero_ip4(&ip_data.current_iphdr_src);
	ip_addr_set_zero_ip4(&ip_data.current_iphdr_dest);
	memcpy(&ip_2_ip4(&ip_data.current_iphdr_src)->addr, h + 12, 4);
	memcpy(&ip_2_ip4(&ip_data.current_iphdr_dest)->addr, h + 16, 4);
	ts_segment_in(t, p, hlen);
	return 1;
drop:
	t->st.dropped++;
	pbuf_free(p);
	return 1;
}

#if LWIP_IPV6
int tb_t2s_lwip_ip6_input(struct pbuf *p, struct netif *inp)
{
	tb_t2s_t *t = t2s_of_netif(inp);
	const uint8_t *h = p->payload;
	u16_t plen;
	tb_addr_t a;

	/* Short packets and extension headers (fragments among them) take
	 * lwIP's path, which drops them. */
	if (!t || p->len < IP6_HLEN_FIX || h[6] != PROTO_TCP)
		return 0;
	if (p->len < IP6_HLEN_FIX + 20)
		goto drop;
	plen = tb_be16(h + 4);
	if (plen < 20 || (size_t)plen + IP6_HLEN_FIX > p->tot_len)
		goto drop;
	a.family = TB_AF_INET6;
	memcpy(a.ip, h + 24, 16);
	if (!ip_unicast(&a))
		return 0;
	memcpy(a.ip, h + 8, 16);
	if (a.ip[0] == 0xff)
		goto drop;
	if (IP6_HLEN_FIX + plen < p->tot_len)
		pbuf_realloc(p, (u16_t)(IP6_HLEN_FIX + plen));
	ip_data.current_netif = inp;
	ip_data.current_input_netif = inp;
	ip_data.current_ip4_header = NULL;
	ip_data.current_ip6_header = p->payload;
	ip_data.current_ip_header_tot_len = IP6_HLEN_FIX;
	/* ip6_addr_t holds network order words: the bytes are copied as they are. */
	ip_addr_set_zero_ip6(&ip_data.current_iphdr_src);
	ip_addr_set_zero_ip6(&ip_data.current_iphdr_dest);
	memcpy(ip_2_ip6(&ip_data.current_iphdr_src)->addr, h + 8, 16);
	memcpy(ip_2_ip6(&ip_data.current_iphdr_dest)->addr, h + 24, 16);
	ip6_addr_assign_zone(ip_2_ip6(&ip_data.current_iphdr_src), IP6_UNICAST, inp);
	ip6_addr_assign_zone(ip_2_ip6(&ip_data.current_iphdr_dest), IP6_UNKNOWN, inp);
	ts_segment_in(t, p, IP6_HLEN_FIX);
	return 1;
drop:
	t->st.dropped++;
	pbuf_free(p);
	return 1;
}
#else
int tb_t2s_lwip_ip6_input(struct pbuf *p, struct netif *inp)
{
	return 0;
}
#endif

struct netif *tb_t2s_lwip_route(void)
{
	struct netif *n;

	if (t2s_of_netif(ip_current_input_netif()))
		return ip_current_input_netif();
	NETIF_FOREACH(n) {
		if (t2s_of_netif(n))
			return n;
	}
	return NULL;
}

/* ---- UDP flows ---- */

static size_t udp_hash(const tb_t2s_t *t, const tb_addr_t *src, const tb_addr_t *dst)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	const tb_addr_t *a[2] = {src, dst};

	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < ip_len(a[k]); i++)
			h = (h ^ a[k]->ip[i]) * 16777619u;
		h = (h ^ (a[k]->port >> 8)) * 16777619u;
		h = (h ^ (a[k]->port & 0xff)) * 16777619u;
	}
	return h & (t->nbuckets - 1);
}

static udp_sess_t *udp_find(tb_t2s_t *t, const tb_addr_t *src, const tb_addr_t *dst)
{
	for (udp_sess_t *u = t->buckets[udp_hash(t, src, dst)]; u; u = u->hnext)
		if (tb_addr_equal(&u->b.src, src) && tb_addr_equal(&u->b.dst, dst))
			return u;
	return NULL;
}

static void udp_free(udp_sess_t *u)
{
	tb_t2s_t *t = u->b.t;
	udp_sess_t **pp = &t->buckets[udp_hash(t, &u->b.src, &u->b.dst)];

	while (*pp && *pp != u)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = u->hnext;
	sess_unlist(&u->b);
	tb_timer_stop(t->loop, &u->idle);
	tb_defer_cancel(t->loop, &u->end);
	if (u->dgram)
		u->dgram->ops->close(u->dgram);
	free(u);
}

static void udp_end_cb(tb_loop_t *loop, void *arg)
{
	udp_free(arg);
}

/* From inside the association's own callback: freed from the loop. */
static void udp_end_later(udp_sess_t *u)
{
	u->ending = true;
	sess_unlist(&u->b);
	tb_defer(u->b.t->loop, &u->end);
}

static void udp_idle(tb_loop_t *loop, void *arg)
{
	udp_sess_t *u = arg;
	uint64_t quiet = tb_loop_now(loop) - u->b.last, idle = u->b.t->o.udp_idle_ms;

	if (quiet < idle) { /* traffic only stamps b.last; the timer moves here */
		tb_timer_start(loop, &u->idle, idle - quiet);
		return;
	}
	udp_free(u);
}

static void udp_reply(void *arg, tb_dgram_t *d, const tb_target_t *from, const uint8_t *data, size_t len)
{
	udp_sess_t *u = arg;
	tb_addr_t src = u->b.dst;

	if (u->ending)
		return;
	/* A reply from another address of the same family keeps its source. */
	if (from && from->is_ip && from->addr.family == src.family) {
		src = from->addr;
		src.port = from->port;
	}
	udp_to_lan(u->b.t, &src, &u->b.src, data, len);
	sess_touch(&u->b);
	/* DNS: closed once every query has its answer. */
	if (u->b.dst.port == DNS_PORT && u->dns_pending > 0 && --u->dns_pending == 0)
		udp_end_later(u);
}

static void udp_in(tb_t2s_t *t, const tb_addr_t *src, const tb_addr_t *dst, const uint8_t *data, size_t len)
{
	udp_sess_t *u = udp_find(t, src, dst);
	tb_target_t target;

	tb_target_from_addr(&target, dst);
	if (!u) {
		if (t->stopping || !(u = calloc(1, sizeof(*u)))) {
			t->st.dropped++;
			return;
		}
		u->b.src = *src;
		u->b.dst = *dst;
		if (t->env.udp_open(t->env.arg, &target, udp_reply, u, &u->dgram) < 0) {
			free(u);
			t->st.dropped++;
			return;
		}
		tb_timer_init(&u->idle, udp_idle, u);
		tb_defer_init(&u->end, udp_end_cb, u);
		sess_list(t, &u->b, KIND_UDP);
		size_t i = udp_hash(t, src, dst);
		u->hnext = t->buckets[i];
		t->buckets[i] = u;
		tb_timer_start(t->loop, &u->idle, t->o.udp_idle_ms);
		enforce_cap(t);
	} else if (u->ending) {
		t->st.dropped++;
		return;
	}
	sess_touch(&u->b);
	if (dst->port == DNS_PORT)
		u->dns_pending++;
	u->dgram->ops->send(u->dgram, &target, data, len);
}

/* ---- packets from the LAN ---- */

/* A whole UDP datagram u[0, ulen) from src to dst (addresses set, ports
 * not yet): checked, then to its flow. */
static void udp_datagram(tb_t2s_t *t, tb_addr_t *src, tb_addr_t *dst, const uint8_t *u, size_t ulen)
{
	size_t al;

	if (ulen < UDP_HLEN || (al = tb_be16(u + 4)) < UDP_HLEN || al > ulen)
		goto drop;
	src->port = tb_be16(u);
	dst->port = tb_be16(u + 2);
	/* IPv4 may leave the checksum out (0); IPv6 may not (RFC 8200 §8.1). */
	if ((tb_be16(u + 6) != 0 || dst->family == TB_AF_INET6) &&
	    csum_fold(csum_add(csum_pseudo(src, dst, PROTO_UDP, al), u, al)) != 0)
		goto drop;
	/* Broadcast and multicast (mDNS, SSDP) are the LAN's own business. */
	if (!ip_unicast(dst) || !ip_unicast(src) || dst->port == 0 || src->port == 0)
		goto drop;
	udp_in(t, src, dst, u + UDP_HLEN, al - UDP_HLEN);
	return;
drop:
	t->st.dropped++;
}

static void frag_free(frag_t *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

/* The slot of a datagram being put together: its own, else a free one, else
 * the oldest (what it held is lost, as on a full reassembly queue). */
static frag_t *frag_slot(tb_t2s_t *t, const tb_addr_t *src, const tb_addr_t *dst, uint32_t id)
{
	uint64_t now = tb_loop_now(t->loop);
	frag_t *pick = NULL;

	for (size_t i = 0; i < FRAG_SLOTS; i++) {
		frag_t *f = &t->frags[i];
		if (f->buf && now - f->start > FRAG_TIMEOUT_MS)
			frag_free(f);
		if (f->buf && f->id == id && tb_addr_ip_equal(&f->src, src) && tb_addr_ip_equal(&f->dst, dst))
			return f;
		if (!pick || (pick->buf && (!f->buf || f->start < pick->start)))
			pick = f;
	}
	frag_free(pick);
	if (!(pick->buf = calloc(1, FRAG_MAX + FRAG_MAP)))
		return NULL;
	pick->src = *src;
	pick->dst = *dst;
	pick->id = id;
	pick->start = now;
	return pick;
}

/* data[0, n) sits at off in the datagram; more: not its last fragment.
 * Overlaps drop the whole datagram (RFC 5722 says so for IPv6; IPv4
 * overlaps have no honest use either). */
static void frag_in(tb_t2s_t *t, tb_addr_t *src, tb_addr_t *dst, uint32_t id, size_t off, bool more,
		    const uint8_t *data, size_t n)
{
	frag_t *f;
	uint8_t *map;

	if (off + n > FRAG_MAX || (more && (n == 0 || n % 8 != 0)) || !(f = frag_slot(t, src, dst, id))) {
		t->st.dropped++;
		return;
	}
	map = f->buf + FRAG_MAX;
	if ((!more && f->total && f->total != off + n) || (f->total && off + n > f->total))
		goto bad;
	for (size_t b = off / 8; b < (off + n + 7) / 8; b++) {
		if (map[b / 8] & (1u << (b % 8)))
			goto bad;
		map[b / 8] |= (uint8_t)(1u << (b % 8));
	}
	if (!more)
		f->total = off + n;
	memcpy(f->buf + off, data, n);
	f->got += n;
	if (f->total && f->got == f->total) {
		udp_datagram(t, src, dst, f->buf, f->total);
		frag_free(f);
	}
	return;
bad:
	t->st.dropped++;
	frag_free(f);
}

/* UDP over IPv4, or over IPv6 with at most a fragment header: parsed and
 * answered here. Returns false for anything else (lwIP's turn). */
static bool udp_packet(tb_t2s_t *t, const uint8_t *pkt, size_t len)
{
	tb_addr_t src, dst;

	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	if ((pkt[0] >> 4) == 4) {
		size_t hl = (size_t)(pkt[0] & 0x0f) * 4, tot;
		uint16_t fo;
		if (len < IP4_HLEN_MIN || pkt[9] != PROTO_UDP)
			return false;
		tot = tb_be16(pkt + 2);
		if (hl < IP4_HLEN_MIN || tot < hl || tot > len || csum_fold(csum_add(0, pkt, hl)) != 0)
			goto drop;
		src.family = dst.family = TB_AF_INET;
		memcpy(src.ip, pkt + 12, 4);
		memcpy(dst.ip, pkt + 16, 4);
		fo = tb_be16(pkt + 6);
		if ((fo & 0x3fff) == 0)
			udp_datagram(t, &src, &dst, pkt + hl, tot - hl);
		else
			frag_in(t, &src, &dst, tb_be16(pkt + 4), (size_t)(fo & 0x1fff) * 8, fo & 0x2000, pkt + hl,
				tot - hl);
		return true;
	}
	if ((pkt[0] >> 4) == 6 && LWIP_IPV6) {
		size_t plen;
		const uint8_t *fh = pkt + IP6_HLEN_FIX;
		if (len < IP6_HLEN_FIX || (pkt[6] != PROTO_UDP && pkt[6] != PROTO_FRAG6))
			return false;
		plen = tb_be16(pkt + 4);
		if (pkt[6] == PROTO_FRAG6 && (plen < 8 || len < IP6_HLEN_FIX + 8 || fh[0] != PROTO_UDP))
			return false; /* not UDP behind the fragment header: lwIP drops it */
		if (IP6_HLEN_FIX + plen > len)
			goto drop;
		src.family = dst.family = TB_AF_INET6;
		memcpy(src.ip, pkt + 8, 16);
		memcpy(dst.ip, pkt + 24, 16);
		if (pkt[6] == PROTO_UDP)
			udp_datagram(t, &src, &dst, fh, plen);
		else
			frag_in(t, &src, &dst, tb_be32(fh + 4), tb_be16(fh + 2) & 0xfff8u, tb_be16(fh + 2) & 1, fh + 8,
				plen - 8);
		return true;
	}
	return false;
drop:
	t->st.dropped++;
	return true;
}

void tb_t2s_input(tb_t2s_t *t, const uint8_t *pkt, size_t len)
{
	struct pbuf *p;

	unsigned v = len ? pkt[0] >> 4 : 0;

	if (len > 0xffff || len > t->o.mtu || !((v == 4 && len >= IP4_HLEN_MIN) || (v == 6 && len >= IP6_HLEN_FIX))) {
		t->st.dropped++;
		return;
	}
	if (udp_packet(t, pkt, len))
		return;
	/* From lwIP's heap, not the receive pool: a session whose owner is slow
	 * (or still connecting) holds its segments until taken, up to its
	 * window, and a pool sized for a few windows would run dry for all. */
	p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
	if (!p) {
		t->st.dropped++;
		return;
	}
	pbuf_take(p, pkt, (u16_t)len);
	if (t->netif.input(p, &t->netif) != ERR_OK)
		pbuf_free(p);
}

/* ---- the core's life ---- */

static err_t t2s_netif_init(struct netif *n)
{
	tb_t2s_t *t = n->state;

	n->name[0] = 't';
	n->name[1] = 'n';
	n->mtu = (u16_t)t->o.mtu;
#if LWIP_IPV6 && LWIP_ND6_ALLOW_RA_UPDATES
	n->mtu6 = (u16_t)t->o.mtu;
#endif
	n->output = t2s_output4;
#if LWIP_IPV6
	n->output_ip6 = t2s_output6;
#endif
	n->flags = 0; /* point to point: no ARP, no broadcast, no MLD */
	return ERR_OK;
}

int tb_t2s_new(tb_loop_t *loop, const tb_t2s_opts_t *o, const tb_t2s_env_t *env, tb_t2s_t **out)
{
	tb_t2s_t *t;
	size_t nb = 16;
	int rc;

	if (o->mtu < MTU_MIN || o->mtu > 0xffff || o->max_sessions < 1 || o->udp_idle_ms < 1)
		return TB_EINVAL;
	if (!(t = calloc(1, sizeof(*t))))
		return TB_ENOMEM;
	while (nb < o->max_sessions && nb < 65536)
		nb *= 2;
	t->loop = loop;
	t->env = *env;
	t->o = *o;
	t->nbuckets = nb;
	t->buckets = calloc(nb, sizeof(*t->buckets));
	t->txbuf = malloc(o->mtu);
	t->rxbuf = malloc(RXBUF_SIZE);
	tb_port_random(&t->ip_id, sizeof(t->ip_id));
	tb_port_random(&t->frag_id, sizeof(t->frag_id));
	if (!t->buckets || !t->txbuf || !t->rxbuf) {
		rc = TB_ENOMEM;
		goto fail;
	}
	if ((rc = tb_lwip_start(loop)) < 0)
		goto fail;
	g.users++;
	if (!netif_add_noaddr(&t->netif, t, t2s_netif_init, ip_input)) {
		tb_t2s_free(t);
		return TB_ENOMEM;
	}
	t->netif_added = true;
	netif_set_link_up(&t->netif);
	netif_set_up(&t->netif);
	*out = t;
	return 0;
fail:
	free(t->buckets);
	free(t->txbuf);
	free(t->rxbuf);
	free(t);
	return rc;
}

static void sess_end(sess_t *s, int err)
{
	if (s->kind == KIND_TCP)
		ts_end(tb_container_of(s, tcp_sess_t, b), err);
	else
		udp_free(tb_container_of(s, udp_sess_t, b));
}

void tb_t2s_stop(tb_t2s_t *t)
{
	sess_t *s, *next;

	t->stopping = true;
	for (s = t->lru_head; s; s = next) {
		next = s->next;
		if (s->kind == KIND_UDP)
			udp_free(tb_container_of(s, udp_sess_t, b));
	}
}

void tb_t2s_free(tb_t2s_t *t)
{
	if (!t)
		return;
	t->stopping = true;
	while (t->lru_head) {
		sess_t *s = t->lru_head;
		if (s->kind == KIND_UDP) {
			udp_free(tb_container_of(s, udp_sess_t, b));
			continue;
		}
		tcp_sess_t *ts = tb_container_of(s, tcp_sess_t, b);
		bool owned = ts->owned; /* an unowned one is freed by ts_end */
		ts_end(ts, TB_ECANCELED);
		if (owned && !ts->closed) {
			/* Its owner closes it later, without us. */
			tb_defer_cancel(t->loop, &ts->work);
			ts->orphan = true;
			ts->b.t = NULL;
		}
	}
	/* Deferred UDP ends are already off the list. */
	for (size_t i = 0; i < t->nbuckets; i++)
		while (t->buckets[i])
			udp_free(t->buckets[i]);
	for (size_t i = 0; i < FRAG_SLOTS; i++)
		frag_free(&t->frags[i]);
	if (t->netif_added)
		netif_remove(&t->netif);
	if (t->netif_added && --g.users == 0)
		for (size_t i = 0; i < TB_T2S_LISTEN_MAX; i++)
			port_close(&g.ports[i]);
	if (t->netif_added)
		tb_lwip_stop(t->loop);
	free(t->buckets);
	free(t->txbuf);
	free(t->rxbuf);
	free(t);
}

void tb_t2s_get_stats(const tb_t2s_t *t, tb_t2s_stats_t *st)
{
	*st = t->st;
	st->tcp = t->ntcp;
	st->udp = t->nudp;
}

/* ---- the listener kind ---- */

#ifndef TB_FUZZ_CODEC_ONLY /* the fuzzer drives the core alone */
#include <errno.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kernel queues 500 packets toward a TUN reader; a few flows with full
 * windows overflow that, and every tail drop costs a retransmission
 * timeout (lwIP's receiver has no SACK). 16 flows: 86 -> 184 MB/s. */
#define TXQUEUELEN_DEFAULT 4096

typedef struct t2s_listener {
	tb_gw_listener_t *l;
	tb_t2s_t *core;
	tb_tun_t *tun;
	char dev[IFNAMSIZ];
	tb_t2s_opts_t o;
	uint32_t txqueuelen;
	bool udp_idle_set;
} t2s_listener_t;

static int set_txqueuelen(const char *dev, uint32_t qlen)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return tb_err_from_errno(errno);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	ifr.ifr_qlen = (int)qlen;
	if (ioctl(fd, SIOCSIFTXQLEN, &ifr) < 0)
		rc = tb_err_from_errno(errno);
	close(fd);
	return rc;
}

static int gw_open(void *arg, const tb_target_t *t, tb_connector_cb cb, void *cbarg, void **handle)
{
	t2s_listener_t *tl = arg;
	tb_gw_open_t *o;
	int rc = tb_gw_open(tl->l, t, cb, cbarg, &o);

	*handle = rc < 0 ? NULL : o;
	return rc;
}

static void gw_cancel(void *arg, void *handle)
{
	tb_gw_open_cancel(handle);
}

static int gw_relay(void *arg, tb_stream_t *client, tb_stream_t *remote)
{
	t2s_listener_t *tl = arg;

	return tb_gw_relay(tl->l, client, remote, false);
}

static int gw_udp_open(void *arg, const tb_target_t *first, tb_dgram_recv_cb cb, void *cbarg, tb_dgram_t **out)
{
	t2s_listener_t *tl = arg;

	return tb_gw_udp_open(tl->l, first, cb, cbarg, out);
}

static int gw_output(void *arg, const uint8_t *pkt, size_t len)
{
	t2s_listener_t *tl = arg;

	return tb_tun_write(tl->tun, pkt, len);
}

static void tun_recv(void *arg, const uint8_t *pkt, size_t len)
{
	t2s_listener_t *tl = arg;

	tb_t2s_input(tl->core, pkt, len);
}

static int conf_u32(const tb_conf_val_t *t, const char *key, uint32_t *out, int64_t min, int64_t max,
		    tb_conf_err_t *err)
{
	int64_t v;
	int rc = tb_conf_get_int(t, key, &v, err);

	if (rc == TB_ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (v < min || v > max) {
		tb_conf_set_err(err, tb_conf_get(t, key), "must be between %lld and %lld", (long long)min,
				(long long)max);
		return TB_EINVAL;
	}
	*out = (uint32_t)v;
	return 1;
}

static int t2s_init(tb_gw_listener_t *l, const tb_conf_val_t *table, tb_conf_err_t *err)
{
	t2s_listener_t *tl = calloc(1, sizeof(*tl));
	const char *dev = "tb0";
	uint32_t udp_s = 0;
	int rc;

	if (!tl)
		return TB_ENOMEM;
	tb_gw_listener_set_priv(l, tl);
	tl->l = l;
	tl->o.mtu = TB_T2S_MTU_DEFAULT;
	tl->o.max_sessions = CONFIG_TUN2SOCKS_MAX_SESSIONS;
	tl->txqueuelen = TXQUEUELEN_DEFAULT;
	if ((rc = tb_conf_get_str(table, "device", &dev, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (strlen(dev) >= IFNAMSIZ || strchr(dev, '/')) {
		tb_conf_set_err(err, tb_conf_get(table, "device"), "an interface name of at most %d bytes",
				IFNAMSIZ - 1);
		return TB_EINVAL;
	}
	snprintf(tl->dev, sizeof(tl->dev), "%s", dev);
	if ((rc = conf_u32(table, "mtu", &tl->o.mtu, MTU_MIN, 65535, err)) < 0 ||
	    (rc = conf_u32(table, "max_sessions", &tl->o.max_sessions, 1, 1 << 20, err)) < 0 ||
	    (rc = conf_u32(table, "txqueuelen", &tl->txqueuelen, 0, 1 << 20, err)) < 0)
		return rc;
	if ((rc = conf_u32(table, "udp_idle_timeout_s", &udp_s, 1, 86400, err)) < 0)
		return rc;
	tl->udp_idle_set = rc > 0;
	tl->o.udp_idle_ms = udp_s * 1000;
	return 0;
}

static int t2s_start(tb_gw_listener_t *l)
{
	t2s_listener_t *tl = tb_gw_listener_priv(l);
	tb_t2s_env_t env = {gw_open, gw_cancel, gw_relay, gw_udp_open, gw_output, tl};
	int rc;

	if (!tl->udp_idle_set)
		tl->o.udp_idle_ms = tb_gw_udp_idle_ms(l) ? tb_gw_udp_idle_ms(l) : CONFIG_UDP_IDLE_TIMEOUT_S * 1000u;
	rc = tb_tun_open(tb_gw_loop(l), tl->dev, sizeof(tl->dev), tun_recv, tl, &tl->tun);
	if (rc < 0) {
		tb_err("listener %s: cannot open TUN device %s: %s", tb_gw_listener_name(l), tl->dev, tb_strerror(rc));
		return rc;
	}
	if (tl->txqueuelen && (rc = set_txqueuelen(tl->dev, tl->txqueuelen)) < 0)
		tb_warn("listener %s: cannot set txqueuelen of %s: %s", tb_gw_listener_name(l), tl->dev, tb_strerror(rc));
	if ((rc = tb_t2s_new(tb_gw_loop(l), &tl->o, &env, &tl->core)) < 0) {
		tb_err("listener %s: tun2socks: %s", tb_gw_listener_name(l), tb_strerror(rc));
		return rc;
	}
	tb_info("listener %s (tun) on device %s, mtu %u, up to %u sessions", tb_gw_listener_name(l), tl->dev,
		tl->o.mtu, tl->o.max_sessions);
	return 0;
}

static void t2s_stop(tb_gw_listener_t *l)
{
	t2s_listener_t *tl = tb_gw_listener_priv(l);

	if (tl && tl->core)
		tb_t2s_stop(tl->core);
}

static void t2s_free_listener(tb_gw_listener_t *l)
{
	t2s_listener_t *tl = tb_gw_listener_priv(l);

	if (!tl)
		return;
	tb_t2s_free(tl->core);
	tb_tun_close(tl->tun);
	free(tl);
}

const tb_gw_proto_t tb_tun2socks_proto = {
	.name = "tun",
	.init = t2s_init,
	.start = t2s_start,
	.stop = t2s_stop,
	.free = t2s_free_listener,
	.endpoint_optional = true,
};
#endif
