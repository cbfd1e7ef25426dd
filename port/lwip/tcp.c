/* tcp.c: TCP streams, listeners and connects on lwIP's raw API.
 *
 * Receive: lwIP hands us pbuf chains (tcp_recv); we own them and keep them
 * in rx until the consumer has taken the bytes through on_data, and only
 * then tcp_recved() them. A paused stream therefore stops opening the
 * window: the peer is held back by TCP itself, and the memory held is at
 * most one window per connection.
 * Send: bytes go into lwIP's send buffer (tcp_write with COPY) while it has
 * room; the rest waits in a lazily allocated tb_buf_t and moves on as the
 * peer acknowledges (tcp_sent) or on the poll timer when lwIP was short of
 * segments. The high-water mark applies to that tb_buf_t, as on POSIX.
 * tcp_output runs once per loop turn for every stream written to in it
 * (lwIP's before-sleep hook, tb_lwip_set_flush), not once per write: a
 * relay's writes of one received segment each then leave as full-MSS
 * segments, and the device sees one burst per turn. Likewise tcp_recved is
 * called once per delivery run, not once per pbuf, so window updates (each
 * possibly an immediate ACK) follow what the consumer took in a turn.
 * lwIP may call tcp_err from inside another PCB's allocation (tcp_kill_*),
 * so a stream's death is reported through a deferred call; a stream closed
 * inside one of lwIP's callbacks for its own PCB aborts it and returns
 * ERR_ABRT as the raw API requires. */
#include <stdlib.h>
#include <string.h>

#include "lwip/tcp.h"
#include "tb/buf.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb_lwip.h"

#define TCP_POLL_INTERVAL 2 /* lwIP coarse ticks (500 ms): retry a stalled send */

typedef struct tb_ltcp {
	tb_stream_t s; /* first: a tb_stream_t * is a tb_ltcp_t * */
	tb_loop_t *loop;
	struct tcp_pcb *pcb; /* NULL once lwIP freed it or we let it go */
	struct pbuf *rx;     /* received, not yet taken by the consumer */
	tb_buf_t out;
	tb_defer_t defer; /* delivers rx after resume(), reports death */
	struct tb_ltcp *out_next, *out_prev; /* on the output list while out_queued */
	int pending_err;
	uint8_t in_cb;
	bool out_queued;
	bool paused, eof_pending, eof, shut_pending, shut_done, want_drain, dead, closed, aborted;
} tb_ltcp_t;

struct tb_tcp_listener {
	tb_loop_t *loop;
	struct tcp_pcb *pcb;
	tb_addr_t addr;
	tb_tcp_accept_cb cb;
	void *arg;
	bool paused;
};

struct tb_tcp_connect {
	tb_loop_t *loop;
	struct tcp_pcb *pcb;
	tb_timer_t timer;
	tb_defer_t defer;
	int err;
	tb_tcp_connect_cb cb;
	void *arg;
};

static const tb_stream_ops_t ltcp_ops;

/* Streams written to this turn, flushed by flush_output() before the loop sleeps. */
static tb_ltcp_t *out_head;

static void out_unlink(tb_ltcp_t *t)
{
	if (!t->out_queued)
		return;
	if (t->out_prev)
		t->out_prev->out_next = t->out_next;
	else
		out_head = t->out_next;
	if (t->out_next)
		t->out_next->out_prev = t->out_prev;
	t->out_next = t->out_prev = NULL;
	t->out_queued = false;
}

static void flush_output(void)
{
	while (out_head) {
		tb_ltcp_t *t = out_head;
		out_unlink(t);
		if (t->pcb)
			tcp_output(t->pcb); /* ERR_MEM: lwIP's own timer or the next ACK retries */
	}
}

static void output_later(tb_ltcp_t *t)
{
	if (t->out_queued || !t->pcb)
		return;
	tb_lwip_set_flush(flush_output);
	t->out_next = out_head;
	t->out_prev = NULL;
	if (out_head)
		out_head->out_prev = t;
	out_head = t;
	t->out_queued = true;
}

static void ltcp_free(tb_ltcp_t *t)
{
	out_unlink(t);
	tb_defer_cancel(t->loop, &t->defer);
	if (t->rx)
		pbuf_free(t->rx);
	tb_buf_free(&t->out);
	free(t);
}

static bool ltcp_leave(tb_ltcp_t *t)
{
	t->in_cb--;
	if (!t->closed)
		return false;
	if (t->in_cb == 0)
		ltcp_free(t);
	return true;
}

