/* connector.c: the built-in connectors, `direct` (rog: `tcp`) and `block`.
 *
 * direct resolves a name through the port's DNS (never blocking the loop)
 * and dials the answers in order, IPv4 first, within one overall deadline.
 * Its UDP association sends from unconnected sockets, one per address family,
 * opened when first needed. */
#include <stdlib.h>
#include <string.h>

#include "tb/connector.h"
#include "tb/log.h"
#if ENABLE_LINKSOCKS
#include "tb/linksocks.h"
#endif
#if ENABLE_CONN_UPSTREAM
#include "tb/upstream.h"
#endif

/* ---- direct: TCP ---- */

struct tb_connect_req {
	tb_connector_t *c;
	tb_target_t target;
	tb_connector_cb cb;
	void *arg;
	tb_dns_query_t *dq;
	tb_tcp_connect_t *tc;
	tb_defer_t defer; /* block's refusal, delivered from the loop */
	tb_addr_t addrs[TB_DNS_MAX_ADDRS];
	size_t n, next;
	uint64_t deadline;
	int err;
};

static void req_done(tb_connect_req_t *q, tb_stream_t *s, int err)
{
	tb_connector_cb cb = q->cb;
	void *arg = q->arg;

	free(q);
	cb(arg, s, err);
}

static void direct_try_next(tb_connect_req_t *q);

static void direct_connected(void *arg, tb_stream_t *s, int err)
{
	tb_connect_req_t *q = arg;
	char buf[TB_ADDR_STRLEN];

	q->tc = NULL;
	if (err == 0) {
		req_done(q, s, 0);
		return;
	}
	tb_debug("direct: %s: %s", tb_addr_str(&q->addrs[q->next - 1], buf, sizeof(buf)), tb_strerror(err));
	/* Keep the most telling error: a refusal beats a timeout. */
	if (q->err == 0 || err == TB_ECONNREFUSED)
		q->err = err;
	direct_try_next(q);
}

static void direct_try_next(tb_connect_req_t *q)
{
	const tb_connector_env_t *env = q->c->env;
	uint64_t now = tb_loop_now(env->loop);
	int err;

	while (q->next < q->n) {
		tb_addr_t *a = &q->addrs[q->next++];
		if (now >= q->deadline) {
			q->err = TB_ETIMEDOUT;
			break;
		}
		a->port = q->target.port;
		err = tb_tcp_connect(env->loop, a, (uint32_t)(q->deadline - now), direct_connected, q, &q->tc);
		if (err == 0)
			return;
		q->err = err;
	}
	req_done(q, NULL, q->err ? q->err : TB_EHOSTUNREACH);
}

static void direct_resolved(void *arg, int err, const tb_addr_t *addrs, size_t n)
{
	tb_connect_req_t *q = arg;

	q->dq = NULL;
	if (err < 0) {
		req_done(q, NULL, err == TB_ETIMEDOUT ? TB_EHOSTUNREACH : err);
		return;
	}
	q->n = TB_MIN(n, TB_ARRAY_SIZE(q->addrs));
	memcpy(q->addrs, addrs, q->n * sizeof(addrs[0]));
	direct_try_next(q);
}

static tb_connect_req_t *req_new(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg)
{
	tb_connect_req_t *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->c = c;
	q->target = *t;
	q->cb = cb;
	q->arg = arg;
	return q;
}

static int direct_connect(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg,
			  tb_connect_req_t **out)
{
	tb_connect_req_t *q = req_new(c, t, cb, arg);
	int err;

	if (!q)
		return TB_ENOMEM;
	q->deadline = tb_loop_now(c->env->loop) + c->env->connect_timeout_ms;
	if (t->is_ip) {
		q->addrs[0] = t->addr;
		q->n = 1;
		err = tb_tcp_connect(c->env->loop, &q->addrs[0], c->env->connect_timeout_ms, direct_connected, q,
				     &q->tc);
		q->next = 1;
	} else if (!c->env->dns) {
		err = TB_EHOSTUNREACH; /* built without a resolver */
	} else {
		err = tb_dns_resolve(c->env->dns, t->host, 0, direct_resolved, q, &q->dq);
	}
	if (err < 0) {
		free(q);
		return err;
	}
	*out = q;
	return 0;
}

