/* test_lwip_netif.c: the lwIP port's netif packet paths with canned frames.
 *
 * A device-less netif (port/lwip/netif.c) takes frames through
 * tb_lwip_netif_input() and hands what lwIP sends to a sink: an ARP request
 * gets its reply, an ICMP echo its echo reply, a SYN to a listener its
 * SYN-ACK, and the handshake's ACK plus data reach the accept callback and
 * on_data, with the window reopened only after the bytes were taken. Bad
 * frames are dropped without output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frames.h"
#include "tb/loop.h"
#include "tb/port.h"
#include "tb_lwip.h"

#define MAXF 16

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t peer_ip[4] = {10, 9, 0, 1};
static const uint8_t our_ip[4] = {10, 9, 0, 2};

struct sink {
	uint8_t f[MAXF][1600];
	size_t len[MAXF];
	size_t n;
};

struct fixture {
	tb_loop_t *loop;
	tb_lwip_netif_t *nif;
	tb_lwip_netif_conf_t conf;
	struct sink out;
};

static void sink(void *arg, const uint8_t *frame, size_t len)
{
	struct sink *s = arg;

	if (s->n < MAXF && len <= sizeof(s->f[0])) {
		memcpy(s->f[s->n], frame, len);
		s->len[s->n++] = len;
	}
}

static int setup_common(void **state, bool tap)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->loop = tb_loop_new();
	assert_non_null(fx->loop);
	fx->conf.tap = tap;
	snprintf(fx->conf.device, sizeof(fx->conf.device), "test0");
	assert_int_equal(tb_addr_parse_ip("10.9.0.2", &fx->conf.address), 0);
	assert_int_equal(tb_addr_parse_ip("255.255.255.0", &fx->conf.netmask), 0);
	assert_int_equal(tb_addr_parse_ip("10.9.0.1", &fx->conf.gateway), 0);
	memcpy(fx->conf.mac, (const uint8_t[]){0x02, 0x74, 10, 9, 0, 2}, 6);
	assert_int_equal(tb_lwip_netif_new(fx->loop, &fx->conf, -1, sink, &fx->out, &fx->nif), 0);
	if (tap) {
		/* Coming up, lwIP announces its address (gratuitous ARP) from our MAC. */
		assert_true(fx->out.n >= 1);
		assert_int_equal(tb_be16(fx->out.f[0] + 12), 0x0806);
		assert_memory_equal(fx->out.f[0] + 6, fx->conf.mac, 6);
	}
	fx->out.n = 0;
	*state = fx;
	return 0;
}

static int setup_tap(void **state) { return setup_common(state, true); }
static int setup_tun(void **state) { return setup_common(state, false); }

static int teardown(void **state)
{
	struct fixture *fx = *state;

	tb_lwip_netif_free(fx->nif);
	tb_loop_free(fx->loop);
	free(fx);
	return 0;
}

/* The sent frame whose EtherType is type (tap), or NULL. */
static const uint8_t *find_eth(const struct sink *s, uint16_t type, size_t *len)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->len[i] >= FR_ETH && tb_be16(s->f[i] + 12) == type) {
			*len = s->len[i];
			return s->f[i];
		}
	return NULL;
}

static void arp_learn(struct fixture *fx)
{
	uint8_t f[64];
	size_t n = fr_arp_request(f, peer_mac, peer_ip, our_ip);

	tb_lwip_netif_input(fx->nif, f, n);
}

static void test_arp_request_reply(void **state)
{
	struct fixture *fx = *state;
	const uint8_t *r;
	size_t len;

	arp_learn(fx);
	r = find_eth(&fx->out, 0x0806, &len);
	assert_non_null(r);
	assert_true(len >= FR_ETH + 28);
	assert_memory_equal(r, peer_mac, 6);           /* unicast back to the asker */
	assert_memory_equal(r + 6, fx->conf.mac, 6);
	assert_int_equal(tb_be16(r + FR_ETH + 6), 2);  /* reply */
	assert_memory_equal(r + FR_ETH + 8, fx->conf.mac, 6);
	assert_memory_equal(r + FR_ETH + 14, our_ip, 4);
	assert_memory_equal(r + FR_ETH + 18, peer_mac, 6);
	assert_memory_equal(r + FR_ETH + 24, peer_ip, 4);

	/* A request for another address is not answered. */
	uint8_t f[64];
	const uint8_t other[4] = {10, 9, 0, 77};
	fx->out.n = 0;
	tb_lwip_netif_input(fx->nif, f, fr_arp_request(f, peer_mac, peer_ip, other));
	assert_int_equal(fx->out.n, 0);
}

static void test_icmp_echo_tap(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[128];
	const uint8_t *r;
	size_t n, len;

	arp_learn(fx);
	fx->out.n = 0;
	n = fr_eth(f, fx->conf.mac, peer_mac, 0x0800);
	n += fr_icmp_echo(f + n, peer_ip, our_ip, 0x4242, 7);
	tb_lwip_netif_input(fx->nif, f, n);
	r = find_eth(&fx->out, 0x0800, &len);
	assert_non_null(r);
	assert_int_equal(len, n);
	assert_memory_equal(r + FR_ETH + 12, our_ip, 4);
	assert_memory_equal(r + FR_ETH + 16, peer_ip, 4);
	assert_int_equal(r[FR_ETH + FR_IP], 0); /* echo reply */
	assert_int_equal(tb_be16(r + FR_ETH + FR_IP + 4), 0x4242);
	assert_memory_equal(r + FR_ETH + FR_IP + 8, "tunnelbx", 8);
	assert_int_equal(fr_csum(r + FR_ETH + FR_IP, 16, 0), 0); /* a valid checksum sums to zero */
}

