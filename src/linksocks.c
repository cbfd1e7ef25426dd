/* linksocks.c: the LinkSocks channel multiplexer (spec/linksocks.md §4).
 *
 * One tb_ls_mux_t per WebSocket connection. A TCP channel is a tb_stream_t:
 * its write() sends Data, its on_data() delivers received Data, so a relay
 * joins it to a socket with backpressure and no special case. The wire has
 * no flow control; tunnelbox never drops a byte (§11):
 * - a send that leaves the WebSocket over its limit returns TB_ENOBUFS to
 *   the channel's writer (the relay pauses its socket) until the mux drains;
 * - a channel whose owner paused it (its socket is full) pauses the
 *   WebSocket's reading; what was already received waits in the channel.
 * The wire has no half-close either (§4.3): shutdown() sends Disconnect and
 * ends the channel both ways.
 *
 * Batching (§4.2) never waits for more data: small writes a channel's
 * writer hands over during one loop turn are coalesced and sent as one Data
 * message when the turn ends (or once they reach 16 KiB); a write of 16 KiB
 * or more is a message by itself, sent from the caller's memory, so a bulk
 * flow costs no copy. An interactive flow, one write per turn, goes out as
 * before; a chatty one sends fewer, larger messages. batch_max caps every
 * message. A message of at least compress_min bytes is gzipped (§3.5) when
 * that makes it smaller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks.h"
#include "tb/log.h"
#include "tb/ws.h"

#define CONNECT_WAIT_MS 15000u   /* §6: opener wait for ConnectResponse */
#define STALL_MS 30000u          /* §11: a channel may hold the WebSocket this long */
#define UDP_MAX_PAYLOAD 65535u
#define BATCH_MAX_DEFAULT (1u << 20) /* the reference's read buffer B (§4.2) */
/* Writes this big are sent as they come (no copy); smaller ones are
 * coalesced up to it. A batch buffer so stays under 32 KiB: malloc's heap,
 * not a fresh mapping (and its page faults) per turn. */
#define BATCH_DIRECT 16384u

typedef struct tb_ls_chan tb_ls_chan_t;

enum chan_state {
	CH_OPENING, /* opener: Connect sent, no answer yet */
	CH_DIALING, /* egress: dialing the target */
	CH_OPEN,
	CH_DONE, /* Disconnect sent or received: nothing more on the wire */
};

struct tb_ls_open {
	tb_ls_chan_t *ch;
};

struct tb_ls_chan {
	tb_stream_t s; /* first: the TCP channel as a stream */
	tb_dgram_t d;  /* the UDP channel as a datagram association */
	tb_ls_mux_t *mux; /* NULL once unlinked (closed, or the mux is gone) */
	tb_loop_t *loop;
	tb_ls_chan_t *next, *prev;
	uint8_t id[TB_LS_UUID_LEN];
	uint8_t proto;
	enum chan_state state;
	tb_buf_t in;        /* received, not yet delivered */
	uint8_t *ob;        /* written this turn, not yet sent (batching); */
	size_t olen, ocap;  /* allocated by the turn's first write, freed by the flush */
	bool paused;        /* by its owner: the WebSocket is paused for it */
	bool eof_pending;   /* Disconnect received, deliver on_eof after in */
	bool eof_done;
	bool want_drain;    /* a write returned TB_ENOBUFS */
	bool owned;         /* the owner holds the stream (must close it) */
	bool fast_open;
	uint8_t in_cb;
	bool closed;        /* the owner closed it: free after callbacks */
	tb_timer_t timer;   /* opener wait, or the stall limit */
	tb_defer_t defer;   /* deliveries outside the caller's stack */
	tb_defer_t ready;   /* fast-open: hands the stream over from the loop */
	tb_defer_t flush;   /* sends the batch at the end of the turn */
	/* opener */
	tb_connector_cb open_cb;
	void *open_arg;
	tb_ls_open_t *open;
	/* egress */
	tb_gw_open_t *dial;
	tb_dgram_t *out;    /* egress UDP: the association towards targets */
	int err;
};

struct tb_ls_mux {
	tb_loop_t *loop;
	const tb_ls_transport_t *tp;
	void *t;
	tb_ls_mux_opts_t o;
	tb_ls_control_cb control;
	void *ctx;
	tb_ls_chan_t *chans; /* all live channels */
	size_t nchans;
	unsigned rx_pauses;  /* channels holding the WebSocket paused */
	bool tx_full;
	tb_ls_inflater_t *z;
	tb_ls_deflater_t *zd; /* made on the first message worth compressing */
};

static const tb_stream_ops_t chan_ops;
static const tb_dgram_ops_t chan_dgram_ops;

/* ---- channel table ---- */

static tb_ls_chan_t *chan_find(tb_ls_mux_t *m, const uint8_t id[TB_LS_UUID_LEN])
{
	/* A linear list: a WebSocket carries tens to a few thousand channels
	 * and the first entries are the busy ones (moved to front on use). */
	for (tb_ls_chan_t *c = m->chans; c; c = c->next) {
		if (memcmp(c->id, id, TB_LS_UUID_LEN) != 0)
			continue;
		if (c != m->chans) {
			c->prev->next = c->next;
			if (c->next)
				c->next->prev = c->prev;
			c->prev = NULL;
			c->next = m->chans;
			m->chans->prev = c;
			m->chans = c;
		}
		return c;
	}
	return NULL;
}

