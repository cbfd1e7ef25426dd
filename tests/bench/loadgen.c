/* loadgen.c: load generator and traffic sink behind `make bench`.
 *
 * One self-contained file (POSIX + epoll, no dependencies) so the benchmark
 * does not depend on the daemon it measures. Modes:
 *
 *   sink        TCP target; what it does with a connection is chosen by the
 *               first byte the client sends (see "sink protocol" below)
 *   throughput  N parallel flows, upload (default) or download, direct or
 *               through a SOCKS5 proxy; prints MB/s (10^6 bytes per second)
 *   setup       N connections, C at a time, each timed from connect() to the
 *               first byte echoed back by the sink; prints p50/p99 and conn/s
 *   idle        opens N proxied connections, prints "ready", holds them
 *   freeport    prints a loopback TCP port that was free a moment ago
 *   wait-port   waits until something accepts on HOST:PORT
 *
 * Sink protocol (first byte of each connection, sent by the client):
 *   'U' + len64  upload of len bytes (len64: 8 bytes big-endian): the sink
 *                counts what follows and, once len bytes are in (or at EOF),
 *                replies with the count as 8 bytes big-endian. The reply
 *                arriving means the sink has received everything that was sent;
 *                no half-close is needed, so any SOCKS5 proxy will do.
 *   'D' + len64  download: the sink sends len zero bytes.
 *   'E'          echo: the sink answers one byte, then discards until EOF.
 *   other/none   the sink discards until EOF (idle connections).
 *
 * Every length read from the network is bounded by what the current state
 * needs, and every wait has a deadline. Exit status 0 on success, 1 on a
 * failed measurement, 2 on bad usage. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (256 * 1024)
#define MAX_EVENTS 256
/* Bursts per wakeup: enough to keep a fast flow busy, small enough that one
 * flow cannot starve the other 63. */
#define BURST 16
#define MAX_DOWNLOAD (64ull << 30)

static unsigned char g_zeros[CHUNK];
static unsigned char g_rx[CHUNK];
static volatile sig_atomic_t g_stop;

struct opts {
	const char *mode;
	int flows, count, concurrency, download, touch, use_stdin;
	uint64_t bytes;
	double hold_s, timeout_s, conn_timeout_s;
	int have_socks, have_target, have_listen;
	struct sockaddr_in socks, target, listen;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int ms_until(int64_t deadline, int cap_ms)
{
	int64_t left = deadline - now_us();
	if (left <= 0)
		return 0;
	left = (left + 999) / 1000;
	return left > cap_ms ? cap_ms : (int)left;
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void setup_process(void)
{
	struct rlimit rl;
	struct sigaction sa;

	/* 1,000 idle connections through a proxy need more than the usual 1024. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- wire helpers ---- */

static void store_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t load_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* RFC 1928 §4: CONNECT request, ATYP IPv4. Returns its length (10). */
static size_t socks5_request(unsigned char *out, const struct sockaddr_in *t)
{
	out[0] = 5;
	out[1] = 1; /* CONNECT */
	out[2] = 0;
	out[3] = 1; /* IPv4 */
	memcpy(out + 4, &t->sin_addr.s_addr, 4);
	memcpy(out + 8, &t->sin_port, 2);
	return 10;
}

/* RFC 1928 §6: how many bytes the reply has in total, judging from the
 * `have` bytes received so far. Returns > have when more are needed, == have
 * when complete, or -1 on a refusal or malformed reply (*rep = REP, or -1). */
static int socks5_reply_need(const unsigned char *b, size_t have, int *rep)
{
	*rep = -1;
	if (have < 4)
		return 4;
	if (b[0] != 5)
		return -1;
	if (b[1] != 0) {
		*rep = b[1];
		return -1;
	}
	switch (b[3]) {
	case 1:
		return 4 + 4 + 2;
	case 4:
		return 4 + 16 + 2;
	case 3:
		return have < 5 ? 5 : 5 + b[4] + 2;
	default:
		return -1;
	}
}

/* ---- sockets ---- */

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static const char *fmt_addr(const struct sockaddr_in *sa)
{
	static char buf[32];
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
	snprintf(buf, sizeof(buf), "%s:%u", ip, ntohs(sa->sin_port));
	return buf;
}

/* Non-blocking connect; 0 or EINPROGRESS is success. Returns fd or -errno. */
static int connect_start(const struct sockaddr_in *sa)
{
	int one = 1, err;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EINPROGRESS)
		return fd;
	err = errno;
	close(fd);
	return -err;
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	for (;;) {
		int n = poll(&p, 1, ms_until(deadline, 1000));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (now_us() >= deadline)
			return -ETIMEDOUT;
		if (g_stop)
			return -EINTR;
	}
}

/* Move exactly n bytes; EOF before that is -ECONNRESET. */
static int io_full(int fd, void *buf, size_t n, int writing, int64_t deadline)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = writing ? send(fd, (char *)buf + done, n - done, MSG_NOSIGNAL) :
				      recv(fd, (char *)buf + done, n - done, 0);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		r = wait_fd(fd, writing ? POLLOUT : POLLIN, deadline);
		if (r < 0)
			return (int)r;
	}
	return 0;
}

