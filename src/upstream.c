/* upstream.c: the `socks5` and `http` connectors (upstream.h).
 *
 * One request: resolve the proxy (unless a literal), dial its addresses in
 * order, then the handshake over the proxy stream, all under one timer set
 * to the connect timeout. Bytes read past the proxy's reply are kept and,
 * when there are any, the stream is handed over wrapped in a small filter
 * that delivers them first (ordinarily the raw stream is handed over).
 *
 * UDP through a socks5 upstream (RFC 1928 §7): udp_open() starts the same
 * request with UDP ASSOCIATE on a control connection, then sends each
 * datagram to the relay the proxy names, behind the SOCKS5 UDP header. A
 * few datagrams sent before the relay is known wait in a bounded queue; the
 * association dies with its control connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tb/http.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb/socks5.h"
#include "tb/upstream.h"

enum { UP_SOCKS5, UP_HTTP };

typedef struct up_connector {
	tb_connector_t c;
	int kind;
	tb_target_t proxy;
	char *user, *pass; /* NULL when not configured */
} up_connector_t;

enum { ST_RESOLVE, ST_DIAL, ST_METHOD, ST_AUTH, ST_REPLY, ST_HTTP };

#define RBUF_SOCKS5 (TB_SOCKS5_REQUEST_MAX + 64)

typedef struct up_udp up_udp_t;

struct tb_connect_req {
	up_connector_t *u;
	up_udp_t *udp; /* UDP ASSOCIATE for this association; NULL: CONNECT */
	tb_target_t target;
	tb_connector_cb cb;
	void *arg;
	int state;
	tb_dns_query_t *dq;
	tb_tcp_connect_t *tc;
	tb_stream_t *s;
	tb_timer_t timer;
	tb_addr_t addrs[TB_DNS_MAX_ADDRS];
	size_t n, next;
	int err; /* the most telling dial error so far */
	uint8_t *rbuf;
	size_t rlen, rcap;
};

/* ---- the filter that delivers bytes read past the handshake ---- */

typedef struct pfx {
	tb_stream_t s;
	tb_stream_t *in;
	tb_loop_t *loop;
	tb_defer_t defer;
	uint8_t *buf;
	size_t len;
	bool paused, busy, dead;
} pfx_t;

static void pfx_free(pfx_t *p)
{
	free(p->buf);
	free(p);
}

static void pfx_flush(tb_loop_t *loop, void *arg)
{
	pfx_t *p = arg;

	if (p->paused)
		return;
	if (p->len) {
		size_t n = p->len;
		p->len = 0;
		p->busy = true;
		tb_stream_emit_data(&p->s, p->buf, n);
		p->busy = false;
		if (p->dead) {
			pfx_free(p);
			return;
		}
		if (p->paused)
			return;
	}
	tb_stream_resume(p->in);
}

static int pfx_write(tb_stream_t *s, const void *d, size_t n) { return tb_stream_write(((pfx_t *)s)->in, d, n); }
static int pfx_shutdown(tb_stream_t *s) { return tb_stream_shutdown(((pfx_t *)s)->in); }
static size_t pfx_queued(const tb_stream_t *s) { return tb_stream_queued(((const pfx_t *)s)->in); }

static void pfx_close(tb_stream_t *s)
{
	pfx_t *p = (pfx_t *)s;

	tb_defer_cancel(p->loop, &p->defer);
	tb_stream_close(p->in);
	if (p->busy)
		p->dead = true; /* freed when the emit returns */
	else
		pfx_free(p);
}

static void pfx_pause(tb_stream_t *s)
{
	pfx_t *p = (pfx_t *)s;

	p->paused = true;
	tb_stream_pause(p->in);
}

static void pfx_resume(tb_stream_t *s)
{
	pfx_t *p = (pfx_t *)s;

	if (!p->paused)
		return;
	p->paused = false;
	if (p->len)
		tb_defer(p->loop, &p->defer); /* the held bytes first, from the loop */
	else
		tb_stream_resume(p->in);
}

static const tb_stream_ops_t pfx_ops = {pfx_write, pfx_shutdown, pfx_close, pfx_pause, pfx_resume, pfx_queued};

