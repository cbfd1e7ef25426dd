/* test_port.c: the POSIX port's TCP, UDP, DNS and TUN through a real loop,
 * on loopback only. Every wait is a bounded number of loop turns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tb/port.h"

static tb_addr_t loopback(uint16_t port)
{
	tb_addr_t a;

	assert_int_equal(tb_addr_parse_ip("127.0.0.1", &a), 0);
	a.port = port;
	return a;
}

/* Runs the loop until *flag, for at most 20 s of wall time (a bound for a
 * stuck test, not a speed check: a busy machine needs many more turns). */
static void spin(tb_loop_t *loop, const bool *flag)
{
	uint64_t end = tb_port_now_ms() + 20000;

	while (!*flag && tb_port_now_ms() < end)
		tb_loop_once(loop, 10);
	assert_true(*flag);
}

/* ---- TCP: a server that echoes, a client that pushes 32 MiB ---- */

struct echo {
	tb_stream_t *s;
	bool eof, closed;
};

struct client {
	tb_stream_t *s;
	size_t sent, got, enobufs, drains, drains_after_shut;
	uint32_t sum_sent, sum_got;
	bool connected, shut, eof, done;
	int err;
	tb_addr_t local, peer;
};

#define PUSH_TOTAL (32u << 20) /* more than loopback socket buffers hold */

static void echo_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct echo *e = ctx;

	/* No flow control on purpose: the queue limit is the client's problem. */
	int rc = tb_stream_write(e->s, d, n);
	assert_true(rc == 0 || rc == TB_ENOBUFS);
}

static void echo_eof(void *ctx, tb_stream_t *s)
{
	struct echo *e = ctx;

	e->eof = true;
	assert_int_equal(tb_stream_shutdown(s), 0);
}

static void echo_close(void *ctx, tb_stream_t *s, int err)
{
	((struct echo *)ctx)->closed = true;
}

static const tb_stream_handler_t echo_h = {echo_data, NULL, echo_eof, echo_close};

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	struct echo *e = arg;

	assert_int_equal(peer->family, TB_AF_INET);
	e->s = s;
	tb_stream_set_handler(s, &echo_h, e);
}

static void client_push(struct client *c)
{
	uint8_t buf[16384];

	while (c->sent < PUSH_TOTAL) {
		size_t n = TB_MIN(sizeof(buf), PUSH_TOTAL - c->sent);
		for (size_t i = 0; i < n; i++) {
			buf[i] = (uint8_t)((c->sent + i) * 7 + 3);
			c->sum_sent += buf[i];
		}
		int rc = tb_stream_write(c->s, buf, n);
		c->sent += n;
		assert_true(rc == 0 || rc == TB_ENOBUFS);
		if (rc == TB_ENOBUFS && c->sent < PUSH_TOTAL) {
			c->enobufs++;
			return; /* wait for on_drain */
		}
	}
	/* ENOBUFS on the last write still took the bytes: the half-close goes
	 * out after the queue, and one on_drain reports it. */
	c->shut = true;
	assert_int_equal(tb_stream_shutdown(c->s), 0);
}

static void client_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct client *c = ctx;

	for (size_t i = 0; i < n; i++) {
		assert_int_equal(d[i], (uint8_t)((c->got + i) * 7 + 3));
		c->sum_got += d[i];
	}
	c->got += n;
}

static void client_drain(void *ctx, tb_stream_t *s)
{
	struct client *c = ctx;

	if (c->shut) {
		c->drains_after_shut++;
		return;
	}
	c->drains++;
	client_push(c);
}

static void client_eof(void *ctx, tb_stream_t *s)
{
	struct client *c = ctx;

	c->eof = true;
	c->done = true;
}

static void client_close(void *ctx, tb_stream_t *s, int err)
{
	struct client *c = ctx;

	c->err = err;
	c->done = true;
}

static const tb_stream_handler_t client_h = {client_data, client_drain, client_eof, client_close};

static void on_connect(void *arg, tb_stream_t *s, int err)
{
	struct client *c = arg;

	assert_int_equal(err, 0);
	assert_non_null(s);
	c->s = s;
	c->connected = true;
	assert_int_equal(tb_tcp_local_addr(s, &c->local), 0);
	assert_int_equal(tb_tcp_peer_addr(s, &c->peer), 0);
	tb_stream_set_handler(s, &client_h, c);
	s->hiwat = 64 * 1024; /* small, so backpressure must kick in */
	client_push(c);
}