/* Connects to the target, through the SOCKS5 proxy when one is given, and
 * returns a non-blocking fd ready for payload, or exits with a message. */
static int open_flow(const struct opts *o, int64_t deadline, const char *what)
{
	unsigned char b[4 + 1 + 255 + 2];
	const struct sockaddr_in *to = o->have_socks ? &o->socks : &o->target;
	int fd = connect_start(to), r, rep, need;
	size_t have = 0;

	if (fd < 0)
		die("%s: connect %s: %s", what, fmt_addr(to), strerror(-fd));
	if ((r = wait_fd(fd, POLLOUT, deadline)) < 0 || (r = -sock_error(fd)) < 0)
		die("%s: connect %s: %s", what, fmt_addr(to), strerror(-r));
	if (!o->have_socks)
		return fd;
	memcpy(b, "\x05\x01\x00", 3);
	if ((r = io_full(fd, b, 3, 1, deadline)) < 0 || (r = io_full(fd, b, 2, 0, deadline)) < 0)
		die("%s: SOCKS5 greeting: %s", what, strerror(-r));
	if (b[0] != 5 || b[1] != 0)
		die("%s: SOCKS5 method reply %02x %02x, wanted 05 00", what, b[0], b[1]);
	if ((r = io_full(fd, b, socks5_request(b, &o->target), 1, deadline)) < 0)
		die("%s: SOCKS5 request: %s", what, strerror(-r));
	while ((need = socks5_reply_need(b, have, &rep)) > (int)have) {
		if ((r = io_full(fd, b + have, (size_t)need - have, 0, deadline)) < 0)
			die("%s: SOCKS5 reply: %s", what, strerror(-r));
		have = (size_t)need;
	}
	if (need < 0)
		die("%s: SOCKS5 CONNECT refused (REP=%d)", what, rep);
	return fd;
}

/* ---- sink ---- */

enum {
	SK_NEW,
	SK_HDR,
	SK_UPLOAD,
	SK_DOWNLOAD,
	SK_ECHO,
	SK_HOLD
};

struct sconn {
	int fd, mode, eof, events, reply_due;
	unsigned char kind, hdr[8], small[8];
	size_t hdr_have, small_len, small_off;
	uint64_t count, expect, bulk_left;
};

