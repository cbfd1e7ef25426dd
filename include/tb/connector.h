/* connector.h: outbound methods (DESIGN.md idea 2) and datagram associations.
 *
 * A connector opens an outbound stream to a target: `direct` (rog: `tcp`)
 * resolves and dials, `block` refuses, tunnel clients (later modules) open a
 * flow on their tunnel. UDP uses the same shape with a tb_dgram_t: an
 * association that sends datagrams to targets and reports replies with the
 * address they came from. */
#ifndef TB_CONNECTOR_H
#define TB_CONNECTOR_H

#include "tb/addr.h"
#include "tb/conf.h"
#include "tb/loop.h"
#include "tb/port.h"
#include "tb/stream.h"

typedef struct tb_connector tb_connector_t;
typedef struct tb_connect_req tb_connect_req_t;
typedef struct tb_dgram tb_dgram_t;

/* s is owned by the callee on success; err is a TB_E* code on failure. The
 * request handle is gone when the callback runs. Never called from inside
 * connect() itself. */
typedef void (*tb_connector_cb)(void *arg, tb_stream_t *s, int err);

typedef struct tb_dgram_ops {
	/* Best effort; TB_EAGAIN when the datagram was dropped for lack of room. */
	int (*send)(tb_dgram_t *d, const tb_target_t *to, const void *data, size_t len);
	void (*close)(tb_dgram_t *d);
} tb_dgram_ops_t;

/* data is borrowed for the call; from is the replying address. */
typedef void (*tb_dgram_recv_cb)(void *arg, tb_dgram_t *d, const tb_target_t *from,
				 const uint8_t *data, size_t len);

struct tb_dgram {
	const tb_dgram_ops_t *ops;
	tb_dgram_recv_cb recv;
	void *arg;
};

typedef struct tb_connector_ops {
	const char *proto; /* the configuration's name, e.g. "direct" */
	int (*connect)(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg,
		       tb_connect_req_t **req);
	void (*cancel)(tb_connect_req_t *req); /* the callback will not run */
	/* TB_ENOTSUP when the connector carries no UDP. */
	int (*udp_open)(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out);
	void (*free)(tb_connector_t *c);
} tb_connector_ops_t;

/* What a connector may use from the gateway. */
struct tb_gw;

typedef struct tb_connector_env {
	struct tb_gw *gw; /* NULL outside a gateway (tests) */
	tb_loop_t *loop;
	tb_dns_t *dns;
	uint32_t connect_timeout_ms;
} tb_connector_env_t;

struct tb_connector {
	const tb_connector_ops_t *ops;
	char *name;
	const tb_connector_env_t *env;
};

/* Builds a connector from its [[connector]] table (proto already read).
 * TB_ENOENT when the proto is not compiled in. */
int tb_connector_new(const tb_connector_env_t *env, const char *name, const char *proto,
		     const tb_conf_val_t *table, tb_connector_t **out, tb_conf_err_t *err);
void tb_connector_free(tb_connector_t *c);

static inline int tb_connector_connect(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb,
				       void *arg, tb_connect_req_t **req)
{
	return c->ops->connect(c, t, cb, arg, req);
}
static inline void tb_connector_cancel(tb_connector_t *c, tb_connect_req_t *req) { c->ops->cancel(req); }
static inline int tb_connector_udp_open(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	return c->ops->udp_open(c, cb, arg, out);
}

#endif