static void direct_cancel(tb_connect_req_t *q)
{
	if (!q)
		return;
	tb_dns_cancel(q->dq);
	tb_tcp_connect_cancel(q->tc);
	tb_defer_cancel(q->c->env->loop, &q->defer);
	free(q);
}

/* ---- direct: UDP ---- */

#define UDP_PENDING_MAX 4       /* datagrams held while their name resolves */
#define UDP_NAME_CACHE 8

typedef struct udp_pending {
	struct udp_pending *next;
	size_t len;
	uint8_t data[];
} udp_pending_t;

typedef struct udp_name {
	char host[TB_HOST_MAX + 1];
	tb_addr_t addr;           /* family 0 while resolving */
	tb_dns_query_t *dq;
	udp_pending_t *pending;
	unsigned npending;
	struct direct_dgram *owner;
} udp_name_t;

typedef struct direct_dgram {
	tb_dgram_t d;
	tb_connector_t *c;
	tb_udp_t *sock4, *sock6;
	udp_name_t names[UDP_NAME_CACHE];
	unsigned next_slot;
} direct_dgram_t;

static void dgram_recv(void *arg, tb_udp_t *u, const tb_addr_t *from, const uint8_t *data, size_t len)
{
	direct_dgram_t *g = arg;
	tb_target_t t;

	tb_target_from_addr(&t, from);
	g->d.recv(g->d.arg, &g->d, &t, data, len);
}

static int dgram_send_ip(direct_dgram_t *g, const tb_addr_t *to, const void *data, size_t len)
{
	tb_udp_t **sock = to->family == TB_AF_INET ? &g->sock4 : &g->sock6;
	int err;

	if (!*sock) {
		tb_addr_t any = {.family = to->family};
		if ((err = tb_udp_open(g->c->env->loop, &any, dgram_recv, g, sock)) < 0)
			return err;
	}
	return tb_udp_send(*sock, to, data, len);
}

static void name_flush(udp_name_t *n)
{
	while (n->pending) {
		udp_pending_t *p = n->pending;
		n->pending = p->next;
		if (n->addr.family)
			dgram_send_ip(n->owner, &n->addr, p->data, p->len);
		free(p);
	}
	n->npending = 0;
}

static void name_resolved(void *arg, int err, const tb_addr_t *addrs, size_t nn)
{
	udp_name_t *n = arg;
	uint16_t port = n->addr.port;

	n->dq = NULL;
	if (err == 0 && nn > 0) {
		n->addr = addrs[0];
		n->addr.port = port;
	} else {
		n->host[0] = '\0'; /* forget the failure: the next datagram retries */
	}
	name_flush(n);
}

static int dgram_send(tb_dgram_t *d, const tb_target_t *to, const void *data, size_t len)
{
	direct_dgram_t *g = (direct_dgram_t *)d;
	udp_name_t *n = NULL;

	if (to->is_ip)
		return dgram_send_ip(g, &to->addr, data, len);
	for (unsigned i = 0; i < UDP_NAME_CACHE; i++)
		if (strcmp(g->names[i].host, to->host) == 0)
			n = &g->names[i];
	if (n && n->addr.family) {
		tb_addr_t a = n->addr;
		a.port = to->port;
		return dgram_send_ip(g, &a, data, len);
	}
	if (!n) {
		n = &g->names[g->next_slot++ % UDP_NAME_CACHE];
		if (n->dq)
			tb_dns_cancel(n->dq);
		n->dq = NULL;
		n->addr.family = 0;
		name_flush(n); /* drops what the evicted name still held */
		memcpy(n->host, to->host, sizeof(n->host));
		n->owner = g;
		n->addr.port = to->port;
		if (!g->c->env->dns || tb_dns_resolve(g->c->env->dns, n->host, 0, name_resolved, n, &n->dq) < 0) {
			n->host[0] = '\0';
			return TB_EHOSTUNREACH;
		}
	}
	if (n->npending >= UDP_PENDING_MAX)
		return TB_EAGAIN;
	udp_pending_t *p = malloc(sizeof(*p) + len);
	if (!p)
		return TB_ENOMEM;
	p->len = len;
	p->next = NULL;
	memcpy(p->data, data, len);
	udp_pending_t **tail = &n->pending;
	while (*tail)
		tail = &(*tail)->next;
	*tail = p; /* keep the client's order */
	n->npending++;
	return 0;
}

