/* fuzz_lwip_netif.c: raw frames into the lwIP port's netif input path.
 *
 * lwIP's own fuzzing style: deterministic time and randomness (this file
 * defines sys_now and tb_lwip_rand, so port/lwip/sys_arch.c is not linked),
 * one process-wide stack. Two device-less netifs, tap (Ethernet) and tun
 * (IP), with a TCP listener on port 80 whose streams echo what they get and
 * half-close on EOF, and a UDP socket that answers each datagram.
 *
 * Input: records of [1 byte: bit 0 netif (tap/tun), bits 1-7 ms to advance]
 * [2 bytes big-endian length][frame]. Streams still open at the end of an
 * input are closed, so inputs do not pile up state. Built with
 * `make BOARD=linux-lwip fuzz`. */
#include <stdlib.h>
#include <string.h>

#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "tb/base.h"
#include "tb/loop.h"
#include "tb/port.h"
#include "tb_lwip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STREAMS 64

static uint32_t fake_now, fake_rand = 0x12345678;

u32_t sys_now(void)
{
	return fake_now;
}

uint32_t tb_lwip_rand(void)
{
	fake_rand = fake_rand * 1103515245u + 12345u; /* fixed sequence: reproducible runs */
	return fake_rand;
}

static struct {
	tb_loop_t *loop;
	tb_lwip_netif_t *tap, *tun;
	tb_stream_t *streams[MAX_STREAMS];
	size_t sent; /* bytes the netifs sent, so the optimiser keeps the path */
} fz;

static void sink(void *arg, const uint8_t *frame, size_t len)
{
	fz.sent += len;
}

static void forget(tb_stream_t *s)
{
	for (size_t i = 0; i < MAX_STREAMS; i++)
		if (fz.streams[i] == s)
			fz.streams[i] = NULL;
}

static void on_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	if (tb_stream_write(s, d, n) == TB_ENOBUFS)
		tb_stream_pause(s);
}

static void on_drain(void *ctx, tb_stream_t *s)
{
	tb_stream_resume(s);
}

static void on_eof(void *ctx, tb_stream_t *s)
{
	tb_stream_shutdown(s);
}

static void on_close(void *ctx, tb_stream_t *s, int err)
{
	forget(s);
	tb_stream_close(s);
}

static const tb_stream_handler_t echo = {on_data, on_drain, on_eof, on_close};

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	for (size_t i = 0; i < MAX_STREAMS; i++)
		if (!fz.streams[i]) {
			fz.streams[i] = s;
			tb_stream_set_handler(s, &echo, NULL);
			return;
		}
	tb_stream_close(s);
}

static void on_udp(void *arg, tb_udp_t *u, const tb_addr_t *from, const uint8_t *d, size_t n)
{
	tb_udp_send(u, from, d, n);
}

static void init(void)
{
	tb_lwip_netif_conf_t c;
	tb_tcp_listener_t *l;
	tb_udp_t *u;
	tb_addr_t any;

	fz.loop = tb_loop_new();
	memset(&c, 0, sizeof(c));
	c.tap = true;
	tb_addr_parse_ip("10.9.0.2", &c.address);
	tb_addr_parse_ip("255.255.255.0", &c.netmask);
	tb_addr_parse_ip("10.9.0.1", &c.gateway);
	memcpy(c.mac, (const uint8_t[]){0x02, 0x74, 10, 9, 0, 2}, 6);
	if (!fz.loop || tb_lwip_netif_new(fz.loop, &c, -1, sink, NULL, &fz.tap) < 0)
		abort();
	c.tap = false;
	tb_addr_parse_ip("10.8.0.2", &c.address);
	tb_addr_parse_ip("10.8.0.1", &c.gateway);
	if (tb_lwip_netif_new(fz.loop, &c, -1, sink, NULL, &fz.tun) < 0)
		abort();
	tb_addr_parse("0.0.0.0:80", &any, false);
	if (tb_tcp_listen(fz.loop, &any, NULL, on_accept, NULL, &l) < 0)
		abort();
	tb_addr_parse("0.0.0.0:53", &any, false);
	if (tb_udp_open(fz.loop, &any, on_udp, NULL, &u) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fz.loop)
		init();
	while (size >= 3) {
		uint8_t ctl = data[0];
		size_t len = tb_be16(data + 1);

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		fake_now += ctl >> 1;
		sys_check_timeouts();
		tb_lwip_netif_input(ctl & 1 ? fz.tun : fz.tap, data, len);
		tb_loop_once(fz.loop, 0); /* deferred deliveries and deaths */
		data += len;
		size -= len;
	}
	for (size_t i = 0; i < MAX_STREAMS; i++)
		if (fz.streams[i]) {
			tb_stream_close(fz.streams[i]);
			fz.streams[i] = NULL;
		}
	/* Let TIME_WAIT and retransmissions run out between inputs. */
	fake_now += 4 * CONFIG_LWIP_TCP_MSL_MS;
	sys_check_timeouts();
	return 0;
}
