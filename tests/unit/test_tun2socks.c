/* test_tun2socks.c: the tun2socks core with canned IPv4/IPv6 packets.
 *
 * The core is bound to a fake environment: packets it sends toward the LAN
 * are captured and parsed here, opens and UDP associations are recorded. A
 * SYN to an arbitrary address must come back as a SYN-ACK *from* that
 * address and, once the handshake completes, an open of exactly that
 * target; UDP to an arbitrary address must become an association with that
 * destination whose replies come back from it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tb/tun2socks.h"

#define MAXPKT 16

typedef struct fake_dgram {
	tb_dgram_t d;
	struct fake *f;
} fake_dgram_t;

typedef struct fake {
	uint8_t out[MAXPKT][2048];
	size_t outlen[MAXPKT];
	int nout;
	int nopen, open_rc;
	tb_target_t opened;
	tb_connector_cb cb;
	void *cbarg;
	tb_stream_t *client;
	int nudp, nsend, nclose;
	tb_target_t udp_first, sent_to;
	uint8_t sent[4096];
	size_t sentlen;
	fake_dgram_t *dg;
	/* what the client stream hands over */
	uint8_t got[2048];
	size_t gotlen;
	int eofs, closes;
} fake_t;

static int f_open(void *arg, const tb_target_t *t, tb_connector_cb cb, void *cbarg, void **handle)
{
	fake_t *f = arg;

	f->nopen++;
	f->opened = *t;
	f->cb = cb;
	f->cbarg = cbarg;
	*handle = f;
	return f->open_rc;
}

static void f_cancel(void *arg, void *handle)
{
}

static void c_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	fake_t *f = ctx;

	memcpy(f->got + f->gotlen, d, n);
	f->gotlen += n;
}
static void c_eof(void *ctx, tb_stream_t *s)
{
	((fake_t *)ctx)->eofs++;
}
static void c_close(void *ctx, tb_stream_t *s, int err)
{
	((fake_t *)ctx)->closes++;
}
static const tb_stream_handler_t client_h = {c_data, NULL, c_eof, c_close};

static int f_relay(void *arg, tb_stream_t *client, tb_stream_t *remote)
{
	fake_t *f = arg;

	f->client = client;
	tb_stream_set_handler(client, &client_h, f);
	tb_stream_resume(client);
	return 0;
}

static int d_send(tb_dgram_t *d, const tb_target_t *to, const void *data, size_t len)
{
	fake_t *f = ((fake_dgram_t *)d)->f;

	f->nsend++;
	f->sent_to = *to;
	memcpy(f->sent, data, len);
	f->sentlen = len;
	return 0;
}

static void d_close(tb_dgram_t *d)
{
	fake_dgram_t *fd = (fake_dgram_t *)d;

	fd->f->nclose++;
	if (fd->f->dg == fd)
		fd->f->dg = NULL;
	free(fd);
}

static const tb_dgram_ops_t dgram_ops = {d_send, d_close};

static int f_udp_open(void *arg, const tb_target_t *first, tb_dgram_recv_cb cb, void *cbarg, tb_dgram_t **out)
{
	fake_t *f = arg;
	fake_dgram_t *fd = calloc(1, sizeof(*fd));

	assert_non_null(fd);
	fd->d.ops = &dgram_ops;
	fd->d.recv = cb;
	fd->d.arg = cbarg;
	fd->f = f;
	f->dg = fd;
	f->nudp++;
	f->udp_first = *first;
	*out = &fd->d;
	return 0;
}

static int f_output(void *arg, const uint8_t *pkt, size_t len)
{
	fake_t *f = arg;

	assert_true(len <= sizeof(f->out[0]));
	if (f->nout < MAXPKT) {
		memcpy(f->out[f->nout], pkt, len);
		f->outlen[f->nout++] = len;
	}
	return 0;
}

/* ---- packets ---- */