static void sink_close(int ep, struct sconn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static int tx_pending(const struct sconn *c)
{
	return c->small_off < c->small_len || c->bulk_left > 0;
}

static void sink_rearm(int ep, struct sconn *c)
{
	struct epoll_event ev = {.data.ptr = c};
	ev.events = (c->eof ? 0 : EPOLLIN) | (tx_pending(c) ? EPOLLOUT : 0);
	if (!ev.events) { /* EOF seen and nothing left to say */
		sink_close(ep, c);
		return;
	}
	if ((int)ev.events != c->events) {
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->events = (int)ev.events;
	}
}

static void sink_send(int ep, struct sconn *c)
{
	for (int i = 0; i < BURST && tx_pending(c); i++) {
		ssize_t n;
		if (c->small_off < c->small_len)
			n = send(c->fd, c->small + c->small_off, c->small_len - c->small_off, MSG_NOSIGNAL);
		else
			n = send(c->fd, g_zeros, c->bulk_left < CHUNK ? (size_t)c->bulk_left : CHUNK,
				 MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			sink_close(ep, c);
			return;
		}
		if (c->small_off < c->small_len)
			c->small_off += (size_t)n;
		else
			c->bulk_left -= (uint64_t)n;
	}
	sink_rearm(ep, c);
}

static void sink_queue_count(struct sconn *c)
{
	store_be64(c->small, c->count);
	c->small_len = 8;
	c->small_off = 0;
}

static void sink_data(struct sconn *c, const unsigned char *p, size_t n)
{
	if (c->mode == SK_NEW && n > 0) {
		c->kind = p[0];
		c->mode = c->kind == 'U' || c->kind == 'D' ? SK_HDR : c->kind == 'E' ? SK_ECHO : SK_HOLD;
		if (c->kind == 'E') {
			c->small[0] = 'e';
			c->small_len = 1;
		}
		p++, n--;
	}
	if (c->mode == SK_HDR) {
		size_t take = n < 8 - c->hdr_have ? n : 8 - c->hdr_have;
		memcpy(c->hdr + c->hdr_have, p, take);
		c->hdr_have += take;
		p += take, n -= take;
		if (c->hdr_have < 8)
			return;
		c->mode = c->kind == 'U' ? SK_UPLOAD : SK_DOWNLOAD;
		if (c->kind == 'U')
			c->expect = load_be64(c->hdr);
		else /* a length off the wire: no more than a benchmark would ask */
			c->bulk_left = load_be64(c->hdr) <= MAX_DOWNLOAD ? load_be64(c->hdr) : 0;
	}
	if (c->mode != SK_UPLOAD)
		return; /* echo, hold and download discard what the client sends */
	/* The count goes back once the announced length is in, so the client
	 * learns that everything arrived without needing half-close. */
	if (c->count < c->expect && c->count + n >= c->expect)
		c->reply_due = 1;
	c->count += n;
}

static void sink_readable(int ep, struct sconn *c)
{
	for (int i = 0; i < BURST; i++) {
		ssize_t n = recv(c->fd, g_rx, sizeof(g_rx), 0);
		if (n > 0) {
			sink_data(c, g_rx, (size_t)n);
			if (c->reply_due) {
				c->reply_due = 0;
				sink_queue_count(c);
				break;
			}
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		/* errors end it, and so does EOF once the client has its answer */
		if (n < 0 || c->small_len > 0 || (c->mode != SK_UPLOAD && !tx_pending(c))) {
			sink_close(ep, c);
			return;
		}
		c->eof = 1;
		if (c->mode == SK_UPLOAD) /* short upload: tell the client how short */
			sink_queue_count(c);
		break;
	}
	if (tx_pending(c))
		sink_send(ep, c);
	else
		sink_rearm(ep, c);
}

static int run_sink(const struct opts *o)
{
	struct epoll_event evs[MAX_EVENTS], ev = {.events = EPOLLIN};
	struct sockaddr_in bound;
	socklen_t blen = sizeof(bound);
	int one = 1;
	int64_t deadline = now_us() + (int64_t)(o->timeout_s * 1e6);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (lfd < 0 || ep < 0)
		die("sink: socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (const struct sockaddr *)&o->listen, sizeof(o->listen)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&bound, &blen) < 0)
		die("sink: listen %s: %s", fmt_addr(&o->listen), strerror(errno));
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("listening %s\n", fmt_addr(&bound));
	fflush(stdout);

	while (!g_stop && now_us() < deadline) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, ms_until(deadline, 1000));
		if (n < 0 && errno != EINTR)
			die("sink: epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct epoll_event cev = {.events = EPOLLIN};
					if (!(c = calloc(1, sizeof(*c)))) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->events = EPOLLIN;
					cev.data.ptr = c;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				if (c->eof && !(evs[i].events & EPOLLOUT)) {
					sink_close(ep, c); /* error or hang-up after EOF */
					continue;
				}
				if (!c->eof) {
					sink_readable(ep, c); /* may free c */
					continue;
				}
			}
			if (evs[i].events & EPOLLOUT)
				sink_send(ep, c);
		}
	}
	return 0;
}

/* ---- throughput ---- */