/* Leaves a section that runs inside one of lwIP's callbacks for t's PCB:
 * ERR_ABRT when the owner's close aborted that PCB, as the raw API requires. */
static err_t ltcp_leave_ret(tb_ltcp_t *t)
{
	err_t ret = t->aborted ? ERR_ABRT : ERR_OK;

	ltcp_leave(t);
	return ret;
}

static void ltcp_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
	tcp_poll(pcb, NULL, 0);
}

/* The stream died (reset, timeout, lwIP's abort): report it from the loop. */
static void ltcp_die_later(tb_ltcp_t *t, int err)
{
	if (t->dead || t->pending_err)
		return;
	t->pending_err = err;
	tb_defer(t->loop, &t->defer);
}

static void ltcp_shut_maybe(tb_ltcp_t *t, bool *shut_now)
{
	if (t->shut_pending && !t->shut_done && tb_buf_len(&t->out) == 0 && t->pcb) {
		if (tcp_shutdown(t->pcb, 0, 1) == ERR_OK) {
			t->shut_done = true;
			*shut_now = true;
			tcp_output(t->pcb);
		}
	}
}

/* Moves queued bytes into lwIP's send buffer as far as it has room. */
static void ltcp_push(tb_ltcp_t *t, const uint8_t *p, size_t len, size_t *taken)
{
	*taken = 0;
	while (len > 0 && t->pcb) {
		size_t room = tcp_sndbuf(t->pcb);
		if (room == 0 || tcp_sndqueuelen(t->pcb) >= TCP_SND_QUEUELEN)
			break;
		size_t want = len < room ? len : room;
		u16_t n = (u16_t)(want > 0x8000 ? 0x8000 : want); /* tcp_write takes a u16_t */
		err_t e = tcp_write(t->pcb, p, n, TCP_WRITE_FLAG_COPY | (len > n ? TCP_WRITE_FLAG_MORE : 0));
		if (e == ERR_MEM)
			break; /* out of segments or heap: the poll timer retries */
		if (e != ERR_OK) {
			ltcp_die_later(t, tb_lwip_err(e));
			break;
		}
		p += n;
		len -= n;
		*taken += n;
	}
	if (*taken > 0)
		output_later(t);
}

static void ltcp_flush(tb_ltcp_t *t)
{
	const uint8_t *p;
	size_t len, taken;
	bool shut_now = false;

	while ((p = tb_buf_peek(&t->out, &len)) != NULL) {
		ltcp_push(t, p, len, &taken);
		tb_buf_consume(&t->out, taken);
		if (taken < len)
			break;
	}
	ltcp_shut_maybe(t, &shut_now);
	if ((t->want_drain && tb_buf_len(&t->out) <= t->s.hiwat / 2) || shut_now) {
		t->want_drain = false;
		tb_stream_emit_drain(&t->s);
	}
}

/* Hands rx to the consumer until it pauses or closes; acknowledges what it took. */
static void ltcp_deliver(tb_ltcp_t *t)
{
	u32_t took = 0; /* taken, not yet tcp_recved: one window update per run */

	while (t->rx && !t->paused && !t->closed && !t->dead) {
		struct pbuf *q = t->rx;
		u16_t n = q->len;

		/* Unlink the head: the reference q held on the rest passes to rx. */
		t->rx = q->next;
		q->next = NULL;
		q->tot_len = q->len;
		if (n > 0)
			tb_stream_emit_data(&t->s, q->payload, n);
		pbuf_free(q);
		if (took + n > 0xffff && t->pcb && !t->closed) {
			tcp_recved(t->pcb, (u16_t)took); /* its length is a u16_t */
			took = 0;
		}
		took += n;
	}
	if (took > 0 && t->pcb && !t->closed)
		tcp_recved(t->pcb, (u16_t)took);
	if (!t->rx && t->eof_pending && !t->paused && !t->closed && !t->dead) {
		t->eof_pending = false;
		t->eof = true;
		tb_stream_emit_eof(&t->s);
	}
}

static void ltcp_deferred(tb_loop_t *loop, void *arg)
{
	tb_ltcp_t *t = arg;

	if (t->closed)
		return;
	t->in_cb++;
	if (t->pending_err && !t->dead) {
		t->dead = true;
		tb_stream_emit_close(&t->s, t->pending_err);
	} else {
		ltcp_deliver(t);
	}
	ltcp_leave(t);
}