static void chan_unlink(tb_ls_chan_t *c)
{
	tb_ls_mux_t *m = c->mux;

	if (!m)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		m->chans = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	m->nchans--;
	if (c->paused && --m->rx_pauses == 0)
		m->tp->resume(m->t);
	c->paused = false;
	c->mux = NULL;
}

static tb_connector_cb take_open(tb_ls_chan_t *c, void **arg);
static void chan_deliver_cb(tb_loop_t *loop, void *arg);
static void chan_ready_cb(tb_loop_t *loop, void *arg);
static void chan_timer_cb(tb_loop_t *loop, void *arg);
static void chan_flush_cb(tb_loop_t *loop, void *arg);

static tb_ls_chan_t *chan_new(tb_ls_mux_t *m, const uint8_t id[TB_LS_UUID_LEN], uint8_t proto)
{
	tb_ls_chan_t *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s.ops = &chan_ops;
	c->s.hiwat = TB_STREAM_HIWAT_DEFAULT;
	c->d.ops = &chan_dgram_ops;
	c->mux = m;
	c->loop = m->loop;
	memcpy(c->id, id, TB_LS_UUID_LEN);
	c->proto = proto;
	tb_buf_init(&c->in);
	tb_timer_init(&c->timer, chan_timer_cb, c);
	tb_defer_init(&c->defer, chan_deliver_cb, c);
	tb_defer_init(&c->ready, chan_ready_cb, c);
	tb_defer_init(&c->flush, chan_flush_cb, c);
	c->next = m->chans;
	if (c->next)
		c->next->prev = c;
	m->chans = c;
	m->nchans++;
	return c;
}

static void chan_free(tb_ls_chan_t *c)
{
	chan_unlink(c);
	tb_timer_stop(c->loop, &c->timer);
	tb_defer_cancel(c->loop, &c->defer);
	tb_defer_cancel(c->loop, &c->ready);
	tb_defer_cancel(c->loop, &c->flush);
	if (c->dial)
		tb_gw_open_cancel(c->dial);
	if (c->out)
		c->out->ops->close(c->out);
	if (c->open)
		c->open->ch = NULL;
	tb_buf_free(&c->in);
	free(c->ob);
	free(c);
}

/* ---- sending ---- */

static int mux_send(tb_ls_mux_t *m, const void *hdr, size_t hlen, const void *body, size_t blen)
{
	int rc = m->tp->send(m->t, hdr, hlen, body, blen);

	if (rc == TB_ENOBUFS)
		m->tx_full = true;
	return rc;
}

int tb_ls_mux_send(tb_ls_mux_t *m, const tb_ls_msg_t *msg)
{
	uint8_t buf[512];
	int n = tb_ls_msg_encode(msg, buf, sizeof(buf));

	if (n < 0)
		return n;
	n = mux_send(m, buf, (size_t)n, NULL, 0);
	return n == TB_ENOBUFS ? 0 : n;
}

/* One TCP Data message, gzipped when it is big enough and that helps. A
 * compression failure sends the bytes as they are. */
static int send_tcp_data(tb_ls_chan_t *c, const uint8_t *p, size_t n)
{
	tb_ls_mux_t *m = c->mux;
	uint8_t hdr[TB_LS_DATA_HDR_LEN];

	if (m->o.compress_min && n >= m->o.compress_min && ENABLE_ZLIB) {
		if (!m->zd && (m->zd = tb_ls_deflater_new(m->o.compress_level)))
			tb_debug("linksocks: gzip for Data of %zu bytes and more on this WebSocket", m->o.compress_min);
		tb_buf_t out;
		const uint8_t *z;
		size_t zn;

		tb_buf_init(&out);
		if (m->zd && tb_ls_deflate(m->zd, p, n, true, &out) == 0 && (zn = tb_buf_len(&out)) < n &&
		    (z = tb_buf_pullup(&out, zn)) != NULL) {
			tb_ls_data_header(hdr, TB_LS_PROTO_TCP, c->id, TB_LS_COMP_GZIP, zn);
			int rc = mux_send(m, hdr, sizeof(hdr), z, zn);
			tb_buf_free(&out);
			return rc;
		}
		tb_buf_free(&out);
	}
	tb_ls_data_header(hdr, TB_LS_PROTO_TCP, c->id, TB_LS_COMP_NONE, n);
	return mux_send(m, hdr, sizeof(hdr), p, n);
}

/* Sends the channel's batch (one message: it never exceeds batch_max) and
 * frees it, so an idle channel holds no buffer: 0, TB_ENOBUFS (sent; the
 * WebSocket is full) or an error (the mux's end tells the owner). */
static void chan_drop_batch(tb_ls_chan_t *c)
{
	free(c->ob);
	c->ob = NULL;
	c->olen = c->ocap = 0;
}

static int chan_flush(tb_ls_chan_t *c)
{
	int rc = c->olen ? send_tcp_data(c, c->ob, c->olen) : 0;

	chan_drop_batch(c);
	return rc;
}

static void chan_flush_cb(tb_loop_t *loop, void *arg)
{
	tb_ls_chan_t *c = arg;

	if (c->mux && c->state != CH_DONE)
		chan_flush(c);
}