static void pfx_on_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n) { tb_stream_emit_data(ctx, d, n); }
static void pfx_on_drain(void *ctx, tb_stream_t *s) { tb_stream_emit_drain(ctx); }
static void pfx_on_eof(void *ctx, tb_stream_t *s) { tb_stream_emit_eof(ctx); }
static void pfx_on_close(void *ctx, tb_stream_t *s, int err) { tb_stream_emit_close(ctx, err); }

static const tb_stream_handler_t pfx_handler = {pfx_on_data, pfx_on_drain, pfx_on_eof, pfx_on_close};

/* in is paused until the held bytes are out. NULL when memory ran out. */
static tb_stream_t *pfx_new(tb_loop_t *loop, tb_stream_t *in, const uint8_t *d, size_t n)
{
	pfx_t *p = calloc(1, sizeof(*p));

	if (!p || !(p->buf = malloc(n))) {
		free(p);
		return NULL;
	}
	memcpy(p->buf, d, n);
	p->len = n;
	p->in = in;
	p->loop = loop;
	p->s.ops = &pfx_ops;
	p->s.hiwat = in->hiwat;
	tb_defer_init(&p->defer, pfx_flush, p);
	tb_stream_set_handler(in, &pfx_handler, &p->s);
	tb_stream_pause(in);
	tb_defer(loop, &p->defer);
	return &p->s;
}

/* ---- the request ---- */

static tb_loop_t *req_loop(tb_connect_req_t *q) { return q->u->c.env->loop; }

static void req_release(tb_connect_req_t *q)
{
	tb_dns_cancel(q->dq);
	tb_tcp_connect_cancel(q->tc);
	tb_timer_stop(req_loop(q), &q->timer);
	if (q->s)
		tb_stream_close(q->s);
	free(q->rbuf);
	free(q);
}

static void req_fail(tb_connect_req_t *q, int err)
{
	tb_connector_cb cb = q->cb;
	void *arg = q->arg;
	char buf[TB_ADDR_STRLEN + TB_HOST_MAX];

	tb_debug("%s: %s via %s: %s", q->u->c.name, tb_target_str(&q->target, buf, sizeof(buf)),
		 q->u->proxy.host, tb_strerror(err));
	req_release(q);
	cb(arg, NULL, err);
}

/* The handshake is over; rbuf[0..rlen) holds what followed the reply. */
static void req_succeed(tb_connect_req_t *q)
{
	tb_connector_cb cb = q->cb;
	void *arg = q->arg;
	tb_stream_t *s = q->s;

	if (q->rlen && !(s = pfx_new(req_loop(q), q->s, q->rbuf, q->rlen))) {
		req_fail(q, TB_ENOMEM);
		return;
	}
	if (!q->rlen)
		tb_stream_set_handler(s, NULL, NULL);
	q->s = NULL;
	req_release(q);
	cb(arg, s, 0);
}

static void req_timeout(tb_loop_t *loop, void *arg)
{
	req_fail(arg, TB_ETIMEDOUT);
}

static int req_write(tb_connect_req_t *q, const void *d, size_t n)
{
	int rc = tb_stream_write(q->s, d, n);

	return rc == TB_ENOBUFS ? 0 : rc;
}

static void rbuf_consume(tb_connect_req_t *q, size_t n)
{
	memmove(q->rbuf, q->rbuf + n, q->rlen - n);
	q->rlen -= n;
}

static void udp_relay_named(up_udp_t *uu, const tb_target_t *bnd, const tb_addr_t *proxy);

static int socks5_send_request(tb_connect_req_t *q)
{
	uint8_t out[TB_SOCKS5_REQUEST_MAX];
	int n = tb_socks5_client_request_build(out, sizeof(out),
					       q->udp ? TB_SOCKS5_CMD_UDP : TB_SOCKS5_CMD_CONNECT, &q->target);

	if (n < 0)
		return n;
	q->state = ST_REPLY;
	return req_write(q, out, (size_t)n);
}

/* One step of the SOCKS5 client: > 0 when a message was consumed, TB_EAGAIN
 * for more input, 0 when done, else an error. */