/* ---- lwIP callbacks ---- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	tb_ltcp_t *t = arg;

	if (!t) {
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	t->in_cb++;
	if (p == NULL) {
		t->eof_pending = true;
	} else if (t->rx) {
		pbuf_cat(t->rx, p); /* takes p's reference */
	} else {
		t->rx = p;
	}
	ltcp_deliver(t);
	return ltcp_leave_ret(t);
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	tb_ltcp_t *t = arg;

	if (!t)
		return ERR_OK;
	t->in_cb++;
	ltcp_flush(t);
	return ltcp_leave_ret(t);
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
	tb_ltcp_t *t = arg;

	if (!t)
		return ERR_OK;
	t->in_cb++;
	if (tb_buf_len(&t->out) > 0 || (t->shut_pending && !t->shut_done))
		ltcp_flush(t);
	return ltcp_leave_ret(t);
}

static void on_err(void *arg, err_t err)
{
	tb_ltcp_t *t = arg;

	if (!t)
		return;
	t->pcb = NULL; /* lwIP has freed it */
	ltcp_die_later(t, err == ERR_RST ? TB_ECONNRESET : err == ERR_ABRT ? TB_ETIMEDOUT : tb_lwip_err(err));
}

static tb_ltcp_t *ltcp_wrap(tb_loop_t *loop, struct tcp_pcb *pcb)
{
	tb_ltcp_t *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->s.ops = &ltcp_ops;
	t->s.hiwat = TB_STREAM_HIWAT_DEFAULT;
	t->loop = loop;
	t->pcb = pcb;
	tb_buf_init(&t->out);
	tb_defer_init(&t->defer, ltcp_deferred, t);
	tcp_arg(pcb, t);
	tcp_recv(pcb, on_recv);
	tcp_sent(pcb, on_sent);
	tcp_err(pcb, on_err);
	tcp_poll(pcb, on_poll, TCP_POLL_INTERVAL);
	tcp_nagle_disable(pcb); /* as the POSIX port's TCP_NODELAY: relays write whole chunks */
	return t;
}

/* ---- stream ops ---- */

static int ltcp_write(tb_stream_t *s, const void *data, size_t len)
{
	tb_ltcp_t *t = (tb_ltcp_t *)s;
	const uint8_t *p = data;
	size_t taken = 0;

	if (t->dead || t->shut_pending || t->pending_err || !t->pcb)
		return TB_EPIPE;
	if (tb_buf_len(&t->out) == 0)
		ltcp_push(t, p, len, &taken);
	if (len > taken && tb_buf_append(&t->out, p + taken, len - taken) < 0)
		return TB_ENOMEM;
	if (tb_buf_len(&t->out) >= t->s.hiwat) {
		t->want_drain = true;
		return TB_ENOBUFS;
	}
	return 0;
}

static int ltcp_shutdown(tb_stream_t *s)
{
	tb_ltcp_t *t = (tb_ltcp_t *)s;
	bool shut_now = false;

	if (t->dead || !t->pcb)
		return TB_EPIPE;
	t->shut_pending = true;
	ltcp_shut_maybe(t, &shut_now);
	return 0;
}

static void ltcp_close(tb_stream_t *s)
{
	tb_ltcp_t *t = (tb_ltcp_t *)s;
	struct tcp_pcb *pcb = t->pcb;

	if (t->closed)
		return;
	t->closed = true;
	t->pcb = NULL;
	out_unlink(t);
	if (pcb) {
		ltcp_detach(pcb);
		/* Unread bytes mean the peer's data was lost: reset, as a kernel does. */
		if (t->rx || tcp_close(pcb) != ERR_OK) {
			tcp_abort(pcb);
			t->aborted = t->in_cb > 0;
		}
	}
	if (t->in_cb == 0)
		ltcp_free(t);
}

static void ltcp_pause(tb_stream_t *s)
{
	((tb_ltcp_t *)s)->paused = true;
}

static void ltcp_resume(tb_stream_t *s)
{
	tb_ltcp_t *t = (tb_ltcp_t *)s;

	t->paused = false;
	if (t->rx || t->eof_pending)
		tb_defer(t->loop, &t->defer);
}

static size_t ltcp_queued(const tb_stream_t *s)
{
	return tb_buf_len(&((const tb_ltcp_t *)s)->out);
}

static const tb_stream_ops_t ltcp_ops = {
	.write = ltcp_write,
	.shutdown = ltcp_shutdown,
	.close = ltcp_close,
	.pause = ltcp_pause,
	.resume = ltcp_resume,
	.queued = ltcp_queued,
};