/* Appends to the batch (it stays under 2 * BATCH_DIRECT). */
static int chan_batch(tb_ls_chan_t *c, const void *data, size_t len)
{
	if (c->olen + len > c->ocap) {
		size_t cap = TB_MAX(c->ocap * 2, TB_MAX(c->olen + len, (size_t)1024));
		uint8_t *ob = realloc(c->ob, cap);
		if (!ob)
			return TB_ENOMEM;
		c->ob = ob;
		c->ocap = cap;
	}
	memcpy(c->ob + c->olen, data, len);
	c->olen += len;
	return 0;
}

static void send_disconnect(tb_ls_mux_t *m, const uint8_t id[TB_LS_UUID_LEN], const char *why)
{
	tb_ls_msg_t msg = {.type = TB_LS_DISCONNECT};

	memcpy(msg.disconnect.channel, id, TB_LS_UUID_LEN);
	msg.disconnect.error.p = why;
	msg.disconnect.error.len = why ? strlen(why) : 0;
	tb_ls_mux_send(m, &msg);
}

static void send_connect_response(tb_ls_mux_t *m, const uint8_t id[TB_LS_UUID_LEN], bool ok, const char *why)
{
	tb_ls_msg_t msg = {.type = TB_LS_CONNECT_RESPONSE};

	msg.connect_resp.success = ok;
	memcpy(msg.connect_resp.channel, id, TB_LS_UUID_LEN);
	msg.connect_resp.error.p = why;
	msg.connect_resp.error.len = why ? strlen(why) : 0;
	tb_ls_mux_send(m, &msg);
}

/* ---- the channel as a stream ---- */

static bool chan_leave(tb_ls_chan_t *c)
{
	c->in_cb--;
	if (!c->closed)
		return false;
	if (c->in_cb == 0)
		chan_free(c);
	return true;
}

/* Hands buffered bytes (and a pending EOF) to the owner while it takes them. */
static void chan_deliver(tb_ls_chan_t *c)
{
	size_t len;
	const uint8_t *p;

	c->in_cb++;
	while (!c->paused && !c->closed && (p = tb_buf_peek(&c->in, &len)) != NULL) {
		/* Copy out first: the owner may pause or close inside on_data. */
		uint8_t chunk[16384];
		size_t n = TB_MIN(len, sizeof(chunk));
		memcpy(chunk, p, n);
		tb_buf_consume(&c->in, n);
		tb_stream_emit_data(&c->s, chunk, n);
	}
	if (!c->paused && !c->closed && c->eof_pending && !c->eof_done && tb_buf_len(&c->in) == 0) {
		c->eof_done = true;
		tb_stream_emit_eof(&c->s);
	}
	chan_leave(c);
}

static void chan_deliver_cb(tb_loop_t *loop, void *arg)
{
	chan_deliver(arg);
}

static int chan_write(tb_stream_t *s, const void *data, size_t len)
{
	tb_ls_chan_t *c = (tb_ls_chan_t *)s;
	size_t max, direct;
	int rc = 0;

	if (!c->mux || c->state == CH_DONE)
		return TB_EPIPE;
	max = c->mux->o.batch_max;
	direct = TB_MIN((size_t)BATCH_DIRECT, max);
	while (len > 0) {
		int r = 0;
		if (c->olen == 0 && len >= direct) {
			/* Big enough to be a message by itself: straight from the
			 * caller's memory, no copy (a bulk flow's every read). */
			size_t n = TB_MIN(len, max);
			r = send_tcp_data(c, data, n);
			data = (const uint8_t *)data + n;
			len -= n;
		} else if (len >= direct) {
			r = chan_flush(c); /* the small bytes before it go first */
		} else {
			size_t n = TB_MIN(len, max - c->olen);
			if (chan_batch(c, data, n) < 0)
				return TB_ENOMEM;
			data = (const uint8_t *)data + n;
			len -= n;
			if (c->olen >= direct)
				r = chan_flush(c);
		}
		if (r < 0 && r != TB_ENOBUFS)
			return r;
		if (r)
			rc = r;
	}
	if (c->olen > 0)
		tb_defer(c->loop, &c->flush);
	if (rc == TB_ENOBUFS || c->mux->tx_full) {
		c->want_drain = true;
		return TB_ENOBUFS;
	}
	return 0;
}

/* No half-close on the wire (§4.3): our EOF ends the channel both ways. */
static int chan_shutdown(tb_stream_t *s)
{
	tb_ls_chan_t *c = (tb_ls_chan_t *)s;

	if (c->state == CH_DONE || !c->mux)
		return 0;
	chan_flush(c); /* the batch goes before the Disconnect */
	tb_defer_cancel(c->loop, &c->flush);
	send_disconnect(c->mux, c->id, "EOF");
	c->state = CH_DONE;
	tb_buf_free(&c->in); /* the peer's late bytes have nowhere to go */
	c->eof_pending = true;
	tb_defer(c->loop, &c->defer);
	return 0;
}

static void chan_close(tb_stream_t *s)
{
	tb_ls_chan_t *c = (tb_ls_chan_t *)s;

	if (c->closed)
		return;
	if (c->mux && c->state != CH_DONE) {
		chan_flush(c); /* what the owner wrote was taken: it goes out */
		send_disconnect(c->mux, c->id, NULL);
	}
	c->state = CH_DONE;
	c->closed = true;
	chan_unlink(c); /* before a deferred free: no more input reaches it */
	if (c->in_cb == 0)
		chan_free(c);
}