static int socks5_step(tb_connect_req_t *q)
{
	up_connector_t *u = q->u;
	uint8_t v, out[TB_SOCKS5_USERPASS_MAX];
	tb_target_t bnd;
	int n, rc;

	switch (q->state) {
	case ST_METHOD:
		if ((n = tb_socks5_client_method_parse(q->rbuf, q->rlen, &v)) < 0)
			return n;
		rbuf_consume(q, (size_t)n);
		if (v == TB_SOCKS5_M_NOAUTH)
			return (rc = socks5_send_request(q)) < 0 ? rc : 1;
		if (v != TB_SOCKS5_M_USERPASS || !u->user)
			return v == TB_SOCKS5_M_NONE ? TB_EDENIED : TB_EPROTO;
		if ((rc = tb_socks5_client_userpass_build(out, sizeof(out), u->user, strlen(u->user), u->pass,
							  strlen(u->pass))) < 0)
			return rc;
		q->state = ST_AUTH;
		return (rc = req_write(q, out, (size_t)rc)) < 0 ? rc : 1;
	case ST_AUTH:
		if ((n = tb_socks5_client_userpass_reply_parse(q->rbuf, q->rlen, &v)) < 0)
			return n;
		rbuf_consume(q, (size_t)n);
		if (v != 0)
			return TB_EDENIED;
		return (rc = socks5_send_request(q)) < 0 ? rc : 1;
	case ST_REPLY:
		if ((n = tb_socks5_client_reply_parse(q->rbuf, q->rlen, &v, &bnd)) < 0)
			return n == TB_EAFNOSUPPORT ? TB_EPROTO : n;
		rbuf_consume(q, (size_t)n);
		if (v != TB_SOCKS5_REP_OK)
			return tb_socks5_err_from_rep(v);
		if (q->udp) {
			/* BND is the relay; the unspecified address means the proxy's. */
			if (!bnd.is_ip || bnd.port == 0)
				return TB_EPROTO;
			udp_relay_named(q->udp, &bnd, &q->addrs[q->next - 1]);
		}
		return 0;
	}
	return TB_EPROTO;
}

static int http_step(tb_connect_req_t *q)
{
	tb_http_request_t *r = malloc(sizeof(*r));
	int status, n;

	if (!r)
		return TB_ENOMEM;
	n = tb_http_response_parse(q->rbuf, q->rlen, r, &status);
	free(r);
	if (n < 0)
		return n;
	rbuf_consume(q, (size_t)n);
	if (status >= 200 && status < 300)
		return 0;
	tb_debug("%s: the proxy answered %d", q->u->c.name, status);
	if (status == 407 || status == 403)
		return TB_EDENIED;
	if (status == 504)
		return TB_ETIMEDOUT;
	return TB_ECONNREFUSED;
}

static void up_on_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	tb_connect_req_t *q = ctx;
	int rc;

	if (n > q->rcap - q->rlen) {
		req_fail(q, q->state == ST_HTTP ? TB_ERANGE : TB_EPROTO);
		return;
	}
	memcpy(q->rbuf + q->rlen, d, n);
	q->rlen += n;
	do
		rc = q->state == ST_HTTP ? http_step(q) : socks5_step(q);
	while (rc > 0);
	if (rc == 0)
		req_succeed(q);
	else if (rc != TB_EAGAIN)
		req_fail(q, rc);
}

static void up_on_eof(void *ctx, tb_stream_t *s)
{
	req_fail(ctx, TB_ECONNRESET);
}

static void up_on_close(void *ctx, tb_stream_t *s, int err)
{
	req_fail(ctx, err < 0 ? err : TB_ECONNRESET);
}

static const tb_stream_handler_t up_handler = {up_on_data, NULL, up_on_eof, up_on_close};

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* NUL-terminated; out holds 4 * ceil(n / 3) + 1. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*out++ = b64[v >> 18];
		*out++ = b64[(v >> 12) & 63];
		*out++ = b64[(v >> 6) & 63];
		*out++ = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
		*out++ = b64[v >> 18];
		*out++ = b64[(v >> 12) & 63];
		*out++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