struct flow {
	int fd, done;
	uint64_t left, want, got;
	unsigned char reply[8];
	size_t reply_have;
};

static void flow_fail(int i, const char *what, int err)
{
	die("throughput: flow %d: %s%s%s", i, what, err ? ": " : "", err ? strerror(err) : "");
}

static void flow_done(int ep, struct flow *f, int64_t *t_end, int *done)
{
	*t_end = now_us();
	f->done = 1;
	(*done)++;
	epoll_ctl(ep, EPOLL_CTL_DEL, f->fd, NULL);
	close(f->fd);
}

static void flow_short(int i, uint64_t got, uint64_t want, const char *who)
{
	fprintf(stderr, "loadgen: throughput: flow %d: %s %" PRIu64 " of %" PRIu64 " bytes\n", i, who, got,
		want);
	exit(1);
}

static void flow_upload(int ep, struct flow *f, int i, uint32_t events, int64_t *t_end, int *done)
{
	ssize_t n;

	if (events & EPOLLERR)
		flow_fail(i, "socket error", sock_error(f->fd));
	if ((events & EPOLLOUT) && f->left > 0) {
		for (int k = 0; k < BURST && f->left > 0; k++) {
			n = send(f->fd, g_zeros, f->left < CHUNK ? (size_t)f->left : CHUNK, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n <= 0)
				flow_fail(i, "send", errno);
			f->left -= (uint64_t)n;
		}
		if (f->left == 0) {
			struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
			epoll_ctl(ep, EPOLL_CTL_MOD, f->fd, &ev);
		}
	}
	if (!(events & (EPOLLIN | EPOLLHUP)))
		return;
	n = recv(f->fd, f->reply + f->reply_have, sizeof(f->reply) - f->reply_have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0)
		flow_fail(i, "recv", errno);
	if (n == 0)
		flow_fail(i, "closed before the sink's byte count arrived (data lost?)", 0);
	f->reply_have += (size_t)n;
	if (f->reply_have < sizeof(f->reply))
		return;
	f->got = load_be64(f->reply);
	if (f->got != f->want || f->left > 0)
		flow_short(i, f->got, f->want, "the sink received");
	flow_done(ep, f, t_end, done);
}

static void flow_download(int ep, struct flow *f, int i, int64_t *t_end, int *done)
{
	for (int k = 0; k < BURST; k++) {
		ssize_t n = recv(f->fd, g_rx, sizeof(g_rx), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			flow_fail(i, "recv", errno);
		if (n == 0)
			flow_short(i, f->got, f->want, "closed after receiving");
		f->got += (uint64_t)n;
		if (f->got > f->want)
			flow_fail(i, "received more than was asked for", 0);
		if (f->got == f->want) {
			flow_done(ep, f, t_end, done);
			return;
		}
	}
}

static int run_throughput(const struct opts *o)
{
	struct flow *flows = calloc((size_t)o->flows, sizeof(*flows));
	struct epoll_event evs[MAX_EVENTS];
	int64_t deadline = now_us() + (int64_t)(o->timeout_s * 1e6), t_start, t_end = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC), done = 0;
	double secs;

	if (!flows || ep < 0)
		die("throughput: out of memory");
	if (o->bytes < (uint64_t)o->flows)
		die("throughput: --bytes must be at least --flows");
	for (int i = 0; i < o->flows; i++) {
		struct flow *f = &flows[i];
		unsigned char hdr[9];
		char what[32];
		int r;

		f->want = o->bytes / (uint64_t)o->flows + ((uint64_t)i < o->bytes % (uint64_t)o->flows);
		f->left = o->download ? 0 : f->want;
		snprintf(what, sizeof(what), "flow %d", i);
		f->fd = open_flow(o, deadline, what);
		/* the header goes out before the clock starts */
		hdr[0] = o->download ? 'D' : 'U';
		store_be64(hdr + 1, f->want);
		if ((r = io_full(f->fd, hdr, sizeof(hdr), 1, deadline)) < 0)
			flow_fail(i, "header", -r);
	}
	t_start = now_us();
	for (int i = 0; i < o->flows; i++) {
		struct epoll_event ev = {.events = o->download ? EPOLLIN : EPOLLIN | EPOLLOUT,
					 .data.u32 = (uint32_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, flows[i].fd, &ev);
	}
	while (done < o->flows) {
		int n;
		if (g_stop)
			die("throughput: interrupted");
		if (now_us() >= deadline) {
			uint64_t moved = 0;
			for (int i = 0; i < o->flows; i++)
				moved += o->download ? flows[i].got : flows[i].want - flows[i].left;
			die("throughput: timed out after %.0f s with %d of %d flows done, %" PRIu64
			    " of %" PRIu64 " bytes moved",
			    o->timeout_s, done, o->flows, moved, o->bytes);
		}
		n = epoll_wait(ep, evs, MAX_EVENTS, ms_until(deadline, 1000));
		if (n < 0 && errno != EINTR)
			die("throughput: epoll_wait: %s", strerror(errno));
		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			if (flows[i].done)
				continue;
			if (o->download)
				flow_download(ep, &flows[i], i, &t_end, &done);
			else
				flow_upload(ep, &flows[i], i, evs[k].events, &t_end, &done);
		}
	}
	secs = (double)(t_end - t_start) / 1e6;
	printf("throughput flows=%d bytes=%" PRIu64 " dir=%s via=%s seconds=%.3f MBps=%.1f\n", o->flows,
	       o->bytes, o->download ? "down" : "up", o->have_socks ? "socks5" : "direct", secs,
	       secs > 0 ? (double)o->bytes / secs / 1e6 : 0.0);
	free(flows);
	close(ep);
	return 0;
}