static void chan_pause(tb_stream_t *s)
{
	tb_ls_chan_t *c = (tb_ls_chan_t *)s;

	if (c->paused || !c->mux)
		return;
	c->paused = true;
	if (c->mux->rx_pauses++ == 0)
		c->mux->tp->pause(c->mux->t);
	if (c->state == CH_OPEN)
		tb_timer_start(c->loop, &c->timer, c->mux->o.stall_ms);
}

static void chan_resume(tb_stream_t *s)
{
	tb_ls_chan_t *c = (tb_ls_chan_t *)s;

	if (c->paused && c->mux) {
		c->paused = false;
		tb_timer_stop(c->loop, &c->timer);
		if (--c->mux->rx_pauses == 0)
			c->mux->tp->resume(c->mux->t);
	}
	/* Also the first resume by a new owner (a relay): bytes that arrived
	 * before it set its handler are waiting. */
	if (tb_buf_len(&c->in) > 0 || (c->eof_pending && !c->eof_done))
		tb_defer(c->loop, &c->defer);
}

static size_t chan_queued(const tb_stream_t *s)
{
	return 0; /* handed to the WebSocket, whose queue the mux watches */
}

static const tb_stream_ops_t chan_ops = {
	.write = chan_write,
	.shutdown = chan_shutdown,
	.close = chan_close,
	.pause = chan_pause,
	.resume = chan_resume,
	.queued = chan_queued,
};

static void chan_fail(tb_ls_chan_t *c, int err)
{
	c->in_cb++;
	tb_stream_emit_close(&c->s, err);
	chan_leave(c);
}

static void chan_timer_cb(tb_loop_t *loop, void *arg)
{
	tb_ls_chan_t *c = arg;

	if (c->state == CH_OPENING) {
		/* §4.1: no ConnectResponse within 15 s. */
		void *cbarg;
		tb_connector_cb cb = take_open(c, &cbarg);
		if (c->mux)
			send_disconnect(c->mux, c->id, NULL);
		c->state = CH_DONE;
		if (c->fast_open) {
			chan_fail(c, TB_ETIMEDOUT);
		} else {
			chan_free(c);
			if (cb)
				cb(cbarg, NULL, TB_EHOSTUNREACH);
		}
		return;
	}
	/* §11: this channel's full sink has held the WebSocket for too long. */
	tb_warn("linksocks: a channel stalled the WebSocket for %u ms; closing it",
		c->mux ? c->mux->o.stall_ms : 0);
	if (c->mux)
		send_disconnect(c->mux, c->id, "stalled");
	c->state = CH_DONE;
	chan_fail(c, TB_ETIMEDOUT);
}

/* ---- the UDP channel as a datagram association ---- */

/* One datagram as UDP Data (§3.4): both address pairs always present, one
 * of them empty: `from` (a reply's source, egress -> opener) or `to` (the
 * destination, opener -> egress). */
static int send_udp(tb_ls_chan_t *c, const tb_target_t *from, const tb_target_t *to, const void *data, size_t len)
{
	const tb_target_t *t = from ? from : to;
	uint8_t hdr[TB_LS_DATA_HDR_LEN], *msg;
	char host[TB_HOST_MAX + 1];
	tb_ls_hostport_t hp;
	size_t tn;
	int rc;

	if (!c->mux || c->state == CH_DONE)
		return TB_EPIPE;
	if (len > UDP_MAX_PAYLOAD)
		return TB_ERANGE;
	hp.host.len = tb_ls_target_text(t, host, sizeof(host));
	hp.host.p = host;
	hp.port = t->port;
	tn = tb_ls_udp_trailer_size(from ? &hp : NULL, from ? NULL : &hp);
	/* The trailer follows the payload: one contiguous body. */
	if (!(msg = malloc(len + tn)))
		return TB_ENOMEM;
	memcpy(msg, data, len);
	rc = tb_ls_udp_trailer(msg + len, tn, from ? &hp : NULL, from ? NULL : &hp);
	if (rc >= 0) {
		tb_ls_data_header(hdr, TB_LS_PROTO_UDP, c->id, TB_LS_COMP_NONE, len);
		rc = mux_send(c->mux, hdr, sizeof(hdr), msg, len + tn);
	}
	free(msg);
	return rc == TB_ENOBUFS ? 0 : rc;
}

static int chan_dgram_send(tb_dgram_t *d, const tb_target_t *to, const void *data, size_t len)
{
	return send_udp(tb_container_of(d, tb_ls_chan_t, d), NULL, to, data, len);
}

static void chan_dgram_close(tb_dgram_t *d)
{
	chan_close(&tb_container_of(d, tb_ls_chan_t, d)->s);
}

static const tb_dgram_ops_t chan_dgram_ops = {chan_dgram_send, chan_dgram_close};

/* ---- opener ---- */

/* The opener's callback, taken once; the caller's handle ends with it. */
static tb_connector_cb take_open(tb_ls_chan_t *c, void **arg)
{
	tb_connector_cb cb = c->open_cb;

	*arg = c->open_arg;
	c->open_cb = NULL;
	free(c->open);
	c->open = NULL;
	return cb;
}

static void open_complete(tb_ls_chan_t *c, int err)
{
	void *arg;
	tb_connector_cb cb = take_open(c, &arg);

	tb_timer_stop(c->loop, &c->timer);
	if (err == 0) {
		c->state = CH_OPEN;
		c->owned = true;
		cb(arg, &c->s, 0);
		return;
	}
	c->state = CH_DONE;
	chan_free(c);
	cb(arg, NULL, err);
}