static int http_send_connect(tb_connect_req_t *q)
{
	up_connector_t *u = q->u;
	char auth[700], cred[520], hp[TB_HOST_MAX + 16], *head;
	int n, rc;

	tb_target_str(&q->target, hp, sizeof(hp));
	auth[0] = '\0';
	if (u->user) {
		n = snprintf(cred, sizeof(cred), "%s:%s", u->user, u->pass);
		if (n < 0 || (size_t)n >= sizeof(cred))
			return TB_ERANGE;
		memcpy(auth, "Proxy-Authorization: Basic ", 27);
		b64_encode((const uint8_t *)cred, (size_t)n, auth + 27);
		strcat(auth, "\r\n");
	}
	size_t cap = 2 * sizeof(hp) + sizeof(auth) + 64;
	if (!(head = malloc(cap)))
		return TB_ENOMEM;
	n = snprintf(head, cap, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", hp, hp, auth);
	rc = req_write(q, head, (size_t)n);
	free(head);
	return rc;
}

static void up_connected(void *arg, tb_stream_t *s, int err);
static void up_dial_next(tb_connect_req_t *q);

static void up_start_handshake(tb_connect_req_t *q)
{
	uint8_t out[3 + 1];
	int rc;

	tb_stream_set_handler(q->s, &up_handler, q);
	q->rcap = q->u->kind == UP_HTTP ? TB_HTTP_RESP_HEAD_MAX : RBUF_SOCKS5;
	if (!(q->rbuf = malloc(q->rcap))) {
		req_fail(q, TB_ENOMEM);
		return;
	}
	if (q->u->kind == UP_HTTP) {
		q->state = ST_HTTP;
		rc = http_send_connect(q);
	} else {
		q->state = ST_METHOD;
		rc = tb_socks5_client_greeting_build(out, sizeof(out), q->u->user != NULL);
		if (rc > 0)
			rc = req_write(q, out, (size_t)rc);
	}
	if (rc < 0)
		req_fail(q, rc);
}

static void up_connected(void *arg, tb_stream_t *s, int err)
{
	tb_connect_req_t *q = arg;

	q->tc = NULL;
	if (err == 0) {
		q->s = s;
		up_start_handshake(q);
		return;
	}
	if (q->err == 0 || err == TB_ECONNREFUSED)
		q->err = err;
	up_dial_next(q);
}

static void up_dial_next(tb_connect_req_t *q)
{
	q->state = ST_DIAL;
	while (q->next < q->n) {
		tb_addr_t *a = &q->addrs[q->next++];
		a->port = q->u->proxy.port;
		/* The timer bounds the whole request; the dial gets the same. */
		int err = tb_tcp_connect(req_loop(q), a, q->u->c.env->connect_timeout_ms, up_connected, q, &q->tc);
		if (err == 0)
			return;
		q->err = err;
	}
	/* The proxy is unreachable: report it as such, whatever the target. */
	req_fail(q, q->err ? q->err : TB_EHOSTUNREACH);
}

static void up_resolved(void *arg, int err, const tb_addr_t *addrs, size_t n)
{
	tb_connect_req_t *q = arg;

	q->dq = NULL;
	if (err < 0 || n == 0) {
		req_fail(q, err == TB_ETIMEDOUT || err >= 0 ? TB_EHOSTUNREACH : err);
		return;
	}
	q->n = TB_MIN(n, TB_ARRAY_SIZE(q->addrs));
	memcpy(q->addrs, addrs, q->n * sizeof(addrs[0]));
	up_dial_next(q);
}

static int up_connect(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg,
		      tb_connect_req_t **out)
{
	up_connector_t *u = (up_connector_t *)c;
	tb_connect_req_t *q = calloc(1, sizeof(*q));
	int err;

	if (!q)
		return TB_ENOMEM;
	q->u = u;
	q->target = *t;
	q->cb = cb;
	q->arg = arg;
	tb_timer_init(&q->timer, req_timeout, q);
	if (u->proxy.is_ip) {
		q->addrs[0] = u->proxy.addr;
		q->n = 1;
		q->next = 1;
		q->state = ST_DIAL;
		err = tb_tcp_connect(c->env->loop, &q->addrs[0], c->env->connect_timeout_ms, up_connected, q, &q->tc);
	} else if (!c->env->dns) {
		err = TB_EHOSTUNREACH;
	} else {
		q->state = ST_RESOLVE;
		err = tb_dns_resolve(c->env->dns, u->proxy.host, 0, up_resolved, q, &q->dq);
	}
	if (err < 0) {
		free(q);
		return err;
	}
	tb_timer_start(c->env->loop, &q->timer, c->env->connect_timeout_ms);
	*out = q;
	return 0;
}

static void up_cancel(tb_connect_req_t *q)
{
	if (q)
		req_release(q);
}

/* ---- UDP through a socks5 upstream ---- */

#define UDP_QUEUE_MAX 16		  /* datagrams waiting for the relay's address */
#define UDP_QUEUE_BYTES (64u * 1024u)	  /* and their bytes */

typedef struct udp_pending {
	struct udp_pending *next;
	size_t len; /* header and payload */
	uint8_t data[];
} udp_pending_t;

struct up_udp {
	tb_dgram_t d; /* first */
	up_connector_t *u;
	tb_connect_req_t *q; /* the handshake; NULL after it */
	tb_stream_t *ctl;    /* the control connection, held open */
	tb_udp_t *sock;
	tb_addr_t relay;
	bool ready, dead;
	udp_pending_t *head, **tail;
	size_t nq, qbytes;
};

static void udp_queue_clear(up_udp_t *uu)
{
	while (uu->head) {
		udp_pending_t *p = uu->head;
		uu->head = p->next;
		free(p);
	}
	uu->tail = &uu->head;
	uu->nq = uu->qbytes = 0;
}

/* The association is over (the proxy closed the control connection, or the
 * handshake failed): later sends fail, the owner learns it from them. */
static void udp_die(up_udp_t *uu, int err)
{
	if (uu->dead)
		return;
	tb_debug("%s: UDP association via %s ended: %s", uu->u->c.name, uu->u->proxy.host, tb_strerror(err));
	uu->dead = true;
	udp_queue_clear(uu);
	if (uu->ctl) {
		tb_stream_close(uu->ctl);
		uu->ctl = NULL;
	}
}

/* BND of the reply; the unspecified address means the proxy's own (the
 * address we dialed). */
static void udp_relay_named(up_udp_t *uu, const tb_target_t *bnd, const tb_addr_t *proxy)
{
	static const uint8_t zero[16];

	uu->relay = bnd->addr;
	if (!memcmp(bnd->addr.ip, zero, bnd->addr.family == TB_AF_INET ? 4 : 16))
		uu->relay = *proxy;
	uu->relay.port = bnd->port;
}

static void udp_recv(void *arg, tb_udp_t *u, const tb_addr_t *from, const uint8_t *data, size_t len)
{
	up_udp_t *uu = arg;
	tb_target_t src;
	uint8_t frag;
	int n;

	/* Only the relay speaks on this socket (RFC 1928 §7). */
	if (!uu->ready || uu->dead || !tb_addr_ip_equal(from, &uu->relay) || from->port != uu->relay.port)
		return;
	if ((n = tb_socks5_udp_parse(data, len, &frag, &src)) < 0 || frag != 0)
		return; /* malformed, or a fragment: dropped, as the listener does */
	uu->d.recv(uu->d.arg, &uu->d, &src, data + n, len - (size_t)n);
}

static void ctl_on_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	/* Nothing is expected on the control connection after the reply. */
}

