/* linksocks.h: LinkSocks (SOCKS5 over WebSocket), spec/linksocks.md.
 *
 * The module has three layers:
 * - the channel multiplexer (tb_ls_mux_t): one per WebSocket connection, on
 *   either side. It turns protocol messages into channels, and a TCP channel
 *   is a tb_stream_t, so a relay joins it to a socket like any other stream.
 *   It never drops a byte (§11): a full WebSocket pauses the channels'
 *   sources, a channel whose sink is full pauses the WebSocket's reading.
 * - the roles: the server (a gateway listener kind, `proto = "linksocks"`),
 *   the forward client (a connector, `proto = "linksocks"`), the provider
 *   (a listener kind that dials out, `proto = "linksocks-provider"`).
 * - the drop-in command line, `tunnelbox linksocks server|client|provider|
 *   connector|version` with the reference's flags (§7).
 *
 * Head-of-line behaviour: all channels of one WebSocket share its TCP
 * connection. When one channel's local sink is full, reading the WebSocket
 * stops for every channel on it until that sink drains; a channel that
 * stays stuck for 30 s is closed so the others move again. `-T N` spreads
 * channels over N WebSockets to limit this. */
#ifndef TB_LINKSOCKS_H
#define TB_LINKSOCKS_H

#include "tb/connector.h"
#include "tb/gateway.h"
#include "tb/linksocks_msg.h"

/* ---- the multiplexer ---- */

typedef struct tb_ls_mux tb_ls_mux_t;

/* batch_max's ceiling: far below the peers' 32 MiB message limit. */
#define TB_LS_BATCH_MAX (4u << 20)
/* compress_min's default where a role configures it: the reference's. */
#define TB_LS_COMPRESS_MIN_DEFAULT (512u * 1024u)

/* The transport under a mux: one protocol message per call. send returns 0,
 * TB_ENOBUFS (taken; the transport is over its limit: the mux then waits for
 * tb_ls_mux_drained) or an error. */
typedef struct tb_ls_transport {
	int (*send)(void *t, const void *hdr, size_t hlen, const void *body, size_t blen);
	void (*pause)(void *t);
	void (*resume)(void *t);
} tb_ls_transport_t;

typedef struct tb_ls_mux_opts {
	bool egress;           /* accept Connect from the peer */
	tb_gw_listener_t *l;   /* egress: where Connects go */
	uint32_t connect_wait_ms; /* opener: ConnectResponse wait (15 s) */
	uint32_t stall_ms;     /* a channel pausing the WebSocket longer is closed (30 s) */
	size_t inflate_cap;    /* per compressed message (32 MiB) */
	size_t batch_max;      /* largest Data message sent (0: 1 MiB, as the reference's B) */
	size_t compress_min;   /* gzip Data of at least this many bytes (0: never) */
	int compress_level;    /* 1..9, else zlib's default */
	/* Optional: Data, ConnectResponse and Disconnect for a channel this mux
	 * does not own (a server relaying agent-mode channels, §4.4). */
	void (*foreign)(void *ctx, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len);
} tb_ls_mux_opts_t;

/* Reads batch_max, compress_threshold and compress_level from a role's
 * table into o (defaults: 1 MiB, TB_LS_COMPRESS_MIN_DEFAULT, zlib's). */
int tb_ls_mux_opts_conf(tb_ls_mux_opts_t *o, const tb_conf_val_t *t, tb_conf_err_t *err);

/* Messages the mux does not handle itself (Auth, AuthResponse, Connector,
 * ConnectorResponse, Log, Partners; Connect when not egress) go here. */
typedef void (*tb_ls_control_cb)(void *ctx, tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw,
				 size_t len);

int tb_ls_mux_new(tb_loop_t *loop, const tb_ls_transport_t *tp, void *t, const tb_ls_mux_opts_t *o,
		  tb_ls_control_cb control, void *ctx, tb_ls_mux_t **out);
/* The transport died: every channel fails (openers get TB_ENETUNREACH,
 * open channels on_close(TB_ECONNRESET)) and the mux is freed. */
void tb_ls_mux_free(tb_ls_mux_t *m, int err);
/* One received protocol message. */
void tb_ls_mux_input(tb_ls_mux_t *m, const uint8_t *msg, size_t len);
/* The transport went below its limit after a TB_ENOBUFS. */
void tb_ls_mux_drained(tb_ls_mux_t *m);
/* Sends a control message (Auth, Connector, Log...). */
int tb_ls_mux_send(tb_ls_mux_t *m, const tb_ls_msg_t *msg);
size_t tb_ls_mux_channels(const tb_ls_mux_t *m);

/* Opener side: Connect for t; cb gets the channel stream on ConnectResponse
 * success (or at once with fast_open), TB_EHOSTUNREACH on a refusal or the
 * wait's end (SOCKS REP 4, as the reference), TB_ENETUNREACH when the
 * WebSocket dies first. *req cancels. */
typedef struct tb_ls_open tb_ls_open_t;
int tb_ls_mux_open(tb_ls_mux_t *m, const tb_target_t *t, bool fast_open, tb_connector_cb cb, void *arg,
		   tb_ls_open_t **req);
void tb_ls_open_cancel(tb_ls_open_t *req);
/* Opener side of UDP: an association over a channel (Connect{udp}). */
int tb_ls_mux_udp(tb_ls_mux_t *m, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out);

/* Flows waiting for a mux (a provider, or a client's WebSocket) to become
 * available: opened as soon as pick() returns one, refused with
 * TB_ENETUNREACH (SOCKS REP 3, §5) after wait_ms. Shared by the server's
 * provider pools and the forward client. */
typedef struct tb_ls_wait tb_ls_wait_t;
typedef struct tb_ls_waitq {
	tb_loop_t *loop;
	tb_ls_mux_t *(*pick)(void *ctx); /* round-robin choice, NULL when none */
	void *ctx;
	uint32_t wait_ms;
	bool fast_open;
	tb_ls_wait_t *head;
} tb_ls_waitq_t;

/* A connector's connect(): never answers inside the call. */
int tb_ls_waitq_open(tb_ls_waitq_t *q, const tb_target_t *t, tb_connector_cb cb, void *arg, tb_connect_req_t **req);
void tb_ls_waitq_cancel(tb_connect_req_t *req);
/* pick() may now succeed: retry the waiting flows from the loop. */
void tb_ls_waitq_kick(tb_ls_waitq_t *q);
/* Drops every waiting flow without calling back (teardown). */
void tb_ls_waitq_clear(tb_ls_waitq_t *q);

/* The transport of a mux over a tb_ws_t (t is the tb_ws_t *). */
extern const tb_ls_transport_t tb_ls_ws_transport;

/* ---- roles ---- */
#if ENABLE_LINKSOCKS
extern const tb_gw_proto_t tb_linksocks_server_proto;
extern const tb_gw_proto_t tb_linksocks_provider_proto;
#endif
int tb_linksocks_connector_new(const tb_connector_env_t *env, const char *name, const tb_conf_val_t *table,
			       tb_connector_t **out, tb_conf_err_t *err);

/* `tunnelbox linksocks ...` and a `linksocks` symlink. */
int tb_linksocks_main(int argc, char **argv);

#endif