/* fast-open: the channel is handed over before its ConnectResponse. */
static void chan_ready_cb(tb_loop_t *loop, void *arg)
{
	tb_ls_chan_t *c = arg;
	void *cbarg;
	tb_connector_cb cb = take_open(c, &cbarg);

	c->owned = true;
	cb(cbarg, &c->s, 0);
}

/* A channel with a fresh id, announced with Connect (t NULL: UDP). */
static tb_ls_chan_t *chan_announce(tb_ls_mux_t *m, const tb_target_t *t, int *err)
{
	uint8_t id[TB_LS_UUID_LEN];
	char host[TB_HOST_MAX + 1];
	tb_ls_msg_t msg = {.type = TB_LS_CONNECT};
	tb_ls_chan_t *c;

	if ((*err = tb_ls_uuid_random(id)) < 0)
		return NULL;
	msg.connect.proto = t ? TB_LS_PROTO_TCP : TB_LS_PROTO_UDP;
	if (!(c = chan_new(m, id, msg.connect.proto))) {
		*err = TB_ENOMEM;
		return NULL;
	}
	memcpy(msg.connect.channel, id, TB_LS_UUID_LEN);
	if (t) {
		msg.connect.addr.len = tb_ls_target_text(t, host, sizeof(host));
		msg.connect.addr.p = host;
		msg.connect.port = t->port;
	}
	if ((*err = tb_ls_mux_send(m, &msg)) < 0) {
		chan_free(c);
		return NULL;
	}
	return c;
}

int tb_ls_mux_open(tb_ls_mux_t *m, const tb_target_t *t, bool fast_open, tb_connector_cb cb, void *arg,
		   tb_ls_open_t **req)
{
	tb_ls_chan_t *c;
	int rc;

	if (!(c = chan_announce(m, t, &rc)))
		return rc;
	if (!(c->open = calloc(1, sizeof(*c->open)))) {
		chan_close(&c->s);
		return TB_ENOMEM;
	}
	c->open->ch = c;
	c->state = CH_OPENING;
	c->open_cb = cb;
	c->open_arg = arg;
	c->fast_open = fast_open;
	tb_timer_start(m->loop, &c->timer, m->o.connect_wait_ms);
	if (req)
		*req = c->open;
	if (fast_open) {
		/* §4.1 fast-open: the stream is usable at once; a refusal later
		 * fails it. Handed over from the loop, never inside this call. */
		tb_defer(m->loop, &c->ready);
	}
	return 0;
}

void tb_ls_open_cancel(tb_ls_open_t *req)
{
	tb_ls_chan_t *c = req ? req->ch : NULL;

	if (!c)
		return;
	c->open_cb = NULL;
	c->open = NULL;
	free(req);
	chan_close(&c->s);
}

int tb_ls_mux_udp(tb_ls_mux_t *m, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	tb_ls_chan_t *c;
	int rc;

	if (!(c = chan_announce(m, NULL, &rc)))
		return rc;
	/* The reference egress makes the channel on Connect, so datagrams may
	 * follow at once (§4.1); a refusal ends the association. */
	c->state = CH_OPEN;
	c->owned = true;
	c->d.recv = cb;
	c->d.arg = arg;
	*out = &c->d;
	return 0;
}

/* ---- egress ---- */

static void egress_dialed(void *arg, tb_stream_t *s, int err)
{
	tb_ls_chan_t *c = arg;
	tb_ls_mux_t *m = c->mux;
	char why[TB_LS_STR_MAX + 1];

	c->dial = NULL;
	if (!m) { /* the WebSocket died while dialing */
		if (s)
			tb_stream_close(s);
		chan_free(c);
		return;
	}
	if (err < 0) {
		/* §4.1: a dial failure is only a ConnectResponse failure. */
		snprintf(why, sizeof(why), "dial: %s", tb_strerror(err));
		send_connect_response(m, c->id, false, why);
		c->state = CH_DONE;
		chan_free(c);
		return;
	}
	send_connect_response(m, c->id, true, NULL);
	if (c->state == CH_DONE) { /* the peer gave up meanwhile */
		tb_stream_close(s);
		chan_free(c);
		return;
	}
	c->state = CH_OPEN;
	c->owned = true;
	/* Data that came with fast-open waits in c->in: the relay resumes the
	 * channel, which delivers it. */
	tb_gw_relay(m->o.l, &c->s, s, false);
	if (tb_buf_len(&c->in) > 0 || c->eof_pending)
		tb_defer(m->loop, &c->defer);
}

static void egress_udp_recv(void *arg, tb_dgram_t *d, const tb_target_t *from, const uint8_t *data, size_t len)
{
	send_udp(arg, from, NULL, data, len); /* best effort, like UDP */
}