static void ctl_on_eof(void *ctx, tb_stream_t *s)
{
	udp_die(ctx, TB_ECONNRESET);
}

static void ctl_on_close(void *ctx, tb_stream_t *s, int err)
{
	udp_die(ctx, err < 0 ? err : TB_ECONNRESET);
}

static const tb_stream_handler_t ctl_handler = {ctl_on_data, NULL, ctl_on_eof, ctl_on_close};

static void udp_ready(void *arg, tb_stream_t *s, int err)
{
	up_udp_t *uu = arg;
	tb_addr_t any;

	uu->q = NULL;
	if (err < 0) {
		udp_die(uu, err);
		return;
	}
	uu->ctl = s;
	tb_stream_set_handler(s, &ctl_handler, uu);
	memset(&any, 0, sizeof(any));
	any.family = uu->relay.family;
	if ((err = tb_udp_open(uu->u->c.env->loop, &any, udp_recv, uu, &uu->sock)) < 0) {
		udp_die(uu, err);
		return;
	}
	uu->ready = true;
	for (udp_pending_t *p = uu->head; p; p = p->next)
		tb_udp_send(uu->sock, &uu->relay, p->data, p->len);
	udp_queue_clear(uu);
}

static int udp_dgram_send(tb_dgram_t *d, const tb_target_t *to, const void *data, size_t len)
{
	up_udp_t *uu = (up_udp_t *)d;
	uint8_t hdr[TB_SOCKS5_UDP_HDR_MAX], *buf;
	int hl, rc;

	if (uu->dead)
		return TB_ENETUNREACH;
	if ((hl = tb_socks5_udp_build(hdr, sizeof(hdr), to)) < 0)
		return hl;
	if (len > 65535u - (size_t)hl)
		return TB_ERANGE;
	if (!uu->ready) {
		udp_pending_t *p;
		if (uu->nq >= UDP_QUEUE_MAX || uu->qbytes + (size_t)hl + len > UDP_QUEUE_BYTES)
			return TB_EAGAIN;
		if (!(p = malloc(sizeof(*p) + (size_t)hl + len)))
			return TB_ENOMEM;
		p->next = NULL;
		p->len = (size_t)hl + len;
		memcpy(p->data, hdr, (size_t)hl);
		memcpy(p->data + hl, data, len);
		*uu->tail = p;
		uu->tail = &p->next;
		uu->nq++;
		uu->qbytes += p->len;
		return 0;
	}
	if (!(buf = malloc((size_t)hl + len)))
		return TB_ENOMEM;
	memcpy(buf, hdr, (size_t)hl);
	memcpy(buf + hl, data, len);
	rc = tb_udp_send(uu->sock, &uu->relay, buf, (size_t)hl + len);
	free(buf);
	return rc;
}

