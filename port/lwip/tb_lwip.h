/* tb_lwip.h: the lwIP glue shared by everything that runs lwIP in tunnelbox
 * (the lwIP port and the tun2socks listener). Not a public header.
 *
 * lwIP is process-global state (its pools, PCB lists and timers), so it is
 * initialised once per process; tb_lwip_start() does that on first use and
 * attaches lwIP's timers to the loop: sys_check_timeouts() runs before every
 * poll (the loop's before-sleep hook, which lwIP therefore owns) and a loop
 * timer wakes the poll at sys_timeouts_sleeptime(). Calls nest: each start
 * is paired with a stop; the last stop detaches the timers (lwIP has no
 * de-init, its memory stays). */
#ifndef TB_LWIP_GLUE_H
#define TB_LWIP_GLUE_H

#include "lwip/err.h"
#include "lwip/ip_addr.h"
#include "tb/addr.h"
#include "tb/loop.h"

int tb_lwip_start(tb_loop_t *loop);
void tb_lwip_stop(tb_loop_t *loop);
/* Runs lwIP's due timers now and re-arms the wake-up (after input bursts). */
void tb_lwip_poll_timers(tb_loop_t *loop);
/* fn runs before every poll, ahead of the timers: the lwIP port's TCP streams
 * send what they queued in the turn there (one tcp_output per stream). */
void tb_lwip_set_flush(void (*fn)(void));

/* lwIP's err_t as a TB_E* code (0 for ERR_OK). */
int tb_lwip_err(err_t e);
/* Addresses between tb_addr_t and lwIP's ip_addr_t (ports stay separate). */
int tb_lwip_to_ip(const tb_addr_t *a, ip_addr_t *out);
void tb_lwip_from_ip(const ip_addr_t *ip, uint16_t port, tb_addr_t *out);

/* ---- the netif (netif.c) ---- */
typedef struct tb_lwip_netif tb_lwip_netif_t;
typedef struct tb_lwip_netif_conf {
	bool tap;        /* Ethernet with ARP; else tun (bare IP) */
	char device[16]; /* IFNAMSIZ */
	tb_addr_t address, netmask, gateway;
	char dns[128];   /* "ip[,ip]" or empty */
	uint16_t mtu;    /* IP MTU; 0: 1500. TCP's MSS is min(this - 40, TCP_MSS) */
	uint8_t mac[6];
} tb_lwip_netif_conf_t;
/* Frames a device-less netif sends (tests, fuzzing); borrowed for the call. */
typedef void (*tb_lwip_sink_cb)(void *arg, const uint8_t *frame, size_t len);

/* fd: an open tap/tun descriptor (watched by the loop), or -1 for a netif
 * whose frames go to sink. The netif becomes lwIP's default. */
int tb_lwip_netif_new(tb_loop_t *loop, const tb_lwip_netif_conf_t *c, int fd, tb_lwip_sink_cb sink, void *arg,
		      tb_lwip_netif_t **out);
void tb_lwip_netif_free(tb_lwip_netif_t *n);
/* One received frame (Ethernet for tap, IP for tun), copied into a pbuf. */
void tb_lwip_netif_input(tb_lwip_netif_t *n, const uint8_t *frame, size_t len);

/* The lwIP port's netif from [port.lwip], opened on first use. */
int tb_lwip_port_up(tb_loop_t *loop);
/* A socket's bind address: brings the port up, converts a, and gives the
 * PCB type to create ([::] without v6only takes both families, as a
 * dual-stack socket does). */
int tb_lwip_bind_addr(tb_loop_t *loop, const tb_addr_t *a, bool v6only, ip_addr_t *ip, u8_t *type);
const char *tb_lwip_port_dns(void); /* [port.lwip] dns, or NULL */

#endif