static void on_connect(tb_ls_mux_t *m, const tb_ls_msg_t *msg)
{
	tb_ls_chan_t *c;
	tb_target_t t;
	int rc;

	if (chan_find(m, msg->connect.channel))
		return; /* a duplicate id: ignore the second Connect */
	if (!(c = chan_new(m, msg->connect.channel, msg->connect.proto)))
		return;
	if (msg->connect.proto == TB_LS_PROTO_UDP) {
		/* §4.1: the egress answers success at once; the association
		 * toward targets opens on the first datagram (routed once). */
		c->state = CH_OPEN;
		send_connect_response(m, c->id, true, NULL);
		return;
	}
	c->state = CH_DIALING;
	if (tb_ls_target_parse(&t, msg->connect.addr, msg->connect.port) < 0) {
		send_connect_response(m, c->id, false, "invalid address");
		chan_free(c);
		return;
	}
	rc = tb_gw_open(m->o.l, &t, egress_dialed, c, &c->dial);
	if (rc < 0) {
		char why[64];
		snprintf(why, sizeof(why), "dial: %s", tb_strerror(rc));
		send_connect_response(m, c->id, false, why);
		chan_free(c);
	}
}

/* ---- receiving ---- */

static int chan_take(void *ctx, const uint8_t *p, size_t n)
{
	tb_ls_chan_t *c = ctx;

	return tb_buf_append(&c->in, p, n);
}

static void on_tcp_data(tb_ls_mux_t *m, tb_ls_chan_t *c, const tb_ls_msg_t *msg)
{
	const uint8_t *p = msg->data.payload;
	size_t n = msg->data.len;
	bool direct = !c->paused && c->state == CH_OPEN && tb_buf_len(&c->in) == 0 && c->s.h &&
		      msg->data.compression == TB_LS_COMP_NONE;

	if (direct) { /* the common case: no copy */
		c->in_cb++;
		tb_stream_emit_data(&c->s, p, n);
		chan_leave(c);
		return;
	}
	if (msg->data.compression == TB_LS_COMP_GZIP) {
		/* §3.5: inflate with a cap, into the channel's queue. */
		if (!m->z)
			tb_debug("linksocks: the peer sends gzip Data on this WebSocket");
		if (!m->z && !(m->z = tb_ls_inflater_new(m->o.inflate_cap))) {
			send_disconnect(m, c->id, "gzip unsupported");
			c->state = CH_DONE;
			chan_fail(c, TB_ENOTSUP);
			return;
		}
		if (tb_ls_inflate(m->z, p, n, chan_take, c) < 0) {
			send_disconnect(m, c->id, "bad gzip data");
			c->state = CH_DONE;
			chan_fail(c, TB_EPROTO);
			return;
		}
	} else if (tb_buf_append(&c->in, p, n) < 0) {
		c->state = CH_DONE;
		chan_fail(c, TB_ENOMEM);
		return;
	}
	if (!c->paused && c->state == CH_OPEN && c->s.h)
		chan_deliver(c);
}

static void on_udp_data(tb_ls_mux_t *m, tb_ls_chan_t *c, const tb_ls_msg_t *msg)
{
	tb_target_t t;

	if (msg->data.compression != TB_LS_COMP_NONE)
		return; /* §3.5: senders compress TCP only */
	if (!m->o.egress || c->d.recv) {
		/* opener: a reply, pair 1 is its source */
		if (c->d.recv && tb_ls_target_parse(&t, msg->data.addr.host, msg->data.addr.port) == 0)
			c->d.recv(c->d.arg, &c->d, &t, msg->data.payload, msg->data.len);
		return;
	}
	/* egress: pair 2 is the destination */
	if (tb_ls_target_parse(&t, msg->data.target.host, msg->data.target.port) < 0)
		return;
	if (!c->out && tb_gw_udp_open(m->o.l, &t, egress_udp_recv, c, &c->out) < 0) {
		tb_debug("linksocks: UDP association refused by the router");
		return;
	}
	c->out->ops->send(c->out, &t, msg->data.payload, msg->data.len);
}

/* A message for a channel this mux does not own: someone else's (agent
 * mode), or late (§4.3: routine, dropped quietly). */
static bool foreign(tb_ls_mux_t *m, tb_ls_chan_t *c, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	if (c)
		return false;
	if (m->o.foreign)
		m->o.foreign(m->ctx, msg, raw, len);
	return true;
}

static void on_data(tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	tb_ls_chan_t *c = chan_find(m, msg->data.channel);

	if (foreign(m, c, msg, raw, len) || c->state == CH_DONE)
		return; /* §4.3: late Data for a closed channel is routine */
	if (c->proto == TB_LS_PROTO_UDP)
		on_udp_data(m, c, msg);
	else
		on_tcp_data(m, c, msg);
}

static void on_connect_response(tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	tb_ls_chan_t *c = chan_find(m, msg->connect_resp.channel);

	if (foreign(m, c, msg, raw, len))
		return;
	if (c->proto == TB_LS_PROTO_UDP) {
		if (!msg->connect_resp.success) {
			c->state = CH_DONE; /* sends fail from now on */
			tb_debug("linksocks: UDP association refused: %.*s", (int)msg->connect_resp.error.len,
				 msg->connect_resp.error.p);
		}
		return;
	}
	if (c->state != CH_OPENING)
		return;
	if (msg->connect_resp.success) {
		if (c->fast_open) {
			c->state = CH_OPEN;
			tb_timer_stop(m->loop, &c->timer);
			if (tb_buf_len(&c->in) > 0 || c->eof_pending)
				tb_defer(m->loop, &c->defer);
			return;
		}
		open_complete(c, 0);
		return;
	}
	tb_debug("linksocks: connect refused: %.*s", (int)msg->connect_resp.error.len, msg->connect_resp.error.p);
	if (c->fast_open) {
		c->state = CH_DONE;
		chan_fail(c, TB_EHOSTUNREACH);
		return;
	}
	open_complete(c, TB_EHOSTUNREACH);
}