static void udp_dgram_close(tb_dgram_t *d)
{
	up_udp_t *uu = (up_udp_t *)d;

	if (uu->q)
		req_release(uu->q);
	uu->dead = true; /* no log line: the owner ended it */
	udp_queue_clear(uu);
	if (uu->ctl)
		tb_stream_close(uu->ctl);
	if (uu->sock)
		tb_udp_close(uu->sock);
	free(uu);
}

static const tb_dgram_ops_t up_dgram_ops = {udp_dgram_send, udp_dgram_close};

static int up_udp_open(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	up_connector_t *u = (up_connector_t *)c;
	up_udp_t *uu;
	tb_target_t any;
	int rc;

	if (u->kind != UP_SOCKS5)
		return TB_ENOTSUP; /* an HTTP proxy carries TCP only */
	if (!(uu = calloc(1, sizeof(*uu))))
		return TB_ENOMEM;
	uu->d.ops = &up_dgram_ops;
	uu->d.recv = cb;
	uu->d.arg = arg;
	uu->u = u;
	uu->tail = &uu->head;
	/* DST in the request: where we will send from, unknown yet: zeros. */
	if ((rc = tb_target_set(&any, "0.0.0.0", 7, 0)) < 0) {
		free(uu);
		return rc;
	}
	if ((rc = up_connect(c, &any, udp_ready, uu, &uu->q)) < 0) {
		free(uu);
		return rc;
	}
	uu->q->udp = uu;
	*out = &uu->d;
	return 0;
}

static void up_free(tb_connector_t *c)
{
	up_connector_t *u = (up_connector_t *)c;

	free(u->user);
	free(u->pass);
	free(c->name);
	free(u);
}

static const tb_connector_ops_t socks5_ops = {
	.proto = "socks5",
	.connect = up_connect,
	.cancel = up_cancel,
	.udp_open = up_udp_open,
	.free = up_free,
};

static const tb_connector_ops_t http_ops = {
	.proto = "http",
	.connect = up_connect,
	.cancel = up_cancel,
	.udp_open = up_udp_open,
	.free = up_free,
};

/* ---- configuration ---- */

