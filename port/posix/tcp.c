/* tcp.c: TCP streams, listeners and connects over non-blocking sockets.
 *
 * A tb_tcp_t is the stream of one connected socket. Writes go straight to
 * the kernel when nothing is queued; only the remainder is copied into a
 * lazily allocated tb_buf_t, so an idle connection costs just this struct.
 * Callbacks may close the stream; the in_cb counter defers the free until
 * the outermost callback has returned. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tb/buf.h"
#include "tb/log.h"
#include "tb/port.h"
#include "posix.h"

#define TCP_READS_PER_EVENT 4 /* fairness: at most 4 reads per readiness */

typedef struct tb_tcp {
	tb_stream_t s; /* first: a tb_stream_t * is a tb_tcp_t * */
	tb_loop_t *loop;
	int fd;
	unsigned watching;
	tb_buf_t out;
	tb_defer_t defer; /* reports a write error outside write() */
	int pending_err;
	uint8_t in_cb;
	bool paused, eof, shut_pending, shut_done, want_drain, dead, closed;
} tb_tcp_t;

struct tb_tcp_listener {
	tb_loop_t *loop;
	int fd;
	tb_addr_t addr;
	tb_tcp_accept_cb cb;
	void *arg;
	tb_timer_t backoff; /* out of descriptors: retry accept later */
	bool paused;
};

struct tb_tcp_connect {
	tb_loop_t *loop;
	int fd;
	struct sockaddr_storage dst;
	socklen_t dstlen;
	tb_timer_t timer;
	tb_defer_t defer;
	int err;
	tb_tcp_connect_cb cb;
	void *arg;
};

static const tb_stream_ops_t tcp_ops;
static void tcp_event(tb_loop_t *loop, int fd, unsigned ev, void *arg);

static void tcp_free(tb_tcp_t *t)
{
	tb_defer_cancel(t->loop, &t->defer);
	tb_buf_free(&t->out);
	free(t);
}

/* Ends a callback section: frees the stream if it was closed inside and no
 * outer section is still running. Returns true when it was closed. Only the
 * entry points from the loop (events, deferred calls) open sections, so the
 * helpers below never free the stream under their caller's feet. */
static bool tcp_leave(tb_tcp_t *t)
{
	t->in_cb--;
	if (!t->closed)
		return false;
	if (t->in_cb == 0)
		tcp_free(t);
	return true;
}

static void tcp_update_watch(tb_tcp_t *t)
{
	unsigned want = 0;

	if (!t->dead && !t->closed && !t->pending_err) {
		if (!t->paused && !t->eof)
			want |= TB_EV_READ;
		if (tb_buf_len(&t->out) > 0)
			want |= TB_EV_WRITE;
	}
	if (want != t->watching && !t->closed) {
		tb_loop_set_fd(t->loop, t->fd, want);
		t->watching = want;
	}
}

/* The stream died: stop watching and tell the owner once. */
static void tcp_die(tb_tcp_t *t, int err)
{
	if (t->dead)
		return;
	t->dead = true;
	tcp_update_watch(t);
	tb_stream_emit_close(&t->s, err);
}

static void tcp_deferred_error(tb_loop_t *loop, void *arg)
{
	tb_tcp_t *t = arg;

	t->in_cb++;
	tcp_die(t, t->pending_err);
	tcp_leave(t);
}

static tb_tcp_t *tcp_wrap(tb_loop_t *loop, int fd)
{
	tb_tcp_t *t = calloc(1, sizeof(*t));
	int one = 1;

	if (!t)
		return NULL;
	t->s.ops = &tcp_ops;
	t->s.hiwat = TB_STREAM_HIWAT_DEFAULT;
	t->loop = loop;
	t->fd = fd;
	tb_buf_init(&t->out);
	tb_defer_init(&t->defer, tcp_deferred_error, t);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tb_loop_add_fd(loop, fd, TB_EV_READ, tcp_event, t) < 0) {
		free(t);
		return NULL;
	}
	t->watching = TB_EV_READ;
	return t;
}

/* Returns true when the half-close was sent just now. */
static bool tcp_finish_shutdown(tb_tcp_t *t)
{
	if (t->shut_pending && !t->shut_done && tb_buf_len(&t->out) == 0) {
		shutdown(t->fd, SHUT_WR);
		t->shut_done = true;
		return true;
	}
	return false;
}

static void tcp_flush(tb_tcp_t *t)
{
	size_t len;
	const uint8_t *p;

	while ((p = tb_buf_peek(&t->out, &len)) != NULL) {
		ssize_t n = send(t->fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			tcp_die(t, tb_err_from_errno(errno));
			return;
		}
		tb_buf_consume(&t->out, (size_t)n);
	}
	bool shut_now = tcp_finish_shutdown(t);
	tcp_update_watch(t);
	if ((t->want_drain && tb_buf_len(&t->out) <= t->s.hiwat / 2) || shut_now) {
		t->want_drain = false;
		tb_stream_emit_drain(&t->s);
	}
}

