/* tun2socks.h: the `tun` listener: a TUN device's TCP connections and UDP
 * flows, to any destination, handed to a router.
 *
 * IP packets read from the device go into an lwIP netif that accepts every
 * destination (lwIP's input hooks, port/lwip/tun2socks_hooks.h). A TCP
 * connection to a.b.c.d:p is answered by lwIP *as* a.b.c.d:p and becomes an
 * inbound stream whose target is a.b.c.d:p; a UDP flow (client address and
 * port, destination address and port) becomes a datagram association. lwIP
 * is the TUN-side stack only: the outbound side is whatever connector the
 * router picks. UDP never enters lwIP: it is parsed and answered here,
 * without allocation per datagram.
 *
 * The core (tb_t2s_*) knows nothing of the gateway or of the device: it
 * takes packets with tb_t2s_input() and gives packets and flows to the
 * callbacks of a tb_t2s_env_t. The listener kind (tb_tun2socks_proto) binds
 * it to a TUN device and to tb_gw_open/tb_gw_relay/tb_gw_udp_open; unit
 * tests and the fuzzer bind it to fakes. */
#ifndef TB_TUN2SOCKS_H
#define TB_TUN2SOCKS_H

#include "tb/connector.h"
#include "tb/gateway.h"
#include "tb/loop.h"

typedef struct tb_t2s tb_t2s_t;

typedef struct tb_t2s_env {
	/* Route and connect to t; cb runs later (never inside open). *handle
	 * lets the core cancel it (the callback then never runs). */
	int (*open)(void *arg, const tb_target_t *t, tb_connector_cb cb, void *cbarg, void **handle);
	void (*cancel)(void *arg, void *handle);
	/* Relays client <-> remote; takes both streams. */
	int (*relay)(void *arg, tb_stream_t *client, tb_stream_t *remote);
	/* A datagram association routed on its first target. */
	int (*udp_open)(void *arg, const tb_target_t *first, tb_dgram_recv_cb cb, void *cbarg, tb_dgram_t **out);
	/* One IP packet toward the LAN (the TUN device); borrowed for the call. */
	int (*output)(void *arg, const uint8_t *pkt, size_t len);
	void *arg;
} tb_t2s_env_t;

typedef struct tb_t2s_opts {
	uint32_t mtu;          /* of the device: 576 to 65535 (IPv6 needs 1280) */
	uint32_t max_sessions; /* TCP connections + UDP flows; the least recently used goes */
	uint32_t udp_idle_ms;  /* a UDP flow without traffic is closed */
} tb_t2s_opts_t;

#define TB_T2S_MTU_DEFAULT 1500

/* lwIP is initialised on first use and its timers attached to loop. */
int tb_t2s_new(tb_loop_t *loop, const tb_t2s_opts_t *o, const tb_t2s_env_t *env, tb_t2s_t **out);
/* One IP packet from the LAN; borrowed for the call. */
void tb_t2s_input(tb_t2s_t *t, const uint8_t *pkt, size_t len);
/* No new sessions from now on (a drain); running ones go on, UDP ends. */
void tb_t2s_stop(tb_t2s_t *t);
/* Ends every session (TCP ones with a reset) and releases the netif. */
void tb_t2s_free(tb_t2s_t *t);

typedef struct tb_t2s_stats {
	size_t tcp, udp;   /* sessions now */
	uint64_t evicted;  /* sessions ended by the cap */
	uint64_t dropped;  /* packets refused: malformed, fragments, no room */
} tb_t2s_stats_t;
void tb_t2s_get_stats(const tb_t2s_t *t, tb_t2s_stats_t *st);

/* The listener kind (`proto = "tun"`). */
extern const tb_gw_proto_t tb_tun2socks_proto;

#endif