/* %-decodes p[0..n) into a fresh string; NULL on a bad escape or no memory. */
static char *pct_dup(const char *p, size_t n)
{
	char *s = malloc(n + 1), *o = s;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '%') {
			*o++ = p[i];
			continue;
		}
		int hi = i + 2 < n ? tb_hexval(p[i + 1]) : -1, lo = i + 2 < n ? tb_hexval(p[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(s);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = '\0';
	return s;
}

static int parse_url(up_connector_t *u, const tb_conf_val_t *v, const char *url, uint16_t defport,
		     tb_conf_err_t *err)
{
	const char *rest, *at, *colon, *end;
	size_t sl;

	if (u->kind == UP_HTTP) {
		if (strncasecmp(url, "http://", 7) != 0)
			goto bad_scheme;
		rest = url + 7;
	} else {
		if (strncasecmp(url, "socks5://", 9) == 0)
			rest = url + 9;
		else if (strncasecmp(url, "socks5h://", 10) == 0)
			rest = url + 10;
		else
			goto bad_scheme;
	}
	end = rest + strcspn(rest, "/?#");
	if (*end && strcmp(end, "/") != 0) {
		tb_conf_set_err(err, v, "a proxy URL has no path");
		return TB_EINVAL;
	}
	at = NULL;
	for (const char *p = rest; p < end; p++)
		if (*p == '@')
			at = p;
	if (at) {
		colon = memchr(rest, ':', (size_t)(at - rest));
		if (!colon || colon == rest || colon + 1 == at || !(u->user = pct_dup(rest, (size_t)(colon - rest))) ||
		    !(u->pass = pct_dup(colon + 1, (size_t)(at - colon - 1)))) {
			tb_conf_set_err(err, v, "expected user:password@ before the host");
			return TB_EINVAL;
		}
		rest = at + 1;
	}
	sl = (size_t)(end - rest);
	if (tb_http_authority_parse(rest, sl, defport, &u->proxy) < 0) {
		tb_conf_set_err(err, v, "bad proxy host[:port] '%.*s'", (int)sl, rest);
		return TB_EINVAL;
	}
	return 0;
bad_scheme:
	tb_conf_set_err(err, v, "expected %s", u->kind == UP_HTTP ? "http://..." : "socks5://...");
	return TB_EINVAL;
}

static int up_configure(up_connector_t *u, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	uint16_t defport = u->kind == UP_HTTP ? 8080 : 1080;
	const char *url = NULL, *ep = NULL, *user = NULL, *pass = NULL;
	int rc;

	if ((rc = tb_conf_get_str(t, "url", &url, err)) == TB_EINVAL ||
	    (rc = tb_conf_get_str(t, "endpoint", &ep, err)) == TB_EINVAL ||
	    (rc = tb_conf_get_str(t, "user", &user, err)) == TB_EINVAL ||
	    (rc = tb_conf_get_str(t, "pass", &pass, err)) == TB_EINVAL)
		return TB_EINVAL;
	if (url && ep) {
		tb_conf_set_err(err, tb_conf_get(t, "url"), "give url or endpoint, not both");
		return TB_EINVAL;
	}
	if (url) {
		if ((rc = parse_url(u, tb_conf_get(t, "url"), url, defport, err)) < 0)
			return rc;
	} else if (ep) {
		if (tb_http_authority_parse(ep, strlen(ep), defport, &u->proxy) < 0) {
			tb_conf_set_err(err, tb_conf_get(t, "endpoint"), "expected host[:port], got '%s'", ep);
			return TB_EINVAL;
		}
	} else {
		tb_conf_need_str(t, "endpoint", &ep, err);
		return TB_EINVAL;
	}
	if (user || pass) {
		if (u->user) {
			tb_conf_set_err(err, tb_conf_get(t, user ? "user" : "pass"),
					"the url already holds the credentials");
			return TB_EINVAL;
		}
		if (!user || !pass || !*user || strlen(user) > 255 || strlen(pass) > 255 ||
		    (u->kind == UP_SOCKS5 && !*pass)) {
			tb_conf_set_err(err, tb_conf_get(t, user ? "user" : "pass"),
					"user and pass go together, 1..255 bytes each");
			return TB_EINVAL;
		}
		if (!(u->user = strdup(user)) || !(u->pass = strdup(pass)))
			return TB_ENOMEM;
	}
	if (u->user && (strlen(u->user) > 255 || strlen(u->pass) > 255 || !*u->pass)) {
		tb_conf_set_err(err, tb_conf_get(t, "url"), "user and password: 1..255 bytes each");
		return TB_EINVAL;
	}
	return 0;
}

int tb_upstream_connector_new(const tb_connector_env_t *env, const char *name, const char *proto,
			      const tb_conf_val_t *table, tb_connector_t **out, tb_conf_err_t *err)
{
	up_connector_t *u;
	int rc;

	if (strcmp(proto, "socks5") != 0 && strcmp(proto, "http") != 0)
		return TB_ENOENT;
	if (!(u = calloc(1, sizeof(*u))) || !(u->c.name = strdup(name))) {
		free(u);
		return TB_ENOMEM;
	}
	u->kind = strcmp(proto, "http") == 0 ? UP_HTTP : UP_SOCKS5;
	u->c.ops = u->kind == UP_HTTP ? &http_ops : &socks5_ops;
	u->c.env = env;
	if ((rc = up_configure(u, table, err)) < 0) {
		up_free(&u->c);
		return rc;
	}
	*out = &u->c;
	return 0;
}