static void tcp_read(tb_tcp_t *t)
{
	uint8_t buf[TB_POSIX_READ_CHUNK];

	for (int i = 0; i < TCP_READS_PER_EVENT; i++) {
		if (t->paused || t->eof || t->dead || t->closed)
			return;
		ssize_t n = recv(t->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				tcp_die(t, tb_err_from_errno(errno));
			return;
		}
		if (n == 0) {
			t->eof = true;
			tcp_update_watch(t);
			tb_stream_emit_eof(&t->s);
			return;
		}
		tb_stream_emit_data(&t->s, buf, (size_t)n);
		if ((size_t)n < sizeof(buf))
			return; /* drained the socket for now */
	}
}

static void tcp_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_tcp_t *t = arg;

	t->in_cb++;
	if ((ev & (TB_EV_WRITE | TB_EV_ERROR)) && tb_buf_len(&t->out) > 0)
		tcp_flush(t);
	if ((ev & (TB_EV_READ | TB_EV_ERROR)) && !t->closed && !t->dead)
		tcp_read(t);
	if (!tcp_leave(t))
		tcp_update_watch(t);
}

static int tcp_write(tb_stream_t *s, const void *data, size_t len)
{
	tb_tcp_t *t = (tb_tcp_t *)s;
	const uint8_t *p = data;

	if (t->dead || t->shut_pending || t->pending_err)
		return TB_EPIPE;
	if (tb_buf_len(&t->out) == 0) {
		while (len > 0) {
			ssize_t n = send(t->fd, p, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				/* Report the death from the loop, never from inside write(). */
				t->pending_err = tb_err_from_errno(errno);
				tcp_update_watch(t);
				tb_defer(t->loop, &t->defer);
				return t->pending_err;
			}
			p += n;
			len -= (size_t)n;
		}
	}
	if (len > 0) {
		if (tb_buf_append(&t->out, p, len) < 0)
			return TB_ENOMEM;
		tcp_update_watch(t);
	}
	if (tb_buf_len(&t->out) >= t->s.hiwat) {
		t->want_drain = true;
		return TB_ENOBUFS;
	}
	return 0;
}

static int tcp_shutdown(tb_stream_t *s)
{
	tb_tcp_t *t = (tb_tcp_t *)s;

	if (t->dead)
		return TB_EPIPE;
	t->shut_pending = true;
	tcp_finish_shutdown(t);
	return 0;
}

static void tcp_close(tb_stream_t *s)
{
	tb_tcp_t *t = (tb_tcp_t *)s;

	if (t->closed)
		return;
	t->closed = true;
	tb_loop_forget_fd(t->loop, t->fd);
	close(t->fd);
	t->fd = -1;
	if (t->in_cb == 0)
		tcp_free(t);
}

static void tcp_pause(tb_stream_t *s)
{
	tb_tcp_t *t = (tb_tcp_t *)s;

	t->paused = true;
	tcp_update_watch(t);
}

static void tcp_resume(tb_stream_t *s)
{
	tb_tcp_t *t = (tb_tcp_t *)s;

	t->paused = false;
	tcp_update_watch(t);
}

static size_t tcp_queued(const tb_stream_t *s)
{
	return tb_buf_len(&((const tb_tcp_t *)s)->out);
}

static const tb_stream_ops_t tcp_ops = {
	.write = tcp_write,
	.shutdown = tcp_shutdown,
	.close = tcp_close,
	.pause = tcp_pause,
	.resume = tcp_resume,
	.queued = tcp_queued,
};

static int tcp_fd(const tb_stream_t *s)
{
	return s->ops == &tcp_ops ? ((const tb_tcp_t *)s)->fd : -1;
}

static int sock_name(const tb_stream_t *s, tb_addr_t *out,
		     int (*get)(int, struct sockaddr *, socklen_t *))
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = tcp_fd(s);

	if (fd < 0)
		return TB_EINVAL;
	if (get(fd, (struct sockaddr *)&ss, &len) < 0)
		return tb_err_from_errno(errno);
	tb_posix_from_sockaddr((struct sockaddr *)&ss, out);
	return 0;
}

int tb_tcp_local_addr(const tb_stream_t *s, tb_addr_t *out)
{
	return sock_name(s, out, getsockname);
}

int tb_tcp_peer_addr(const tb_stream_t *s, tb_addr_t *out)
{
	return sock_name(s, out, getpeername);
}

void tb_tcp_set_nodelay(tb_stream_t *s, bool on)
{
	int v = on, fd = tcp_fd(s);

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
}

void tb_tcp_set_keepalive(tb_stream_t *s, unsigned idle_s)
{
	int on = idle_s > 0, fd = tcp_fd(s);
	int idle = (int)idle_s;

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (on)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
}

/* ---- listener ---- */

static void listener_watch(tb_tcp_listener_t *l)
{
	bool on = !l->paused && !tb_timer_active(&l->backoff);

	tb_loop_set_fd(l->loop, l->fd, on ? TB_EV_READ : 0);
}

static void listener_backoff_end(tb_loop_t *loop, void *arg)
{
	listener_watch(arg);
}