/* ---- setup and idle: many small connections, event-driven ---- */

enum {
	CC_CONNECT,
	CC_GREET,
	CC_REPLY,
	CC_PROBE,
	CC_HELD,
	CC_DONE
};
static const char *const cc_state_name[] = {"connect", "greeting", "CONNECT reply", "echo", "held", "done"};

struct cconn {
	int fd, state;
	int64_t t0, deadline;
	unsigned char rx[4 + 1 + 255 + 2];
	size_t have;
	int need;
};

struct clients {
	const struct opts *o;
	int ep, hold; /* hold: idle mode keeps finished connections open */
	struct cconn *c;
	int launched, settled, inflight, ok, failed, dropped, errors_shown;
	double *lat_us;
};

static void cc_fail(struct clients *cl, struct cconn *c, const char *why, int err)
{
	if (cl->errors_shown++ < 5)
		fprintf(stderr, "loadgen: %s: connection %d failed in state %s: %s%s%s\n", cl->o->mode,
			(int)(c - cl->c), cc_state_name[c->state], why, err ? ": " : "",
			err ? strerror(err) : "");
	epoll_ctl(cl->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = CC_DONE;
	cl->failed++;
	cl->inflight--;
}

static void cc_want(struct clients *cl, struct cconn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void cc_finish(struct clients *cl, struct cconn *c)
{
	if (cl->lat_us)
		cl->lat_us[cl->ok] = (double)(now_us() - c->t0);
	cl->ok++;
	cl->inflight--;
	if (cl->hold) {
		c->state = CC_HELD; /* still watched, to notice if the proxy drops it */
		return;
	}
	epoll_ctl(cl->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = CC_DONE;
}

/* After the tunnel is up: send the echo probe, or finish. */
static void cc_tunnel_up(struct clients *cl, struct cconn *c)
{
	if (!cl->hold || cl->o->touch) {
		if (send(c->fd, "E", 1, MSG_NOSIGNAL) != 1) {
			cc_fail(cl, c, "send probe", errno);
			return;
		}
		c->state = CC_PROBE;
		c->have = 0;
		c->need = 1;
		cc_want(cl, c, EPOLLIN);
		return;
	}
	cc_finish(cl, c);
}

static void cc_launch(struct clients *cl)
{
	struct cconn *c = &cl->c[cl->launched++];
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	const struct sockaddr_in *to = cl->o->have_socks ? &cl->o->socks : &cl->o->target;

	cl->inflight++;
	c->t0 = now_us();
	c->deadline = c->t0 + (int64_t)(cl->o->conn_timeout_s * 1e6);
	c->state = CC_CONNECT;
	c->fd = connect_start(to);
	if (c->fd < 0) {
		int err = -c->fd;
		c->fd = -1;
		if (cl->errors_shown++ < 5)
			fprintf(stderr, "loadgen: %s: connect %s: %s\n", cl->o->mode, fmt_addr(to),
				strerror(err));
		c->state = CC_DONE;
		cl->failed++;
		cl->inflight--;
		return;
	}
	epoll_ctl(cl->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void cc_event(struct clients *cl, struct cconn *c, uint32_t events)
{
	ssize_t n;
	int rep, err;

	if (c->state == CC_DONE)
		return;
	if (c->state == CC_CONNECT) {
		if ((err = sock_error(c->fd)) != 0) {
			cc_fail(cl, c, "connect", err);
			return;
		}
		if (!cl->o->have_socks) {
			cc_tunnel_up(cl, c);
			return;
		}
		if (send(c->fd, "\x05\x01\x00", 3, MSG_NOSIGNAL) != 3) {
			cc_fail(cl, c, "send greeting", errno);
			return;
		}
		c->state = CC_GREET;
		c->have = 0;
		c->need = 2;
		cc_want(cl, c, EPOLLIN);
		return;
	}
	if (c->state == CC_HELD) {
		n = recv(c->fd, g_rx, sizeof(g_rx), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			epoll_ctl(cl->ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			c->fd = -1;
			c->state = CC_DONE;
			cl->dropped++;
		}
		return;
	}
	/* GREET, REPLY, PROBE: read only what the state still needs */
	n = recv(c->fd, c->rx + c->have, (size_t)c->need - c->have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		cc_fail(cl, c, n == 0 ? "closed by peer" : "recv", n == 0 ? 0 : errno);
		return;
	}
	c->have += (size_t)n;
	if (c->state == CC_REPLY) {
		c->need = socks5_reply_need(c->rx, c->have, &rep);
		if (c->need < 0) {
			char why[48];
			snprintf(why, sizeof(why), "SOCKS5 CONNECT refused (REP=%d)", rep);
			cc_fail(cl, c, why, 0);
			return;
		}
	}
	if ((int)c->have < c->need)
		return;
	switch (c->state) {
	case CC_GREET:
		if (c->rx[0] != 5 || c->rx[1] != 0) {
			cc_fail(cl, c, "SOCKS5 method not accepted", 0);
			return;
		}
		if (send(c->fd, c->rx, socks5_request(c->rx, &cl->o->target), MSG_NOSIGNAL) != 10) {
			cc_fail(cl, c, "send request", errno);
			return;
		}
		c->state = CC_REPLY;
		c->have = 0;
		c->need = 4;
		return;
	case CC_REPLY:
		cc_tunnel_up(cl, c);
		return;
	case CC_PROBE:
		cc_finish(cl, c);
		return;
	}
	(void)events;
}

static void cc_expire(struct clients *cl, int64_t now)
{
	/* connections finish roughly in launch order: skip the settled prefix */
	while (cl->settled < cl->launched && cl->c[cl->settled].state >= CC_HELD)
		cl->settled++;
	for (int i = cl->settled; i < cl->launched; i++) {
		struct cconn *c = &cl->c[i];
		if (c->state != CC_DONE && c->state != CC_HELD && now >= c->deadline)
			cc_fail(cl, c, "timed out", 0);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, int n, double p)
{
	int idx;
	if (n <= 0)
		return 0;
	idx = (int)(p * n + 0.999999) - 1; /* nearest-rank */
	if (idx < 0)
		idx = 0;
	if (idx >= n)
		idx = n - 1;
	return sorted[idx];
}

static void clients_run(struct clients *cl, int64_t deadline)
{
	struct epoll_event evs[MAX_EVENTS];
	const struct opts *o = cl->o;

	while (cl->ok + cl->failed < o->count && !g_stop) {
		int n;
		int64_t now = now_us();
		while (cl->inflight < o->concurrency && cl->launched < o->count)
			cc_launch(cl);
		if (now >= deadline) {
			fprintf(stderr, "loadgen: %s: overall time limit reached\n", o->mode);
			break;
		}
		n = epoll_wait(cl->ep, evs, MAX_EVENTS, ms_until(deadline, 100));
		if (n < 0 && errno != EINTR)
			die("%s: epoll_wait: %s", o->mode, strerror(errno));
		for (int i = 0; i < n; i++)
			cc_event(cl, evs[i].data.ptr, evs[i].events);
		cc_expire(cl, now_us());
	}
}

static void clients_free(struct clients *cl)
{
	for (int i = 0; i < cl->launched; i++)
		if (cl->c[i].fd >= 0 && cl->c[i].state != CC_DONE)
			close(cl->c[i].fd);
	close(cl->ep);
	free(cl->c);
	free(cl->lat_us);
}

static int run_setup(const struct opts *o)
{
	struct clients cl = {.o = o};
	int64_t t_start, deadline;
	double secs;
	int rc;

	cl.c = calloc((size_t)o->count, sizeof(*cl.c));
	cl.lat_us = calloc((size_t)o->count, sizeof(*cl.lat_us));
	cl.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cl.c || !cl.lat_us || cl.ep < 0)
		die("setup: out of memory");
	t_start = now_us();
	deadline = t_start + (int64_t)(o->timeout_s * 1e6);
	clients_run(&cl, deadline);
	secs = (double)(now_us() - t_start) / 1e6;
	rc = cl.ok == o->count ? 0 : 1;
	qsort(cl.lat_us, (size_t)cl.ok, sizeof(double), cmp_double);
	printf("setup count=%d concurrency=%d via=%s ok=%d failed=%d p50_us=%.0f p99_us=%.0f "
	       "conn_per_s=%.0f\n",
	       o->count, o->concurrency, o->have_socks ? "socks5" : "direct", cl.ok, cl.failed,
	       percentile(cl.lat_us, cl.ok, 0.50), percentile(cl.lat_us, cl.ok, 0.99),
	       secs > 0 ? cl.ok / secs : 0.0);
	clients_free(&cl);
	return rc;
}

static int run_idle(const struct opts *o)
{
	struct clients cl = {.o = o, .hold = 1};
	struct epoll_event evs[MAX_EVENTS];
	int64_t deadline, hold_until;
	int rc;

	cl.c = calloc((size_t)o->count, sizeof(*cl.c));
	cl.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!cl.c || cl.ep < 0)
		die("idle: out of memory");
	deadline = now_us() + (int64_t)(o->timeout_s * 1e6);
	clients_run(&cl, deadline);
	printf("ready held=%d failed=%d dropped=%d\n", cl.ok - cl.dropped, cl.failed, cl.dropped);
	fflush(stdout);
	if (o->use_stdin) { /* end when standard input closes (a pipe or a tty) */
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
		if (epoll_ctl(cl.ep, EPOLL_CTL_ADD, 0, &ev) < 0)
			fprintf(stderr, "loadgen: idle: cannot watch stdin: %s\n", strerror(errno));
	}
	hold_until = now_us() + (int64_t)(o->hold_s * 1e6);
	while (!g_stop && now_us() < hold_until) {
		int n = epoll_wait(cl.ep, evs, MAX_EVENTS, ms_until(hold_until, 1000));
		if (n < 0 && errno != EINTR)
			die("idle: epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			if (!evs[i].data.ptr) {
				char b[256];
				if (read(0, b, sizeof(b)) <= 0)
					g_stop = 1;
				continue;
			}
			cc_event(&cl, evs[i].data.ptr, evs[i].events);
		}
	}
	printf("done held=%d failed=%d dropped=%d\n", cl.ok - cl.dropped, cl.failed, cl.dropped);
	rc = cl.failed || cl.dropped ? 1 : 0;
	clients_free(&cl);
	return rc;
}

/* ---- small utilities for the driver script ---- */

static int run_freeport(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("freeport: %s", strerror(errno));
	printf("%u\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

static int run_wait_port(const struct opts *o)
{
	int64_t deadline = now_us() + (int64_t)(o->timeout_s * 1e6);
	while (now_us() < deadline && !g_stop) {
		int fd = connect_start(&o->target), r;
		if (fd >= 0) {
			r = wait_fd(fd, POLLOUT, now_us() + 1000000);
			r = r == 0 ? sock_error(fd) : -r;
			close(fd);
			if (r == 0)
				return 0;
		}
		usleep(50000);
	}
	fprintf(stderr, "loadgen: nothing accepts on %s\n", fmt_addr(&o->target));
	return 1;
}

/* ---- command line ---- */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fputs("usage: loadgen sink [--listen 127.0.0.1:PORT] [--timeout S]\n"
	      "       loadgen throughput --flows N --bytes B [--download] [--socks5 H:P] --target H:P\n"
	      "       loadgen setup --count N [--concurrency C] [--socks5 H:P] --target H:P\n"
	      "       loadgen idle --count N [--concurrency C] [--touch] [--hold S] [--stdin]\n"
	      "                    --socks5 H:P --target H:P\n"
	      "       loadgen freeport | wait-port --target H:P [--timeout S]\n"
	      "B takes K, M, G suffixes (powers of 1024). --timeout S bounds the whole run\n"
	      "(default 120), --conn-timeout S each connection's set-up (default 5). idle\n"
	      "prints \"ready\" once all are up and holds them --hold S (default 300), until\n"
	      "SIGTERM/SIGINT, or with --stdin until standard input closes; --touch sends\n"
	      "one byte each way through every connection before holding it.\n",
	      stderr);
	exit(2);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		usage();
	switch (*end) {
	case 'K':
		v <<= 10, end++;
		break;
	case 'M':
		v <<= 20, end++;
		break;
	case 'G':
		v <<= 30, end++;
		break;
	}
	if (*end)
		usage();
	return v;
}

static int parse_int(const char *s, int lo, int hi)
{
	uint64_t v = parse_size(s);
	if (v < (uint64_t)lo || v > (uint64_t)hi)
		usage();
	return (int)v;
}

static double parse_secs(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= 0 && v <= 86400))
		usage();
	return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	if (argc < 2)
		usage();
	o->mode = argv[1];
	o->flows = 1;
	o->count = 1000;
	o->concurrency = 8;
	o->bytes = 1ull << 30;
	o->hold_s = 300;
	o->timeout_s = 120;
	o->conn_timeout_s = 5;
	parse_hostport("127.0.0.1:0", &o->listen);
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = 1;
		if (!strcmp(a, "--download"))
			o->download = 1, takes = 0;
		else if (!strcmp(a, "--touch"))
			o->touch = 1, takes = 0;
		else if (!strcmp(a, "--stdin"))
			o->use_stdin = 1, takes = 0;
		else if (!v)
			usage();
		else if (!strcmp(a, "--flows"))
			o->flows = parse_int(v, 1, 100000);
		else if (!strcmp(a, "--bytes"))
			o->bytes = parse_size(v);
		else if (!strcmp(a, "--count"))
			o->count = parse_int(v, 1, 10000000);
		else if (!strcmp(a, "--concurrency"))
			o->concurrency = parse_int(v, 1, 100000);
		else if (!strcmp(a, "--hold"))
			o->hold_s = parse_secs(v);
		else if (!strcmp(a, "--timeout"))
			o->timeout_s = parse_secs(v);
		else if (!strcmp(a, "--conn-timeout"))
			o->conn_timeout_s = parse_secs(v);
		else if (!strcmp(a, "--socks5") && parse_hostport(v, &o->socks) == 0)
			o->have_socks = 1;
		else if (!strcmp(a, "--target") && parse_hostport(v, &o->target) == 0)
			o->have_target = 1;
		else if (!strcmp(a, "--listen") && parse_hostport(v, &o->listen) == 0)
			o->have_listen = 1;
		else
			usage();
		i += takes;
	}
}

int main(int argc, char **argv)
{
	struct opts o;

	parse_args(argc, argv, &o);
	setup_process();
	if (!strcmp(o.mode, "sink"))
		return run_sink(&o);
	if (!strcmp(o.mode, "freeport"))
		return run_freeport();
	if (!o.have_target)
		usage();
	if (!strcmp(o.mode, "throughput"))
		return run_throughput(&o);
	if (!strcmp(o.mode, "setup"))
		return run_setup(&o);
	if (!strcmp(o.mode, "idle"))
		return o.have_socks ? run_idle(&o) : 2;
	if (!strcmp(o.mode, "wait-port"))
		return run_wait_port(&o);
	usage();
}