static void on_disconnect(tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	tb_ls_chan_t *c = chan_find(m, msg->disconnect.channel);

	if (foreign(m, c, msg, raw, len) || c->state == CH_DONE)
		return;
	if (c->state == CH_OPENING && !c->fast_open) {
		open_complete(c, TB_EHOSTUNREACH);
		return;
	}
	if (c->state == CH_DIALING) {
		c->state = CH_DONE; /* egress_dialed frees it */
		return;
	}
	if (c->proto == TB_LS_PROTO_UDP) {
		c->state = CH_DONE;
		/* §4.3: the opener's Disconnect ends the association. The egress
		 * side owns the channel and its socket toward the targets:
		 * free them now, not when the WebSocket goes. */
		if (!c->owned)
			chan_free(c);
		return;
	}
	/* §11: flush what is queued to the socket, then end, without the
	 * reference's 5 s delay. */
	c->state = CH_DONE;
	c->eof_pending = true;
	if (!c->paused && c->s.h)
		chan_deliver(c);
}

void tb_ls_mux_input(tb_ls_mux_t *m, const uint8_t *p, size_t n)
{
	tb_ls_msg_t msg;
	int rc = tb_ls_msg_decode(p, n, &msg);

	if (rc == TB_ENOTSUP)
		return; /* §3.1: unknown types are ignored */
	if (rc < 0) {
		tb_debug("linksocks: dropped a malformed message (%s)", tb_strerror(rc));
		return; /* §10.14: drop the message, not the connection */
	}
	switch (msg.type) {
	case TB_LS_DATA:
		on_data(m, &msg, p, n);
		return;
	case TB_LS_CONNECT:
		if (m->o.egress) {
			on_connect(m, &msg);
			return;
		}
		break;
	case TB_LS_CONNECT_RESPONSE:
		on_connect_response(m, &msg, p, n);
		return;
	case TB_LS_DISCONNECT:
		on_disconnect(m, &msg, p, n);
		return;
	default:
		break;
	}
	if (m->control)
		m->control(m->ctx, m, &msg, p, n);
}

void tb_ls_mux_drained(tb_ls_mux_t *m)
{
	m->tx_full = false;
	/* Wake every writer that was told to wait, until the WebSocket is
	 * full again. A woken relay may close any channel, so the scan starts
	 * over after each wake-up; the flag is cleared first, so it ends. */
	while (!m->tx_full) {
		tb_ls_chan_t *c = m->chans;
		while (c && !c->want_drain)
			c = c->next;
		if (!c)
			return;
		c->want_drain = false;
		c->in_cb++;
		tb_stream_emit_drain(&c->s);
		chan_leave(c);
	}
}

int tb_ls_mux_opts_conf(tb_ls_mux_opts_t *o, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	int64_t batch = BATCH_MAX_DEFAULT, zmin = TB_LS_COMPRESS_MIN_DEFAULT, level = -1;
	int rc;

	if (((rc = tb_conf_get_int(t, "batch_max", &batch, err)) < 0 && rc != TB_ENOENT) ||
	    ((rc = tb_conf_get_int(t, "compress_threshold", &zmin, err)) < 0 && rc != TB_ENOENT) ||
	    ((rc = tb_conf_get_int(t, "compress_level", &level, err)) < 0 && rc != TB_ENOENT))
		return rc;
	rc = tb_conf_get(t, "compress_threshold") ? 0 : TB_ENOENT;
	if (batch < 1024 || batch > (int64_t)TB_LS_BATCH_MAX) {
		tb_conf_set_err(err, tb_conf_get(t, "batch_max"), "batch_max must be 1024 to %u bytes",
				TB_LS_BATCH_MAX);
		return TB_EINVAL;
	}
	if (zmin < 0 || zmin > (int64_t)TB_LS_BATCH_MAX) {
		tb_conf_set_err(err, tb_conf_get(t, "compress_threshold"),
				"compress_threshold must be 0 (never) to %u bytes", TB_LS_BATCH_MAX);
		return TB_EINVAL;
	}
	if (rc == TB_ENOENT && !ENABLE_ZLIB)
		zmin = 0; /* nothing to compress with, and nobody asked */
	if (zmin > 0 && !ENABLE_ZLIB) {
		tb_conf_set_err(err, tb_conf_get(t, "compress_threshold"),
				"gzip needs zlib, which this build leaves out (CONFIG_ZLIB)");
		return TB_ENOTSUP;
	}
	if (level != -1 && (level < 1 || level > 9)) {
		tb_conf_set_err(err, tb_conf_get(t, "compress_level"), "compress_level must be 1 to 9");
		return TB_EINVAL;
	}
	o->batch_max = (size_t)batch;
	o->compress_min = (size_t)zmin;
	o->compress_level = (int)level;
	return 0;
}

int tb_ls_mux_new(tb_loop_t *loop, const tb_ls_transport_t *tp, void *t, const tb_ls_mux_opts_t *o,
		  tb_ls_control_cb control, void *ctx, tb_ls_mux_t **out)
{
	tb_ls_mux_t *m = calloc(1, sizeof(*m));

	if (!m)
		return TB_ENOMEM;
	m->loop = loop;
	m->tp = tp;
	m->t = t;
	if (o)
		m->o = *o;
	if (!m->o.connect_wait_ms)
		m->o.connect_wait_ms = CONNECT_WAIT_MS;
	if (!m->o.stall_ms)
		m->o.stall_ms = STALL_MS;
	if (!m->o.batch_max)
		m->o.batch_max = BATCH_MAX_DEFAULT;
	m->o.batch_max = TB_MIN(m->o.batch_max, TB_LS_BATCH_MAX);
	m->control = control;
	m->ctx = ctx;
	*out = m;
	return 0;
}