static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
	for (; n >= 2; p += 2, n -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static tb_addr_t addr(const char *s, uint16_t port)
{
	tb_addr_t a;

	assert_int_equal(tb_addr_parse_ip(s, &a), 0);
	a.port = port;
	return a;
}

static size_t alen(const tb_addr_t *a)
{
	return a->family == TB_AF_INET6 ? 16 : 4;
}

/* An IP packet carrying a transport segment l4 (its checksum at csum_off filled here). */
static size_t ip_wrap(uint8_t *out, const tb_addr_t *src, const tb_addr_t *dst, uint8_t proto, uint8_t *l4,
		      size_t n, size_t csum_off)
{
	size_t hl = src->family == TB_AF_INET6 ? 40 : 20;
	uint32_t s = sum16(sum16(0, src->ip, alen(src)), dst->ip, alen(dst)) + proto + (uint32_t)n;

	l4[csum_off] = l4[csum_off + 1] = 0;
	tb_put_be16(l4 + csum_off, fold(sum16(s, l4, n)));
	memset(out, 0, hl);
	if (hl == 40) {
		out[0] = 0x60;
		tb_put_be16(out + 4, (uint16_t)n);
		out[6] = proto;
		out[7] = 64;
		memcpy(out + 8, src->ip, 16);
		memcpy(out + 24, dst->ip, 16);
	} else {
		out[0] = 0x45;
		tb_put_be16(out + 2, (uint16_t)(20 + n));
		out[8] = 64;
		out[9] = proto;
		memcpy(out + 12, src->ip, 4);
		memcpy(out + 16, dst->ip, 4);
		tb_put_be16(out + 10, fold(sum16(0, out, 20)));
	}
	memcpy(out + hl, l4, n);
	return hl + n;
}

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

static size_t tcp_pkt(uint8_t *out, const tb_addr_t *src, const tb_addr_t *dst, uint32_t seq, uint32_t ack,
		      uint8_t flags, const char *data)
{
	uint8_t l4[256];
	size_t n = data ? strlen(data) : 0;

	memset(l4, 0, 20);
	tb_put_be16(l4, src->port);
	tb_put_be16(l4 + 2, dst->port);
	tb_put_be32(l4 + 4, seq);
	tb_put_be32(l4 + 8, ack);
	l4[12] = 5 << 4;
	l4[13] = flags;
	tb_put_be16(l4 + 14, 65535);
	memcpy(l4 + 20, data ? data : "", n);
	return ip_wrap(out, src, dst, 6, l4, 20 + n, 16);
}

static size_t udp_pkt(uint8_t *out, const tb_addr_t *src, const tb_addr_t *dst, const char *data)
{
	uint8_t l4[256];
	size_t n = strlen(data);

	tb_put_be16(l4, src->port);
	tb_put_be16(l4 + 2, dst->port);
	tb_put_be16(l4 + 4, (uint16_t)(8 + n));
	memcpy(l4 + 8, data, n);
	return ip_wrap(out, src, dst, 17, l4, 8 + n, 6);
}

/* A captured packet, parsed; its transport checksum must verify. */
typedef struct parsed {
	tb_addr_t src, dst;
	uint8_t proto, flags;
	uint32_t seq, ack;
	const uint8_t *payload;
	size_t plen;
} parsed_t;

static void parse(const uint8_t *p, size_t len, parsed_t *o)
{
	size_t hl, n;
	const uint8_t *l4;
	uint32_t s;

	memset(o, 0, sizeof(*o));
	if ((p[0] >> 4) == 6) {
		hl = 40;
		o->src.family = o->dst.family = TB_AF_INET6;
		memcpy(o->src.ip, p + 8, 16);
		memcpy(o->dst.ip, p + 24, 16);
		o->proto = p[6];
		n = tb_be16(p + 4);
	} else {
		hl = (size_t)(p[0] & 15) * 4;
		assert_int_equal(fold(sum16(0, p, hl)), 0);
		o->src.family = o->dst.family = TB_AF_INET;
		memcpy(o->src.ip, p + 12, 4);
		memcpy(o->dst.ip, p + 16, 4);
		o->proto = p[9];
		n = tb_be16(p + 2) - hl;
	}
	assert_int_equal(hl + n, len);
	l4 = p + hl;
	s = sum16(sum16(0, o->src.ip, alen(&o->src)), o->dst.ip, alen(&o->dst)) + o->proto + (uint32_t)n;
	assert_int_equal(fold(sum16(s, l4, n)), 0);
	o->src.port = tb_be16(l4);
	o->dst.port = tb_be16(l4 + 2);
	if (o->proto == 6) {
		size_t doff = (size_t)(l4[12] >> 4) * 4;
		o->seq = tb_be32(l4 + 4);
		o->ack = tb_be32(l4 + 8);
		o->flags = l4[13];
		o->payload = l4 + doff;
		o->plen = n - doff;
	} else {
		o->payload = l4 + 8;
		o->plen = n - 8;
	}
}

/* ---- fixtures ---- */

typedef struct ctx {
	tb_loop_t *loop;
	tb_t2s_t *t;
	fake_t f;
} ctx_t;

static ctx_t *ctx_new(uint32_t max_sessions, uint32_t udp_idle_ms)
{
	ctx_t *c = calloc(1, sizeof(*c));
	tb_t2s_env_t env = {f_open, f_cancel, f_relay, f_udp_open, f_output, NULL};
	tb_t2s_opts_t o = {.mtu = 1500, .max_sessions = max_sessions, .udp_idle_ms = udp_idle_ms};

	assert_non_null(c);
	c->loop = tb_loop_new();
	env.arg = &c->f;
	assert_int_equal(tb_t2s_new(c->loop, &o, &env, &c->t), 0);
	return c;
}

static void ctx_free(ctx_t *c)
{
	tb_t2s_free(c->t);
	tb_loop_once(c->loop, 0);
	tb_loop_free(c->loop);
	free(c);
}

static void turn(ctx_t *c)
{
	for (int i = 0; i < 3; i++)
		tb_loop_once(c->loop, 0);
}

static bool same_ip(const tb_addr_t *a, const tb_addr_t *b)
{
	return a->family == b->family && memcmp(a->ip, b->ip, alen(a)) == 0;
}

/* SYN, SYN-ACK, ACK: returns our next sequence number and the server's. */
static void handshake(ctx_t *c, const tb_addr_t *cli, const tb_addr_t *srv, uint32_t *cseq, uint32_t *sseq)
{
	uint8_t pkt[512];
	parsed_t r;
	size_t n = tcp_pkt(pkt, cli, srv, 1000, 0, F_SYN, NULL);

	c->f.nout = 0;
	tb_t2s_input(c->t, pkt, n);
	assert_int_equal(c->f.nout, 1);
	parse(c->f.out[0], c->f.outlen[0], &r);
	/* The answer comes from the address the client asked for. */
	assert_int_equal(r.proto, 6);
	assert_true(same_ip(&r.src, srv));
	assert_true(same_ip(&r.dst, cli));
	assert_int_equal(r.src.port, srv->port);
	assert_int_equal(r.dst.port, cli->port);
	assert_int_equal(r.flags & (F_SYN | F_ACK | F_RST), F_SYN | F_ACK);
	assert_int_equal(r.ack, 1001);
	assert_int_equal(c->f.nopen, 0); /* not before the handshake completes */
	n = tcp_pkt(pkt, cli, srv, 1001, r.seq + 1, F_ACK, NULL);
	tb_t2s_input(c->t, pkt, n);
	*cseq = 1001;
	*sseq = r.seq + 1;
}

static void check_open(ctx_t *c, const tb_addr_t *srv)
{
	tb_t2s_stats_t st;

	assert_int_equal(c->f.nopen, 1);
	assert_true(c->f.opened.is_ip);
	assert_true(same_ip(&c->f.opened.addr, srv));
	assert_int_equal(c->f.opened.port, srv->port);
	tb_t2s_get_stats(c->t, &st);
	assert_int_equal(st.tcp, 1);
}

/* ---- tests ---- */

static void test_syn_ipv4_any_destination(void **state)
{
	ctx_t *c = ctx_new(16, 60000);
	tb_addr_t cli = addr("10.0.0.2", 40000), srv = addr("203.0.113.5", 443);
	uint8_t pkt[512];
	uint32_t cs, ss;
	parsed_t r;
	size_t n;
	static tb_stream_t remote; /* never used by the fake relay */

	handshake(c, &cli, &srv, &cs, &ss);
	check_open(c, &srv);
	/* Bytes before the connect completes wait, un-acknowledged by the app. */
	n = tcp_pkt(pkt, &cli, &srv, cs, ss, F_ACK | F_PSH, "hello");
	tb_t2s_input(c->t, pkt, n);
	turn(c);
	assert_int_equal(c->f.gotlen, 0);
	c->f.cb(c->f.cbarg, &remote, 0);
	assert_non_null(c->f.client);
	turn(c);
	assert_int_equal(c->f.gotlen, 5);
	assert_memory_equal(c->f.got, "hello", 5);
	/* The owner's bytes go out from the original destination. */
	c->f.nout = 0;
	assert_int_equal(tb_stream_write(c->f.client, "world", 5), 0);
	assert_true(c->f.nout >= 1);
	parse(c->f.out[c->f.nout - 1], c->f.outlen[c->f.nout - 1], &r);
	assert_true(same_ip(&r.src, &srv));
	assert_int_equal(r.plen, 5);
	assert_memory_equal(r.payload, "world", 5);
	/* FIN from the client is on_eof, after the data. */
	n = tcp_pkt(pkt, &cli, &srv, cs + 5, ss + 5, F_ACK | F_FIN, NULL);
	tb_t2s_input(c->t, pkt, n);
	turn(c);
	assert_int_equal(c->f.eofs, 1);
	/* Our half-close: a FIN toward the client. */
	c->f.nout = 0;
	assert_int_equal(tb_stream_shutdown(c->f.client), 0);
	assert_true(c->f.nout >= 1);
	parse(c->f.out[c->f.nout - 1], c->f.outlen[c->f.nout - 1], &r);
	assert_true(r.flags & F_FIN);
	tb_stream_close(c->f.client);
	ctx_free(c);
}

static void test_syn_ipv6_any_destination(void **state)
{
	if (!ENABLE_LWIP_IPV6)
		skip();
	ctx_t *c = ctx_new(16, 60000);
	tb_addr_t cli = addr("fd00:99::2", 50000), srv = addr("2001:db8:1234::77", 8443);
	uint32_t cs, ss;

	handshake(c, &cli, &srv, &cs, &ss);
	check_open(c, &srv);
	ctx_free(c);
}

static void test_refused_open_resets(void **state)
{
	ctx_t *c = ctx_new(16, 60000);
	tb_addr_t cli = addr("10.0.0.2", 40001), srv = addr("192.0.2.9", 25);
	uint32_t cs, ss;
	parsed_t r;
	tb_t2s_stats_t st;

	handshake(c, &cli, &srv, &cs, &ss);
	check_open(c, &srv);
	c->f.nout = 0;
	c->f.cb(c->f.cbarg, NULL, TB_ECONNREFUSED);
	assert_int_equal(c->f.nout, 1);
	parse(c->f.out[0], c->f.outlen[0], &r);
	assert_true(r.flags & F_RST);
	assert_true(same_ip(&r.src, &srv));
	tb_t2s_get_stats(c->t, &st);
	assert_int_equal(st.tcp, 0);
	ctx_free(c);
}

static void udp_round(ctx_t *c, const tb_addr_t *cli, const tb_addr_t *srv)
{
	uint8_t pkt[512];
	parsed_t r;
	tb_target_t from;
	size_t n = udp_pkt(pkt, cli, srv, "query");

	tb_t2s_input(c->t, pkt, n);
	assert_int_equal(c->f.nudp, 1);
	assert_true(c->f.udp_first.is_ip);
	assert_true(same_ip(&c->f.udp_first.addr, srv));
	assert_int_equal(c->f.udp_first.port, srv->port);
	assert_int_equal(c->f.nsend, 1);
	assert_int_equal(c->f.sentlen, 5);
	assert_memory_equal(c->f.sent, "query", 5);
	/* A reply comes back from the destination to the client's port. */
	c->f.nout = 0;
	tb_target_from_addr(&from, srv);
	c->f.dg->d.recv(c->f.dg->d.arg, &c->f.dg->d, &from, (const uint8_t *)"answer", 6);
	assert_int_equal(c->f.nout, 1);
	parse(c->f.out[0], c->f.outlen[0], &r);
	assert_int_equal(r.proto, 17);
	assert_true(same_ip(&r.src, srv));
	assert_int_equal(r.src.port, srv->port);
	assert_true(same_ip(&r.dst, cli));
	assert_int_equal(r.dst.port, cli->port);
	assert_int_equal(r.plen, 6);
	assert_memory_equal(r.payload, "answer", 6);
}

static void test_udp_dns_ipv4(void **state)
{
	ctx_t *c = ctx_new(16, 60000);
	tb_addr_t cli = addr("10.0.0.2", 5000), srv = addr("198.51.100.7", 53);

	udp_round(c, &cli, &srv);
	/* DNS: closed once its one query is answered. */
	turn(c);
	assert_int_equal(c->f.nclose, 1);
	ctx_free(c);
}

static void test_udp_ipv6_idle(void **state)
{
	if (!ENABLE_LWIP_IPV6)
		skip();
	ctx_t *c = ctx_new(16, 30);
	tb_addr_t cli = addr("fd00:99::2", 6000), srv = addr("2001:db8::1", 4433);

	udp_round(c, &cli, &srv);
	turn(c);
	assert_int_equal(c->f.nclose, 0);
	for (int i = 0; i < 50 && c->f.nclose == 0; i++)
		tb_loop_once(c->loop, 10);
	assert_int_equal(c->f.nclose, 1);
	ctx_free(c);
}

static void test_cap_evicts_lru(void **state)
{
	ctx_t *c = ctx_new(2, 60000);
	tb_addr_t srv = addr("198.51.100.8", 9999);
	uint8_t pkt[256];
	tb_t2s_stats_t st;

	for (uint16_t p = 1; p <= 3; p++) {
		tb_addr_t cli = addr("10.0.0.2", (uint16_t)(7000 + p));
		tb_t2s_input(c->t, pkt, udp_pkt(pkt, &cli, &srv, "x"));
	}
	tb_t2s_get_stats(c->t, &st);
	assert_int_equal(c->f.nudp, 3);
	assert_int_equal(c->f.nclose, 1);
	assert_int_equal(st.udp, 2);
	assert_int_equal(st.evicted, 1);
	ctx_free(c);
}

/* A UDP datagram (header + data, checksum filled) for fragmenting. */
static size_t udp_l4(uint8_t *l4, const tb_addr_t *src, const tb_addr_t *dst, const uint8_t *data, size_t n)
{
	uint32_t s = sum16(sum16(0, src->ip, alen(src)), dst->ip, alen(dst)) + 17 + (uint32_t)(8 + n);

	tb_put_be16(l4, src->port);
	tb_put_be16(l4 + 2, dst->port);
	tb_put_be16(l4 + 4, (uint16_t)(8 + n));
	l4[6] = l4[7] = 0;
	memcpy(l4 + 8, data, n);
	tb_put_be16(l4 + 6, fold(sum16(s, l4, 8 + n)));
	return 8 + n;
}

/* Fragment [off, off+n) of l4 in an IPv4 or IPv6 packet. */
static size_t frag_pkt(uint8_t *out, const tb_addr_t *src, const tb_addr_t *dst, const uint8_t *l4, size_t off,
		       size_t n, bool more)
{
	if (src->family == TB_AF_INET6) {
		memset(out, 0, 48);
		out[0] = 0x60;
		tb_put_be16(out + 4, (uint16_t)(8 + n));
		out[6] = 44;
		out[7] = 64;
		memcpy(out + 8, src->ip, 16);
		memcpy(out + 24, dst->ip, 16);
		out[40] = 17;
		tb_put_be16(out + 42, (uint16_t)(off | (more ? 1 : 0)));
		tb_put_be32(out + 44, 0xabcd1234);
		memcpy(out + 48, l4 + off, n);
		return 48 + n;
	}
	memset(out, 0, 20);
	out[0] = 0x45;
	tb_put_be16(out + 2, (uint16_t)(20 + n));
	tb_put_be16(out + 4, 0x77);
	tb_put_be16(out + 6, (uint16_t)((off / 8) | (more ? 0x2000 : 0)));
	out[8] = 64;
	out[9] = 17;
	memcpy(out + 12, src->ip, 4);
	memcpy(out + 16, dst->ip, 4);
	tb_put_be16(out + 10, fold(sum16(0, out, 20)));
	memcpy(out + 20, l4 + off, n);
	return 20 + n;
}

/* A 3000-byte datagram in three fragments, given out of order. */
static void frag_round(const char *cli_s, const char *srv_s, bool overlap)
{
	ctx_t *c = ctx_new(16, 60000);
	tb_addr_t cli = addr(cli_s, 5353), srv = addr(srv_s, 9000);
	static uint8_t data[3000], l4[3100], pkt[1600];
	size_t n;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	n = udp_l4(l4, &cli, &srv, data, sizeof(data));
	tb_t2s_input(c->t, pkt, frag_pkt(pkt, &cli, &srv, l4, 2400, n - 2400, false));
	tb_t2s_input(c->t, pkt, frag_pkt(pkt, &cli, &srv, l4, 0, 1200, true));
	assert_int_equal(c->f.nudp, 0);
	if (overlap) /* a block again: the whole datagram goes */
		tb_t2s_input(c->t, pkt, frag_pkt(pkt, &cli, &srv, l4, 1192, 1208, true));
	tb_t2s_input(c->t, pkt, frag_pkt(pkt, &cli, &srv, l4, 1200, 1200, true));
	if (overlap) {
		assert_int_equal(c->f.nudp, 0);
	} else {
		assert_int_equal(c->f.nudp, 1);
		assert_true(same_ip(&c->f.udp_first.addr, &srv));
		assert_int_equal(c->f.udp_first.port, 9000);
		assert_int_equal(c->f.sentlen, sizeof(data));
		assert_memory_equal(c->f.sent, data, sizeof(data));
	}
	ctx_free(c);
}

static void test_udp_fragments_ipv4(void **state)
{
	frag_round("10.0.0.2", "198.51.100.20", false);
	frag_round("10.0.0.2", "198.51.100.20", true);
}

static void test_udp_fragments_ipv6(void **state)
{
	if (!ENABLE_LWIP_IPV6)
		skip();
	frag_round("fd00:99::2", "2001:db8::20", false);
	frag_round("fd00:99::2", "2001:db8::20", true);
}

static void test_malformed_dropped(void **state)
{
	ctx_t *c = ctx_new(16, 60000);
	tb_addr_t cli = addr("10.0.0.2", 5000), srv = addr("198.51.100.7", 7);
	uint8_t pkt[512];
	size_t n = udp_pkt(pkt, &cli, &srv, "data");
	tb_t2s_stats_t st;

	pkt[n - 1] ^= 1; /* bad UDP checksum */
	tb_t2s_input(c->t, pkt, n);
	n = udp_pkt(pkt, &cli, &srv, "data");
	tb_t2s_input(c->t, pkt, 10); /* truncated */
	tb_put_be16(pkt + 6, 0x2000); /* a fragment (MF) */
	tb_t2s_input(c->t, pkt, n);
	n = tcp_pkt(pkt, &cli, &srv, 1, 0, F_SYN, NULL);
	pkt[0] = 0x4f; /* header longer than the packet */
	tb_t2s_input(c->t, pkt, n);
	tb_t2s_input(c->t, pkt, 1);
	tb_t2s_get_stats(c->t, &st);
	assert_int_equal(c->f.nudp, 0);
	assert_int_equal(c->f.nopen, 0);
	assert_int_equal(c->f.nout, 0);
	assert_true(st.dropped >= 4);
	ctx_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syn_ipv4_any_destination),
		cmocka_unit_test(test_syn_ipv6_any_destination),
		cmocka_unit_test(test_refused_open_resets),
		cmocka_unit_test(test_udp_dns_ipv4),
		cmocka_unit_test(test_udp_ipv6_idle),
		cmocka_unit_test(test_cap_evicts_lru),
		cmocka_unit_test(test_udp_fragments_ipv4),
		cmocka_unit_test(test_udp_fragments_ipv6),
		cmocka_unit_test(test_malformed_dropped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