static void test_tcp_echo_backpressure_halfclose(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_tcp_listener_t *l;
	tb_addr_t bind = loopback(0), where;
	struct echo e = {0};
	struct client c = {0};
	tb_tcp_connect_t *cc;

	assert_int_equal(tb_tcp_listen(loop, &bind, NULL, on_accept, &e, &l), 0);
	tb_tcp_listener_addr(l, &where);
	assert_int_not_equal(where.port, 0);
	assert_int_equal(tb_tcp_connect(loop, &where, 2000, on_connect, &c, &cc), 0);
	assert_false(c.connected); /* never from inside the call */
	spin(loop, &c.done);
	assert_true(c.eof);
	assert_int_equal(c.err, 0);
	assert_int_equal(c.got, PUSH_TOTAL);
	assert_int_equal(c.sum_got, c.sum_sent);
	assert_true(c.enobufs > 0);          /* the queue limit was reached */
	assert_int_equal(c.drains, c.enobufs); /* and every pause was resumed */
	assert_true(c.drains_after_shut <= 1);
	assert_true(e.eof);
	assert_int_equal(c.peer.port, where.port);
	assert_true(tb_addr_ip_equal(&c.local, &c.peer));
	tb_stream_close(c.s);
	tb_stream_close(e.s);
	tb_tcp_listener_close(l);
	tb_loop_free(loop);
}

struct result {
	bool done;
	int err;
	tb_stream_t *s;
};

static void record_connect(void *arg, tb_stream_t *s, int err)
{
	struct result *r = arg;

	r->done = true;
	r->err = err;
	r->s = s;
}

static void test_tcp_connect_refused(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_tcp_listener_t *l;
	tb_addr_t a = loopback(0);
	struct result r = {0};

	/* A port that was just bound and released is closed. */
	assert_int_equal(tb_tcp_listen(loop, &a, NULL, on_accept, NULL, &l), 0);
	tb_tcp_listener_addr(l, &a);
	tb_tcp_listener_close(l);
	assert_int_equal(tb_tcp_connect(loop, &a, 2000, record_connect, &r, NULL), 0);
	assert_false(r.done);
	spin(loop, &r.done);
	assert_int_equal(r.err, TB_ECONNREFUSED);
	assert_null(r.s);
	tb_loop_free(loop);
}

static void test_tcp_connect_cancel(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_tcp_listener_t *l;
	tb_addr_t a = loopback(0);
	struct result r = {0};
	struct echo e = {0};
	tb_tcp_connect_t *c;

	assert_int_equal(tb_tcp_listen(loop, &a, NULL, on_accept, &e, &l), 0);
	tb_tcp_listener_addr(l, &a);
	assert_int_equal(tb_tcp_connect(loop, &a, 2000, record_connect, &r, &c), 0);
	tb_tcp_connect_cancel(c);
	for (int i = 0; i < 20; i++)
		tb_loop_once(loop, 5);
	assert_false(r.done);
	if (e.s) /* the kernel may have completed the handshake before the cancel */
		tb_stream_close(e.s);
	tb_tcp_listener_close(l);
	tb_loop_free(loop);
}

/* ---- UDP ---- */

struct udp_seen {
	bool got;
	tb_addr_t from;
	uint8_t data[16];
	size_t len;
};

static void udp_recv(void *arg, tb_udp_t *u, const tb_addr_t *from, const uint8_t *d, size_t n)
{
	struct udp_seen *s = arg;

	s->got = true;
	s->from = *from;
	s->len = TB_MIN(n, sizeof(s->data));
	memcpy(s->data, d, s->len);
}

static void test_udp_roundtrip(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_addr_t a = loopback(0), b = loopback(0), aa, ba;
	tb_udp_t *ua, *ub;
	struct udp_seen sa = {0}, sb = {0};

	assert_int_equal(tb_udp_open(loop, &a, udp_recv, &sa, &ua), 0);
	assert_int_equal(tb_udp_open(loop, &b, udp_recv, &sb, &ub), 0);
	tb_udp_local_addr(ua, &aa);
	tb_udp_local_addr(ub, &ba);
	assert_int_equal(tb_udp_send(ua, &ba, "ping", 4), 0);
	spin(loop, &sb.got);
	assert_int_equal(sb.len, 4);
	assert_memory_equal(sb.data, "ping", 4);
	assert_true(tb_addr_equal(&sb.from, &aa));
	assert_int_equal(tb_udp_send(ub, &sb.from, "pong", 4), 0);
	spin(loop, &sa.got);
	assert_memory_equal(sa.data, "pong", 4);
	tb_udp_close(ua);
	tb_udp_close(ub);
	tb_loop_free(loop);
}

