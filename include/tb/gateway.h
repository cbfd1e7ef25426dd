/* gateway.h: the running gateway: listeners, connectors, routers, flows.
 *
 * gateway.c reads the configuration's [[listener]], [[connector]],
 * [[router]] and [[data]], opens the listeners and hands each accepted
 * stream to its protocol's serve function (socks5, http, mixed). Those
 * protocol servers reach the rest of the system only through this header:
 * route-and-connect, relay, and UDP associations. */
#ifndef TB_GATEWAY_H
#define TB_GATEWAY_H

#include "tb/conf.h"
#include "tb/connector.h"
#include "tb/loop.h"
#include "tb/port.h"
#include "tb/relay.h"

typedef struct tb_gw tb_gw_t;
typedef struct tb_gw_listener tb_gw_listener_t;
typedef struct tb_gw_open tb_gw_open_t;

typedef struct tb_gw_auth {
	const char *user, *pass; /* NULL user: no authentication */
} tb_gw_auth_t;

/* A listener kind (`proto` of a [[listener]]). A TCP-served kind has
 * serve(); a kind that produces inbound flows some other way (a tunnel
 * client that dials out and receives its peer's Connects) has start()
 * instead and may leave `endpoint` out. */
typedef struct tb_gw_proto {
	const char *name;
	const char *alias; /* rog's name for the same thing, or NULL */
	/* Takes s; initial/n are bytes already read by a sniffer (or NULL/0). */
	void (*serve)(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *initial,
		      size_t n);
	/* Optional: read the kind's own keys of the [[listener]] table. */
	int (*init)(tb_gw_listener_t *l, const tb_conf_val_t *table, tb_conf_err_t *err);
	int (*start)(tb_gw_listener_t *l); /* optional; after every listener is open */
	void (*stop)(tb_gw_listener_t *l); /* optional; drain: no new flows */
	void (*free)(tb_gw_listener_t *l); /* optional; releases init()'s state */
	bool endpoint_optional;
} tb_gw_proto_t;

/* ---- for main.c ---- */
int tb_gw_new(tb_loop_t *loop, const tb_conf_t *conf, tb_gw_t **out, tb_conf_err_t *err);
/* Opens every listener; logs what it listens on. */
int tb_gw_start(tb_gw_t *gw);
/* SIGHUP: swap routers and data from a new config; flows keep running. */
int tb_gw_reload(tb_gw_t *gw, const tb_conf_t *conf, tb_conf_err_t *err);
/* SIGTERM: close listeners; calls done once no flow is left or after drain_ms. */
void tb_gw_drain(tb_gw_t *gw, uint32_t drain_ms, void (*done)(void *arg), void *arg);
void tb_gw_free(tb_gw_t *gw);
size_t tb_gw_flow_count(const tb_gw_t *gw);
/* A module that cannot go on (a tunnel client whose token was refused)
 * stops the process with an exit code; main returns tb_gw_exit_code(). */
void tb_gw_fatal(tb_gw_t *gw, int code);
int tb_gw_exit_code(const tb_gw_t *gw);
/* The `workers` setting: processes that share the listeners (SO_REUSEPORT). */
unsigned tb_gw_workers(const tb_gw_t *gw);

/* ---- for protocol servers ---- */
tb_gw_t *tb_gw_of(const tb_gw_listener_t *l);
const tb_connector_env_t *tb_gw_env(const tb_gw_t *gw);
void *tb_gw_listener_priv(const tb_gw_listener_t *l);
void tb_gw_listener_set_priv(tb_gw_listener_t *l, void *priv);
/* A listener made at run time (a tunnel server's per-token SOCKS5 port):
 * every flow goes to `fixed` (borrowed: it must outlive the listener),
 * without a router. Listens at once; *out is closed by tb_gw_listener_remove
 * or with the gateway. */
int tb_gw_listener_add(tb_gw_t *gw, const char *name, const char *proto, const tb_addr_t *bind,
		       const tb_gw_auth_t *auth, tb_connector_t *fixed, tb_gw_listener_t **out);
void tb_gw_listener_remove(tb_gw_listener_t *l);

tb_loop_t *tb_gw_loop(const tb_gw_listener_t *l);
const char *tb_gw_listener_name(const tb_gw_listener_t *l);
const tb_gw_auth_t *tb_gw_listener_auth(const tb_gw_listener_t *l);
/* The address the listener is bound to (UDP ASSOCIATE binds its relay there). */
void tb_gw_listener_addr(const tb_gw_listener_t *l, tb_addr_t *out);
uint32_t tb_gw_handshake_timeout_ms(const tb_gw_listener_t *l);
uint32_t tb_gw_udp_idle_ms(const tb_gw_listener_t *l);
/* The loop-guard id for HTTP (`Via: 1.1 <server_id>`). */
const char *tb_gw_server_id(const tb_gw_listener_t *l);

/* Routes t through the listener's router and opens it with the chosen
 * connector. cb runs later (never inside this call) with the stream or an
 * error: TB_EDENIED for `block`, TB_EHOSTUNREACH for names that do not
 * resolve, TB_ECONNREFUSED, TB_ENETUNREACH, TB_ETIMEDOUT... */
int tb_gw_open(tb_gw_listener_t *l, const tb_target_t *t, tb_connector_cb cb, void *arg, tb_gw_open_t **out);
void tb_gw_open_cancel(tb_gw_open_t *o);
/* Relays client <-> remote as a tracked flow; takes both streams.
 * client_eof: the client already sent EOF while the server owned it. */
int tb_gw_relay(tb_gw_listener_t *l, tb_stream_t *client, tb_stream_t *remote, bool client_eof);
/* A UDP association routed on its first packet's target (rog's rule). */
int tb_gw_udp_open(tb_gw_listener_t *l, const tb_target_t *first, tb_dgram_recv_cb cb, void *arg,
		   tb_dgram_t **out);
/* A handshaking session (or a UDP association) registers itself so a drain
 * waits for it and, at the drain deadline, ends it through cancel(arg).
 * The node is embedded in the session; release it on every free path. */
typedef struct tb_gw_session {
	struct tb_gw_session *prev, *next;
	void (*cancel)(void *arg);
	void *arg;
} tb_gw_session_t;

void tb_gw_session_hold(tb_gw_listener_t *l, tb_gw_session_t *s, void (*cancel)(void *arg), void *arg);
void tb_gw_session_release(tb_gw_listener_t *l, tb_gw_session_t *s);

#endif