void tb_ls_mux_free(tb_ls_mux_t *m, int err)
{
	if (!m)
		return;
	/* Every channel fails; owners close them (after the mux is gone, so
	 * nothing is sent on the dead transport). */
	while (m->chans) {
		tb_ls_chan_t *c = m->chans;
		tb_timer_stop(c->loop, &c->timer);
		tb_defer_cancel(c->loop, &c->defer);
		tb_defer_cancel(c->loop, &c->ready);
		tb_defer_cancel(c->loop, &c->flush);
		chan_drop_batch(c); /* nowhere to send it */
		chan_unlink(c);
		c->state = CH_DONE;
		if (c->open_cb) {
			void *arg;
			tb_connector_cb cb = take_open(c, &arg);
			/* not handed over yet (fast-open hands over and clears open_cb) */
			chan_free(c);
			cb(arg, NULL, TB_ENETUNREACH);
		} else if (c->dial) {
			/* egress_dialed runs later and frees it (mux is NULL) */
		} else if (c->owned) {
			chan_fail(c, TB_ECONNRESET);
		} else {
			chan_free(c);
		}
	}
	tb_ls_inflater_free(m->z);
	tb_ls_deflater_free(m->zd);
	free(m);
}

size_t tb_ls_mux_channels(const tb_ls_mux_t *m)
{
	return m->nchans;
}

/* ---- flows waiting for a mux ---- */

struct tb_ls_wait {
	tb_ls_wait_t *next;
	tb_ls_waitq_t *q;
	tb_target_t target;
	tb_connector_cb cb;
	void *arg;
	tb_timer_t timer;
	tb_defer_t defer;
	tb_ls_open_t *open;
};

static void wait_unlink_free(tb_ls_wait_t *w)
{
	tb_ls_wait_t **pp;

	for (pp = &w->q->head; *pp && *pp != w; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = w->next;
	tb_timer_stop(w->q->loop, &w->timer);
	tb_defer_cancel(w->q->loop, &w->defer);
	free(w);
}

static void wait_done(void *arg, tb_stream_t *s, int err)
{
	tb_ls_wait_t *w = arg;
	tb_connector_cb cb = w->cb;
	void *cbarg = w->arg;

	w->open = NULL;
	wait_unlink_free(w);
	cb(cbarg, s, err);
}

static void wait_try(tb_loop_t *loop, void *arg)
{
	tb_ls_wait_t *w = arg;
	tb_ls_mux_t *m;
	int rc;

	if (w->open || !(m = w->q->pick(w->q->ctx)))
		return; /* opening already, or keep waiting */
	tb_timer_stop(loop, &w->timer);
	rc = tb_ls_mux_open(m, &w->target, w->q->fast_open, wait_done, w, &w->open);
	if (rc < 0)
		wait_done(w, NULL, rc);
}

static void wait_timeout(tb_loop_t *loop, void *arg)
{
	wait_done(arg, NULL, TB_ENETUNREACH);
}

int tb_ls_waitq_open(tb_ls_waitq_t *q, const tb_target_t *t, tb_connector_cb cb, void *arg, tb_connect_req_t **req)
{
	tb_ls_wait_t *w = calloc(1, sizeof(*w));

	if (!w)
		return TB_ENOMEM;
	w->q = q;
	w->target = *t;
	w->cb = cb;
	w->arg = arg;
	tb_timer_init(&w->timer, wait_timeout, w);
	tb_defer_init(&w->defer, wait_try, w);
	w->next = q->head;
	q->head = w;
	tb_timer_start(q->loop, &w->timer, q->wait_ms ? q->wait_ms : 10000u);
	tb_defer(q->loop, &w->defer);
	*req = (tb_connect_req_t *)w;
	return 0;
}

void tb_ls_waitq_cancel(tb_connect_req_t *req)
{
	tb_ls_wait_t *w = (tb_ls_wait_t *)req;

	if (w->open)
		tb_ls_open_cancel(w->open);
	wait_unlink_free(w);
}

void tb_ls_waitq_kick(tb_ls_waitq_t *q)
{
	for (tb_ls_wait_t *w = q->head; w; w = w->next)
		if (!w->open)
			tb_defer(q->loop, &w->defer);
}

void tb_ls_waitq_clear(tb_ls_waitq_t *q)
{
	while (q->head) {
		if (q->head->open)
			tb_ls_open_cancel(q->head->open);
		wait_unlink_free(q->head);
	}
}

/* ---- the mux over a WebSocket ---- */

static int ws_send(void *t, const void *hdr, size_t hlen, const void *body, size_t blen)
{
	return tb_ws_send2(t, TB_WS_OP_BINARY, hdr, hlen, body, blen);
}

static void ws_pause(void *t)
{
	tb_ws_pause(t);
}

static void ws_resume(void *t)
{
	tb_ws_resume(t);
}

const tb_ls_transport_t tb_ls_ws_transport = {ws_send, ws_pause, ws_resume};