static void dgram_close(tb_dgram_t *d)
{
	direct_dgram_t *g = (direct_dgram_t *)d;

	for (unsigned i = 0; i < UDP_NAME_CACHE; i++) {
		tb_dns_cancel(g->names[i].dq);
		g->names[i].addr.family = 0;
		name_flush(&g->names[i]);
	}
	tb_udp_close(g->sock4);
	tb_udp_close(g->sock6);
	free(g);
}

static const tb_dgram_ops_t direct_dgram_ops = {dgram_send, dgram_close};

static int direct_udp_open(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	direct_dgram_t *g = calloc(1, sizeof(*g));

	if (!g)
		return TB_ENOMEM;
	g->d.ops = &direct_dgram_ops;
	g->d.recv = cb;
	g->d.arg = arg;
	g->c = c;
	*out = &g->d;
	return 0;
}

static void connector_free_plain(tb_connector_t *c)
{
	free(c->name);
	free(c);
}

static const tb_connector_ops_t direct_ops = {
	.proto = "direct",
	.connect = direct_connect,
	.cancel = direct_cancel,
	.udp_open = direct_udp_open,
	.free = connector_free_plain,
};

/* ---- block ---- */

static void block_refuse(tb_loop_t *loop, void *arg)
{
	req_done(arg, NULL, TB_EDENIED);
}

static int block_connect(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg,
			 tb_connect_req_t **out)
{
	tb_connect_req_t *q = req_new(c, t, cb, arg);

	if (!q)
		return TB_ENOMEM;
	tb_defer_init(&q->defer, block_refuse, q);
	tb_defer(c->env->loop, &q->defer);
	*out = q;
	return 0;
}

static int block_udp_open(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	return TB_EDENIED;
}

static const tb_connector_ops_t block_ops = {
	.proto = "block",
	.connect = block_connect,
	.cancel = direct_cancel,
	.udp_open = block_udp_open,
	.free = connector_free_plain,
};

/* ---- registry ---- */

int tb_connector_new(const tb_connector_env_t *env, const char *name, const char *proto,
		     const tb_conf_val_t *table, tb_connector_t **out, tb_conf_err_t *err)
{
	const tb_connector_ops_t *ops = NULL;
	tb_connector_t *c;

	if (ENABLE_CONN_DIRECT && (strcmp(proto, "direct") == 0 || strcmp(proto, "tcp") == 0))
		ops = &direct_ops;
	else if (ENABLE_CONN_BLOCK && strcmp(proto, "block") == 0)
		ops = &block_ops;
#if ENABLE_CONN_UPSTREAM
	else if (strcmp(proto, "socks5") == 0 || strcmp(proto, "http") == 0)
		return tb_upstream_connector_new(env, name, proto, table, out, err);
#endif
#if ENABLE_LINKSOCKS
	else if (strcmp(proto, "linksocks") == 0)
		return tb_linksocks_connector_new(env, name, table, out, err);
#endif
	if (!ops)
		return TB_ENOENT;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(name))) {
		free(c);
		return TB_ENOMEM;
	}
	c->ops = ops;
	c->env = env;
	*out = c;
	return 0;
}

void tb_connector_free(tb_connector_t *c)
{
	if (c)
		c->ops->free(c);
}