static struct tcp_pcb *ltcp_pcb(const tb_stream_t *s)
{
	return s->ops == &ltcp_ops ? ((const tb_ltcp_t *)s)->pcb : NULL;
}

int tb_tcp_local_addr(const tb_stream_t *s, tb_addr_t *out)
{
	struct tcp_pcb *pcb = ltcp_pcb(s);

	if (!pcb)
		return TB_EINVAL;
	tb_lwip_from_ip(&pcb->local_ip, pcb->local_port, out);
	return 0;
}

int tb_tcp_peer_addr(const tb_stream_t *s, tb_addr_t *out)
{
	struct tcp_pcb *pcb = ltcp_pcb(s);

	if (!pcb)
		return TB_EINVAL;
	tb_lwip_from_ip(&pcb->remote_ip, pcb->remote_port, out);
	return 0;
}

void tb_tcp_set_nodelay(tb_stream_t *s, bool on)
{
	struct tcp_pcb *pcb = ltcp_pcb(s);

	if (!pcb)
		return;
	if (on)
		tcp_nagle_disable(pcb);
	else
		tcp_nagle_enable(pcb);
}

void tb_tcp_set_keepalive(tb_stream_t *s, unsigned idle_s)
{
	struct tcp_pcb *pcb = ltcp_pcb(s);

	if (!pcb)
		return;
	if (idle_s == 0) {
		ip_reset_option(pcb, SOF_KEEPALIVE);
		return;
	}
	ip_set_option(pcb, SOF_KEEPALIVE);
	pcb->keep_idle = (u32_t)idle_s * 1000u;
}

/* ---- listener ---- */

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	tb_tcp_listener_t *l = arg;
	tb_ltcp_t *t;
	tb_addr_t peer;

	if (err != ERR_OK || !pcb)
		return ERR_VAL;
	if (!l || l->paused || !(t = ltcp_wrap(l->loop, pcb))) {
		/* Paused (the flow cap) or out of memory: refuse this one with a reset. */
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	tb_lwip_from_ip(&pcb->remote_ip, pcb->remote_port, &peer);
	t->in_cb++;
	l->cb(l->arg, &t->s, &peer);
	return ltcp_leave_ret(t);
}

int tb_tcp_listen(tb_loop_t *loop, const tb_addr_t *bind_addr, const tb_tcp_listen_opts_t *opts,
		  tb_tcp_accept_cb cb, void *arg, tb_tcp_listener_t **out)
{
	tb_tcp_listener_t *l;
	struct tcp_pcb *pcb, *lpcb;
	ip_addr_t ip;
	u8_t type;
	err_t e;
	int rc;

	if ((rc = tb_lwip_bind_addr(loop, bind_addr, opts && opts->v6only, &ip, &type)) < 0)
		return rc;
	pcb = tcp_new_ip_type(type);
	if (!pcb)
		return TB_ENOMEM;
	if (type == IPADDR_TYPE_ANY)
		e = tcp_bind(pcb, IP_ANY_TYPE, bind_addr->port);
	else
		e = tcp_bind(pcb, &ip, bind_addr->port);
	if (e != ERR_OK) {
		tcp_close(pcb);
		return e == ERR_USE ? TB_EADDRINUSE : tb_lwip_err(e);
	}
	lpcb = tcp_listen_with_backlog_and_err(pcb, (u8_t)(opts && opts->backlog > 0 && opts->backlog < 255 ?
								    opts->backlog : TCP_DEFAULT_LISTEN_BACKLOG),
					       &e);
	if (!lpcb) {
		tcp_close(pcb);
		return tb_lwip_err(e);
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		tcp_close(lpcb);
		return TB_ENOMEM;
	}
	l->loop = loop;
	l->pcb = lpcb;
	l->cb = cb;
	l->arg = arg;
	l->addr = *bind_addr;
	l->addr.port = lpcb->local_port;
	tcp_arg(lpcb, l);
	tcp_accept(lpcb, on_accept);
	*out = l;
	return 0;
}

void tb_tcp_listener_addr(const tb_tcp_listener_t *l, tb_addr_t *out)
{
	*out = l->addr;
}

void tb_tcp_listener_pause(tb_tcp_listener_t *l, bool paused)
{
	l->paused = paused;
}

void tb_tcp_listener_close(tb_tcp_listener_t *l)
{
	if (!l)
		return;
	tcp_arg(l->pcb, NULL);
	tcp_accept(l->pcb, NULL);
	tcp_close(l->pcb);
	free(l);
}

