/* frames.h: canned Ethernet/IPv4/ICMP/TCP/ARP frames for the lwIP netif
 * tests and the netif fuzzer. Built byte by byte with the byte-order helpers,
 * so they are the same on any host. */
#ifndef TB_TEST_FRAMES_H
#define TB_TEST_FRAMES_H

#include <string.h>

#include "tb/base.h"

#define FR_ETH 14
#define FR_IP 20
#define FR_TCP 20

static inline uint16_t fr_csum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += tb_be16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline size_t fr_eth(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	tb_put_be16(f + 12, type);
	return FR_ETH;
}

/* An IPv4 header at p for payload_len bytes after it; checksum filled. */
static inline size_t fr_ip4(uint8_t *p, const uint8_t src[4], const uint8_t dst[4], uint8_t proto, size_t payload_len)
{
	memset(p, 0, FR_IP);
	p[0] = 0x45;
	tb_put_be16(p + 2, (uint16_t)(FR_IP + payload_len));
	tb_put_be16(p + 4, 0x1234);
	tb_put_be16(p + 6, 0x4000); /* DF */
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	tb_put_be16(p + 10, fr_csum(p, FR_IP, 0));
	return FR_IP;
}

/* ARP request "who has tip? tell sip" from smac, broadcast. */
static inline size_t fr_arp_request(uint8_t *f, const uint8_t smac[6], const uint8_t sip[4], const uint8_t tip[4])
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t *a = f + fr_eth(f, bcast, smac, 0x0806);

	tb_put_be16(a, 1);      /* Ethernet */
	tb_put_be16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	tb_put_be16(a + 6, 1); /* request */
	memcpy(a + 8, smac, 6);
	memcpy(a + 14, sip, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, tip, 4);
	return FR_ETH + 28;
}

/* ICMP echo request with 8 bytes of data, at p (an IP packet). */
static inline size_t fr_icmp_echo(uint8_t *p, const uint8_t src[4], const uint8_t dst[4], uint16_t id, uint16_t seq)
{
	uint8_t *ic = p + FR_IP;

	fr_ip4(p, src, dst, 1, 16);
	memset(ic, 0, 16);
	ic[0] = 8;
	tb_put_be16(ic + 4, id);
	tb_put_be16(ic + 6, seq);
	memcpy(ic + 8, "tunnelbx", 8);
	tb_put_be16(ic + 2, fr_csum(ic, 16, 0));
	return FR_IP + 16;
}

/* A TCP segment (no options) with data, at p (an IP packet). */
static inline size_t fr_tcp(uint8_t *p, const uint8_t src[4], const uint8_t dst[4], uint16_t sport, uint16_t dport,
			    uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *data, size_t len)
{
	uint8_t *t = p + FR_IP;
	uint8_t pseudo[12];
	uint32_t sum = 0;

	fr_ip4(p, src, dst, 6, FR_TCP + len);
	memset(t, 0, FR_TCP);
	tb_put_be16(t, sport);
	tb_put_be16(t + 2, dport);
	tb_put_be32(t + 4, seq);
	tb_put_be32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	tb_put_be16(t + 14, win);
	if (len)
		memcpy(t + FR_TCP, data, len);
	memcpy(pseudo, src, 4);
	memcpy(pseudo + 4, dst, 4);
	pseudo[8] = 0;
	pseudo[9] = 6;
	tb_put_be16(pseudo + 10, (uint16_t)(FR_TCP + len));
	for (size_t i = 0; i < sizeof(pseudo); i += 2)
		sum += tb_be16(pseudo + i);
	tb_put_be16(t + 16, fr_csum(t, FR_TCP + len, sum));
	return FR_IP + FR_TCP + len;
}

#endif