static void test_icmp_echo_tun(void **state)
{
	struct fixture *fx = *state;
	uint8_t p[64];
	size_t n = fr_icmp_echo(p, peer_ip, our_ip, 1, 1);

	tb_lwip_netif_input(fx->nif, p, n);
	assert_int_equal(fx->out.n, 1);
	assert_int_equal(fx->out.len[0], n);
	assert_int_equal(fx->out.f[0][0] >> 4, 4);
	assert_int_equal(fx->out.f[0][FR_IP], 0);
	assert_int_equal(fr_csum(fx->out.f[0], FR_IP, 0), 0);
}

struct acc {
	tb_stream_t *s;
	tb_addr_t peer;
	uint8_t data[64];
	size_t got;
	bool pause_after;
};

static void acc_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct acc *a = ctx;

	if (a->got + n <= sizeof(a->data))
		memcpy(a->data + a->got, d, n);
	a->got += n;
	if (a->pause_after)
		tb_stream_pause(s);
}

static const tb_stream_handler_t acc_handler = {.on_data = acc_data};

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	struct acc *a = arg;

	a->s = s;
	a->peer = *peer;
	tb_stream_set_handler(s, &acc_handler, a);
}

/* The last TCP segment sent (tap): its header, or NULL. */
static const uint8_t *last_tcp(const struct sink *s)
{
	for (size_t i = s->n; i-- > 0;)
		if (s->len[i] >= FR_ETH + FR_IP + FR_TCP && tb_be16(s->f[i] + 12) == 0x0800 && s->f[i][FR_ETH + 9] == 6)
			return s->f[i] + FR_ETH + FR_IP;
	return NULL;
}

static void send_tcp(struct fixture *fx, uint32_t seq, uint32_t ack, uint8_t flags, const char *data)
{
	uint8_t f[256];
	size_t n = fr_eth(f, fx->conf.mac, peer_mac, 0x0800);

	n += fr_tcp(f + n, peer_ip, our_ip, 40000, 8080, seq, ack, flags, 0xffff, data, data ? strlen(data) : 0);
	tb_lwip_netif_input(fx->nif, f, n);
}

static void test_tcp_syn_synack_data(void **state)
{
	struct fixture *fx = *state;
	struct acc a = {0};
	tb_tcp_listener_t *l;
	tb_addr_t bind;
	const uint8_t *t;
	uint32_t isn;

	assert_int_equal(tb_addr_parse("10.9.0.2:8080", &bind, false), 0);
	assert_int_equal(tb_tcp_listen(fx->loop, &bind, NULL, on_accept, &a, &l), 0);
	arp_learn(fx);
	fx->out.n = 0;

	send_tcp(fx, 1000, 0, 0x02 /* SYN */, NULL);
	t = last_tcp(&fx->out);
	assert_non_null(t);
	assert_int_equal(tb_be16(t), 8080);
	assert_int_equal(tb_be16(t + 2), 40000);
	assert_int_equal(t[13] & 0x3f, 0x12); /* SYN-ACK */
	assert_int_equal(tb_be32(t + 8), 1001);
	isn = tb_be32(t + 4);
	assert_null(a.s);

	send_tcp(fx, 1001, isn + 1, 0x10 /* ACK */, NULL);
	assert_non_null(a.s); /* accepted once the handshake completed */
	assert_int_equal(a.peer.port, 40000);
	assert_memory_equal(a.peer.ip, peer_ip, 4);

	/* Data is delivered; the consumer pauses after taking it. */
	a.pause_after = true;
	fx->out.n = 0;
	send_tcp(fx, 1001, isn + 1, 0x18 /* PSH|ACK */, "hello");
	assert_int_equal(a.got, 5);
	assert_memory_equal(a.data, "hello", 5);

	/* Paused: the next bytes stay in lwIP's hands, unacknowledged by the window. */
	send_tcp(fx, 1006, isn + 1, 0x18, "world");
	assert_int_equal(a.got, 5);
	tb_loop_once(fx->loop, 0);
	assert_int_equal(a.got, 5);
	tb_stream_resume(a.s);
	tb_loop_once(fx->loop, 0); /* resume delivers from the loop, never inside resume() */
	assert_int_equal(a.got, 10);
	assert_memory_equal(a.data + 5, "world", 5);

	tb_stream_close(a.s);
	tb_tcp_listener_close(l);
}

static void test_bad_frames_dropped(void **state)
{
	struct fixture *fx = *state;
	uint8_t f[2000];
	size_t n;

	memset(f, 0xa5, sizeof(f));
	tb_lwip_netif_input(fx->nif, f, 0);
	tb_lwip_netif_input(fx->nif, f, 6);          /* shorter than an Ethernet header */
	tb_lwip_netif_input(fx->nif, f, sizeof(f));  /* above MTU + header */
	n = fr_eth(f, fx->conf.mac, peer_mac, 0x0800);
	n += fr_icmp_echo(f + n, peer_ip, our_ip, 1, 1);
	f[FR_ETH + 10] ^= 0xff; /* bad IP checksum */
	tb_lwip_netif_input(fx->nif, f, n);
	n = fr_eth(f, fx->conf.mac, peer_mac, 0x0800);
	n += fr_icmp_echo(f + n, peer_ip, our_ip, 1, 1);
	tb_put_be16(f + FR_ETH + 2, 1400); /* IP total length beyond the frame */
	tb_lwip_netif_input(fx->nif, f, n);
	assert_int_equal(fx->out.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_arp_request_reply, setup_tap, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_echo_tap, setup_tap, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_echo_tun, setup_tun, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_syn_synack_data, setup_tap, teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames_dropped, setup_tap, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