/* ---- connect ---- */

static void connect_finish(tb_tcp_connect_t *c, struct tcp_pcb *pcb)
{
	tb_tcp_connect_cb cb = c->cb;
	void *arg = c->arg;
	int err = c->err;
	tb_ltcp_t *t = NULL;

	tb_timer_stop(c->loop, &c->timer);
	tb_defer_cancel(c->loop, &c->defer);
	if (err == 0) {
		t = ltcp_wrap(c->loop, pcb);
		if (!t) {
			err = TB_ENOMEM;
			tcp_abort(pcb);
		}
	}
	free(c);
	cb(arg, t ? &t->s : NULL, err);
}

static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	tb_tcp_connect_t *c = arg;
	tb_ltcp_t *t;

	c->pcb = NULL;
	c->err = 0;
	tcp_err(pcb, NULL);
	/* The stream's owner may close it inside the callback: guard like a callback of the stream. */
	tb_tcp_connect_cb cb = c->cb;
	void *cbarg = c->arg;
	tb_timer_stop(c->loop, &c->timer);
	tb_defer_cancel(c->loop, &c->defer);
	t = ltcp_wrap(c->loop, pcb);
	free(c);
	if (!t) {
		tcp_arg(pcb, NULL);
		tcp_abort(pcb);
		cb(cbarg, NULL, TB_ENOMEM);
		return ERR_ABRT;
	}
	t->in_cb++;
	cb(cbarg, &t->s, 0);
	return ltcp_leave_ret(t);
}

static void on_connect_err(void *arg, err_t err)
{
	tb_tcp_connect_t *c = arg;

	/* lwIP freed the PCB; the reset of a SYN is a refusal. */
	c->pcb = NULL;
	c->err = err == ERR_RST ? TB_ECONNREFUSED : err == ERR_ABRT ? TB_ETIMEDOUT : tb_lwip_err(err);
	tb_defer(c->loop, &c->defer);
}

static void connect_timeout(tb_loop_t *loop, void *arg)
{
	tb_tcp_connect_t *c = arg;

	if (c->pcb) {
		tcp_arg(c->pcb, NULL);
		tcp_err(c->pcb, NULL);
		tcp_abort(c->pcb);
		c->pcb = NULL;
	}
	c->err = TB_ETIMEDOUT;
	connect_finish(c, NULL);
}

static void connect_deferred(tb_loop_t *loop, void *arg)
{
	connect_finish(arg, NULL);
}

int tb_tcp_connect(tb_loop_t *loop, const tb_addr_t *dst, uint32_t timeout_ms, tb_tcp_connect_cb cb,
		   void *arg, tb_tcp_connect_t **out)
{
	tb_tcp_connect_t *c;
	ip_addr_t ip;
	err_t e;
	int rc;

	if ((rc = tb_lwip_port_up(loop)) < 0)
		return rc;
	if ((rc = tb_lwip_to_ip(dst, &ip)) < 0)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return TB_ENOMEM;
	c->pcb = tcp_new_ip_type(IP_GET_TYPE(&ip));
	if (!c->pcb) {
		free(c);
		return TB_ENOMEM;
	}
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	tb_timer_init(&c->timer, connect_timeout, c);
	tb_defer_init(&c->defer, connect_deferred, c);
	tcp_arg(c->pcb, c);
	tcp_err(c->pcb, on_connect_err);
	e = tcp_connect(c->pcb, &ip, dst->port, on_connected);
	if (e != ERR_OK) {
		/* No route, no port: report from the loop, never from inside this call. */
		tcp_arg(c->pcb, NULL);
		tcp_err(c->pcb, NULL);
		tcp_abort(c->pcb);
		c->pcb = NULL;
		c->err = e == ERR_RTE ? TB_ENETUNREACH : tb_lwip_err(e);
		tb_defer(loop, &c->defer);
	} else if (timeout_ms > 0) {
		tb_timer_start(loop, &c->timer, timeout_ms);
	}
	if (out)
		*out = c;
	return 0;
}

void tb_tcp_connect_cancel(tb_tcp_connect_t *c)
{
	if (!c)
		return;
	tb_timer_stop(c->loop, &c->timer);
	tb_defer_cancel(c->loop, &c->defer);
	if (c->pcb) {
		tcp_arg(c->pcb, NULL);
		tcp_err(c->pcb, NULL);
		tcp_abort(c->pcb);
	}
	free(c);
}