/* ---- DNS ---- */

struct dns_seen {
	bool done;
	int err;
	size_t n;
	tb_addr_t first;
};

static void dns_done(void *arg, int err, const tb_addr_t *addrs, size_t n)
{
	struct dns_seen *s = arg;

	s->done = true;
	s->err = err;
	s->n = n;
	if (n)
		s->first = addrs[0];
}

static void test_dns_literal_and_cancel(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_dns_t *d;
	tb_dns_query_t *q;
	struct dns_seen lit = {0}, canceled = {0};

	assert_int_equal(tb_dns_new(loop, NULL, &d), 0);
	assert_int_equal(tb_dns_resolve(d, "192.0.2.7", 0, dns_done, &lit, NULL), 0);
	assert_false(lit.done); /* answered from the loop, not inside the call */
	assert_int_equal(tb_dns_resolve(d, "::1", 0, dns_done, &canceled, &q), 0);
	tb_dns_cancel(q);
	spin(loop, &lit.done);
	assert_int_equal(lit.err, 0);
	assert_int_equal(lit.n, 1);
	assert_int_equal(lit.first.family, TB_AF_INET);
	assert_int_equal(lit.first.ip[3], 7);
	for (int i = 0; i < 10; i++)
		tb_loop_once(loop, 1);
	assert_false(canceled.done);
	tb_dns_free(d);
	tb_loop_free(loop);
}

static void test_dns_hosts_name(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_dns_t *d;
	struct dns_seen s = {0};

	if (!ENABLE_DNS_CARES)
		skip();
	/* "localhost" comes from /etc/hosts: no packet leaves the machine. */
	assert_int_equal(tb_dns_new(loop, NULL, &d), 0);
	assert_int_equal(tb_dns_resolve(d, "localhost", 0, dns_done, &s, NULL), 0);
	assert_false(s.done);
	spin(loop, &s.done);
	assert_int_equal(s.err, 0);
	assert_true(s.n >= 1);
	assert_true(s.first.family == TB_AF_INET ? s.first.ip[0] == 127 : s.first.ip[15] == 1);
	tb_dns_free(d);
	tb_loop_free(loop);
}

static void test_dns_invalid_name(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_dns_t *d;
	struct dns_seen s = {0};

	if (!ENABLE_DNS_CARES)
		skip();
	/* .invalid is reserved (RFC 6761); a resolver answers without asking
	 * the network only if it knows that, so use a local server that does
	 * not exist: 127.0.0.1:9 (discard) refuses, and the query fails. */
	assert_int_equal(tb_dns_new(loop, "127.0.0.1:9", &d), 0);
	assert_int_equal(tb_dns_resolve(d, "nosuchhost.invalid", 0, dns_done, &s, NULL), 0);
	for (int i = 0; i < 1500 && !s.done; i++)
		tb_loop_once(loop, 10);
	assert_true(s.done);
	assert_true(s.err == TB_EHOSTUNREACH || s.err == TB_ETIMEDOUT);
	tb_dns_free(d);
	tb_loop_free(loop);
}

/* ---- TUN: open and close only (traffic is exercised in namespaces) ---- */
#if ENABLE_TUN

static void tun_recv(void *arg, const uint8_t *pkt, size_t len)
{
}

static void test_tun_open(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	char name[16] = "tbtest%d";
	tb_tun_t *t;
	int rc;

	if (!ENABLE_TUN || geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
		skip();
	rc = tb_tun_open(loop, name, sizeof(name), tun_recv, NULL, &t);
	if (rc == TB_EDENIED || rc == TB_ENOENT)
		skip(); /* a container without CAP_NET_ADMIN */
	assert_int_equal(rc, 0);
	assert_memory_equal(name, "tbtest", 6);
	assert_true(strchr(name, '%') == NULL);
	tb_tun_close(t);
	tb_loop_free(loop);
}
#else
static void test_tun_open(void **state)
{
	skip(); /* CONFIG_TUN is off */
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_echo_backpressure_halfclose),
		cmocka_unit_test(test_tcp_connect_refused),
		cmocka_unit_test(test_tcp_connect_cancel),
		cmocka_unit_test(test_udp_roundtrip),
		cmocka_unit_test(test_dns_literal_and_cancel),
		cmocka_unit_test(test_dns_hosts_name),
		cmocka_unit_test(test_dns_invalid_name),
		cmocka_unit_test(test_tun_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