static void listener_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_tcp_listener_t *l = arg;

	for (int i = 0; i < 64 && !l->paused; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop polling the listener for a
				 * moment instead of spinning on a ready socket. */
				tb_warn("accept: %s; pausing accepts for 100 ms", strerror(errno));
				tb_timer_start(loop, &l->backoff, 100);
				listener_watch(l);
			}
			return;
		}
		tb_tcp_t *t = tcp_wrap(loop, c);
		if (!t) {
			close(c);
			continue;
		}
		tb_addr_t peer;
		tb_posix_from_sockaddr((struct sockaddr *)&ss, &peer);
		l->cb(l->arg, &t->s, &peer);
	}
}

int tb_tcp_listen(tb_loop_t *loop, const tb_addr_t *bind_addr, const tb_tcp_listen_opts_t *opts,
		  tb_tcp_accept_cb cb, void *arg, tb_tcp_listener_t **out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, err, fd;
	tb_tcp_listener_t *l;

	if ((err = tb_posix_sockaddr(bind_addr, &ss, &len)) < 0)
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tb_err_from_errno(errno);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (opts && opts->reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss.ss_family == AF_INET6) {
		int v6only = opts ? opts->v6only : 0;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, opts && opts->backlog > 0 ? opts->backlog : 511) < 0) {
		err = tb_err_from_errno(errno);
		close(fd);
		return err;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return TB_ENOMEM;
	}
	l->loop = loop;
	l->fd = fd;
	l->cb = cb;
	l->arg = arg;
	tb_timer_init(&l->backoff, listener_backoff_end, l);
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	tb_posix_from_sockaddr((struct sockaddr *)&ss, &l->addr);
	if ((err = tb_loop_add_fd(loop, fd, TB_EV_READ, listener_event, l)) < 0) {
		close(fd);
		free(l);
		return err;
	}
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
	listener_watch(l);
}

void tb_tcp_listener_close(tb_tcp_listener_t *l)
{
	if (!l)
		return;
	tb_timer_stop(l->loop, &l->backoff);
	tb_loop_forget_fd(l->loop, l->fd);
	close(l->fd);
	free(l);
}

/* ---- connect ---- */

static void connect_finish(tb_tcp_connect_t *c)
{
	tb_tcp_connect_cb cb = c->cb;
	void *arg = c->arg;
	int err = c->err, fd = c->fd;
	tb_tcp_t *t = NULL;

	tb_timer_stop(c->loop, &c->timer);
	tb_defer_cancel(c->loop, &c->defer);
	if (err == 0) {
		/* Keep the registration: one epoll MOD instead of a DEL and an ADD
		 * (connection setup rate is syscall-bound). */
		tb_loop_set_fd(c->loop, fd, TB_EV_READ);
		t = tcp_wrap(c->loop, fd);
		if (!t)
			err = TB_ENOMEM;
	}
	if (err < 0) {
		tb_loop_forget_fd(c->loop, fd);
		close(fd);
	}
	free(c);
	cb(arg, t ? &t->s : NULL, err);
}

static void connect_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_tcp_connect_t *c = arg;

	/* The outcome comes from a second connect() rather than SO_ERROR: both
	 * are POSIX, and qemu-user passes SO_ERROR through untranslated (the
	 * host's ECONNREFUSED is another number on MIPS), which would make the
	 * cross-built tests see a different port than a real router runs. */
	if (connect(fd, (struct sockaddr *)&c->dst, c->dstlen) == 0 || errno == EISCONN)
		c->err = 0;
	else if (errno == EALREADY || errno == EINPROGRESS || errno == EINTR)
		return;
	else
		c->err = tb_err_from_errno(errno);
	connect_finish(c);
}

static void connect_timeout(tb_loop_t *loop, void *arg)
{
	tb_tcp_connect_t *c = arg;

	c->err = TB_ETIMEDOUT;
	connect_finish(c);
}

static void connect_deferred(tb_loop_t *loop, void *arg)
{
	connect_finish(arg);
}

int tb_tcp_connect(tb_loop_t *loop, const tb_addr_t *dst, uint32_t timeout_ms, tb_tcp_connect_cb cb,
		   void *arg, tb_tcp_connect_t **out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	tb_tcp_connect_t *c;
	int err;

	if ((err = tb_posix_sockaddr(dst, &ss, &len)) < 0)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return TB_ENOMEM;
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		err = tb_err_from_errno(errno);
		free(c);
		return err;
	}
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->dst = ss;
	c->dstlen = len;
	tb_timer_init(&c->timer, connect_timeout, c);
	tb_defer_init(&c->defer, connect_deferred, c);
	if ((err = tb_loop_add_fd(loop, c->fd, TB_EV_WRITE, connect_event, c)) < 0) {
		close(c->fd);
		free(c);
		return err;
	}
	if (connect(c->fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		/* Immediate failure (unreachable network...): report from the loop. */
		c->err = tb_err_from_errno(errno);
		tb_loop_set_fd(loop, c->fd, 0);
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
	tb_loop_forget_fd(c->loop, c->fd);
	close(c->fd);
	free(c);
}
