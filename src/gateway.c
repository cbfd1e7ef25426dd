/* gateway.c: listeners, connectors and routers from the configuration.
 *
 * The configuration has rog's shape (spec/rogv2.md §6): [[listener]],
 * [[connector]], [[router]], [[data]]. Each listener's accepted streams go
 * to its protocol's serve function; protocol servers come back here to
 * route-and-connect (tb_gw_open), to relay (tb_gw_relay) and for UDP
 * (tb_gw_udp_open). Routers and data can be swapped on SIGHUP: listeners
 * name their router and look it up for every new flow, so a swap never
 * touches a running flow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/gateway.h"
#include "tb/log.h"
#include "tb/router.h"
#if ENABLE_GW_SOCKS5
#include "tb/socks5.h"
#endif
#if ENABLE_GW_HTTP
#include "tb/http.h"
#endif
#if ENABLE_LINKSOCKS
#include "tb/linksocks.h"
#endif
#if ENABLE_TUN2SOCKS
#include "tb/tun2socks.h"
#endif

struct tb_gw_listener {
	tb_gw_t *gw;
	tb_gw_listener_t *next;
	char *name, *router;
	const tb_gw_proto_t *proto;
	void *priv;             /* the proto's own state */
	tb_connector_t *fixed;  /* run-time listeners: no router */
	bool has_bind;
	tb_addr_t bind;
	tb_gw_auth_t auth;
	char *user_buf, *pass_buf;
	tb_tcp_listener_t *tcp;
};

struct tb_gw {
	tb_loop_t *loop;
	tb_dns_t *dns;
	tb_connector_env_t env;
	tb_routing_t *routing;
	tb_connector_t **connectors;
	size_t nconnectors;
	tb_gw_listener_t *listeners;
	struct rule_dns *rule_dns; /* resolvers named by rules' `dns` keys */
	char server_id[40];
	uint32_t handshake_ms, idle_ms, udp_idle_ms;
	size_t flows, sessions, max_flows;
	uint32_t workers;
	int exit_code;
	struct flow *flow_list;        /* running relays, for the drain deadline */
	tb_gw_session_t *session_list; /* handshakes and UDP associations */
	/* drain */
	bool draining;
	tb_timer_t drain_timer;
	tb_defer_t drain_check;
	void (*drain_done)(void *arg);
	void *drain_arg;
};

/* A running relay, listed so a drain deadline can end it. */
struct flow {
	struct flow *prev, *next;
	tb_gw_listener_t *l;
	tb_relay_t *relay;
};

/* A route rule's own plain-DNS server ("ip:port"), made on first use. */
struct rule_dns {
	struct rule_dns *next;
	char *servers;
	tb_dns_t *dns;
};

struct tb_gw_open {
	tb_gw_listener_t *l;
	tb_target_t target;
	tb_connector_cb cb;
	void *arg;
	tb_dns_query_t *dq;
	tb_connector_t *conn;
	tb_connect_req_t *req;
};

static tb_connector_t *gw_connector(const tb_gw_t *gw, const char *name)
{
	for (size_t i = 0; i < gw->nconnectors; i++)
		if (strcmp(gw->connectors[i]->name, name) == 0)
			return gw->connectors[i];
	return NULL;
}

/* ---- configuration ---- */

static int get_u32(const tb_conf_val_t *t, const char *key, uint32_t *out, int64_t max, tb_conf_err_t *err)
{
	int64_t v;
	int rc = tb_conf_get_int(t, key, &v, err);

	if (rc == TB_ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (v < 0 || v > max) {
		tb_conf_set_err(err, tb_conf_get(t, key), "must be between 0 and %lld", (long long)max);
		return TB_EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

#if ENABLE_GW_MIXED
static void mixed_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *initial,
			size_t n);
#endif

#if ENABLE_GW_SOCKS5
static const tb_gw_proto_t socks5_proto = {.name = "socks5", .serve = tb_socks5_serve};
#endif
#if ENABLE_GW_HTTP
static const tb_gw_proto_t http_proto = {.name = "http", .serve = tb_http_serve};
#endif
#if ENABLE_GW_MIXED
static const tb_gw_proto_t mixed_proto = {.name = "mixed", .alias = "htss5", .serve = mixed_serve};
#endif

/* Every listener kind compiled in; protocol modules bring their own. */
static const tb_gw_proto_t *const protos[] = {
#if ENABLE_GW_SOCKS5
	&socks5_proto,
#endif
#if ENABLE_GW_HTTP
	&http_proto,
#endif
#if ENABLE_GW_MIXED
	&mixed_proto,
#endif
#if ENABLE_LINKSOCKS
	&tb_linksocks_server_proto,
	&tb_linksocks_provider_proto,
#endif
#if ENABLE_TUN2SOCKS
	&tb_tun2socks_proto,
#endif
	NULL,
};

static bool proto_named(const tb_gw_proto_t *p, const char *name)
{
	return strcmp(p->name, name) == 0 || (p->alias && strcmp(p->alias, name) == 0);
}

static const tb_gw_proto_t *find_proto(const char *name)
{
	for (size_t i = 0; protos[i]; i++)
		if (proto_named(protos[i], name))
			return protos[i];
	return NULL;
}

static int load_auth(tb_gw_listener_t *l, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	tb_conf_val_t *a = tb_conf_get(t, "auth");
	const char *user, *pass;
	int rc;

	if (!a)
		return 0;
	if (a->type != TB_CONF_TABLE) {
		tb_conf_set_err(err, a, "expected a table { user = \"...\", pass = \"...\" }");
		return TB_EINVAL;
	}
	if ((rc = tb_conf_need_str(a, "user", &user, err)) < 0 || (rc = tb_conf_need_str(a, "pass", &pass, err)) < 0)
		return rc;
	/* RFC 1929: ULEN and PLEN are one byte, at least 1. */
	size_t ulen = strlen(user), plen = strlen(pass);
	if (ulen < 1 || ulen > 255 || plen < 1 || plen > 255) {
		tb_conf_set_err(err, a, "user and pass must be 1 to 255 bytes");
		return TB_EINVAL;
	}
	/* The listener outlives the parsed configuration: keep copies. */
	l->auth.user = l->user_buf = strdup(user);
	l->auth.pass = l->pass_buf = strdup(pass);
	return l->user_buf && l->pass_buf ? 0 : TB_ENOMEM;
}

static int load_listener(tb_gw_t *gw, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	const char *name, *proto, *endpoint, *router;
	tb_gw_listener_t *l;
	int rc;

	if (t->type != TB_CONF_TABLE) {
		tb_conf_set_err(err, t, "expected a table");
		return TB_EINVAL;
	}
	const tb_gw_proto_t *kind;

	if ((rc = tb_conf_need_str(t, "name", &name, err)) < 0 ||
	    (rc = tb_conf_need_str(t, "proto", &proto, err)) < 0 ||
	    (rc = tb_conf_need_str(t, "router", &router, err)) < 0)
		return rc;
	if (!(kind = find_proto(proto))) {
		tb_conf_set_err(err, tb_conf_get(t, "proto"), "unknown or not compiled-in listener proto '%s'",
				proto);
		return TB_EINVAL;
	}
	endpoint = NULL;
	rc = kind->endpoint_optional ? tb_conf_get_str(t, "endpoint", &endpoint, err)
				     : tb_conf_need_str(t, "endpoint", &endpoint, err);
	if (rc < 0 && rc != TB_ENOENT)
		return rc;
	/* rog's user/pw on a socks5 or http listener are parsed and unused. */
	tb_conf_get(t, "user");
	tb_conf_get(t, "pw");
	for (l = gw->listeners; l; l = l->next) {
		if (strcmp(l->name, name) == 0) {
			tb_conf_set_err(err, tb_conf_get(t, "name"), "duplicate listener name '%s'", name);
			return TB_EINVAL;
		}
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return TB_ENOMEM;
	l->gw = gw;
	l->next = gw->listeners;
	gw->listeners = l;
	if (!(l->name = strdup(name)) || !(l->router = strdup(router)))
		return TB_ENOMEM;
	l->proto = kind;
	if (endpoint && tb_addr_parse(endpoint, &l->bind, false) < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "endpoint"), "expected ip:port, got '%s'", endpoint);
		return TB_EINVAL;
	}
	l->has_bind = endpoint != NULL;
	if ((rc = load_auth(l, t, err)) < 0)
		return rc;
	return kind->init ? kind->init(l, t, err) : 0;
}

static int load_connector(tb_gw_t *gw, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	const char *name, *proto;
	tb_connector_t *c, **grown;
	int rc;

	if (t->type != TB_CONF_TABLE) {
		tb_conf_set_err(err, t, "expected a table");
		return TB_EINVAL;
	}
	if ((rc = tb_conf_need_str(t, "name", &name, err)) < 0 ||
	    (rc = tb_conf_need_str(t, "proto", &proto, err)) < 0)
		return rc;
	if (gw_connector(gw, name)) {
		tb_conf_set_err(err, tb_conf_get(t, "name"), "duplicate connector name '%s'", name);
		return TB_EINVAL;
	}
	rc = tb_connector_new(&gw->env, name, proto, t, &c, err);
	if (rc == TB_ENOENT) {
		tb_conf_set_err(err, tb_conf_get(t, "proto"), "unknown or not compiled-in connector proto '%s'",
				proto);
		return TB_EINVAL;
	}
	if (rc < 0)
		return rc;
	grown = realloc(gw->connectors, (gw->nconnectors + 1) * sizeof(*grown));
	if (!grown) {
		tb_connector_free(c);
		return TB_ENOMEM;
	}
	gw->connectors = grown;
	gw->connectors[gw->nconnectors++] = c;
	return 0;
}

static int load_array(tb_gw_t *gw, const tb_conf_t *conf, const char *key, bool required,
		      int (*fn)(tb_gw_t *, const tb_conf_val_t *, tb_conf_err_t *), tb_conf_err_t *err)
{
	tb_conf_val_t *a = tb_conf_get(conf->root, key);
	int rc;

	if (!a) {
		if (!required)
			return 0;
		tb_conf_set_err(err, conf->root, "missing [[%s]]", key);
		snprintf(err->key, sizeof(err->key), "%s", key);
		return TB_EINVAL;
	}
	if (a->type != TB_CONF_ARRAY) {
		tb_conf_set_err(err, a, "expected an array of tables ([[%s]])", key);
		return TB_EINVAL;
	}
	for (tb_conf_val_t *v = a->u.list.first; v; v = v->next)
		if ((rc = fn(gw, v, err)) < 0)
			return rc;
	return 0;
}

struct check_ctx {
	const tb_gw_t *gw;
	tb_conf_err_t *err;
};

static int check_connector_ref(void *arg, const char *name, const tb_conf_val_t *where)
{
	struct check_ctx *cc = arg;

	if (gw_connector(cc->gw, name))
		return 0;
	/* where is the router's own copy, not a node of the parsed tree, so
	 * the error is filled by hand rather than by tb_conf_set_err. */
	memset(cc->err, 0, sizeof(*cc->err));
	cc->err->line = where->line;
	cc->err->col = where->col;
	snprintf(cc->err->key, sizeof(cc->err->key), "%s", where->key ? where->key : "");
	snprintf(cc->err->msg, sizeof(cc->err->msg), "no [[connector]] named '%s'", name);
	return TB_EINVAL;
}

/* Every listener's router exists and every router names real connectors. */
static int check_refs(const tb_gw_t *gw, const tb_routing_t *routing, const tb_conf_t *conf, tb_conf_err_t *err)
{
	tb_conf_val_t *ls = tb_conf_get(conf->root, "listener");
	struct check_ctx cc = {gw, err};
	int rc;

	for (tb_conf_val_t *v = ls ? ls->u.list.first : NULL; v; v = v->next) {
		tb_conf_val_t *r = tb_conf_get(v, "router");
		const tb_router_t *router;
		if (!r || r->type != TB_CONF_STRING)
			continue;
		router = tb_routing_find(routing, r->u.str.s);
		if (!router) {
			tb_conf_set_err(err, r, "no [[router]] named '%s'", r->u.str.s);
			return TB_EINVAL;
		}
		if ((rc = tb_router_foreach_connector(router, check_connector_ref, &cc)) < 0)
			return rc;
	}
	return 0;
}

static void warn_unused(void *arg, const tb_conf_val_t *v, const char *path)
{
	const tb_conf_t *conf = arg;

	tb_warn("%s:%d:%d: %s: unknown key, ignored", conf->file ? conf->file : "config", v->line, v->col, path);
}

static int load_globals(tb_gw_t *gw, const tb_conf_t *conf, tb_conf_err_t *err)
{
	const tb_conf_val_t *root = conf->root;
	const char *sid = NULL, *dns = NULL;
	uint32_t idle_s = gw->idle_ms / 1000, udp_s = gw->udp_idle_ms / 1000, flows = (uint32_t)gw->max_flows;
	int rc;

	if ((rc = tb_conf_get_str(root, "server_id", &sid, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (sid)
		snprintf(gw->server_id, sizeof(gw->server_id), "%s", sid);
	if ((rc = tb_conf_get_str(root, "dns", &dns, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if ((rc = get_u32(root, "connect_timeout_ms", &gw->env.connect_timeout_ms, 3600000, err)) < 0 ||
	    (rc = get_u32(root, "handshake_timeout_ms", &gw->handshake_ms, 3600000, err)) < 0 ||
	    (rc = get_u32(root, "idle_timeout_s", &idle_s, 86400 * 7, err)) < 0 ||
	    (rc = get_u32(root, "udp_idle_timeout_s", &udp_s, 86400, err)) < 0 ||
	    (rc = get_u32(root, "max_flows", &flows, 1 << 20, err)) < 0 ||
	    (rc = get_u32(root, "workers", &gw->workers, 64, err)) < 0)
		return rc;
	if (gw->workers == 0)
		gw->workers = 1;
	gw->idle_ms = idle_s * 1000;
	gw->udp_idle_ms = udp_s * 1000;
	gw->max_flows = flows;
	if (tb_conf_get(root, "buffer_size"))
		tb_info("buffer_size: tunnelbox bounds every queue itself; the rog pool option is ignored");
	if (tb_conf_get(root, "reverse_server"))
		tb_warn("reverse_server is rog-only and not supported; ignored");
	/* The port's own settings ([port.lwip]) come before its resolver and listeners. */
	if ((rc = tb_port_configure(tb_conf_get(root, "port"), err)) < 0)
		return rc;
	if ((rc = tb_dns_new(gw->loop, dns, &gw->dns)) < 0) {
		tb_conf_set_err(err, tb_conf_get(root, "dns"), "cannot set up the resolver");
		return rc;
	}
	return 0;
}

static void gw_make_server_id(tb_gw_t *gw)
{
	uint8_t u[16];

	/* rog's default: a random UUID v4. */
	tb_port_random(u, sizeof(u));
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	snprintf(gw->server_id, sizeof(gw->server_id),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
		 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

int tb_gw_new(tb_loop_t *loop, const tb_conf_t *conf, tb_gw_t **out, tb_conf_err_t *err)
{
	tb_gw_t *gw = calloc(1, sizeof(*gw));
	int rc;

	if (!gw)
		return TB_ENOMEM;
	gw->loop = loop;
	gw->env.gw = gw;
	gw->env.loop = loop;
	gw->env.connect_timeout_ms = CONFIG_CONNECT_TIMEOUT_MS;
	gw->handshake_ms = CONFIG_HANDSHAKE_TIMEOUT_MS;
	gw->idle_ms = CONFIG_IDLE_TIMEOUT_S * 1000u;
	gw->udp_idle_ms = CONFIG_UDP_IDLE_TIMEOUT_S * 1000u;
	gw->max_flows = CONFIG_MAX_FLOWS;
	gw_make_server_id(gw);
	memset(err, 0, sizeof(*err));
	if ((rc = load_globals(gw, conf, err)) < 0)
		goto fail;
	gw->env.dns = gw->dns;
	if ((rc = load_array(gw, conf, "connector", true, load_connector, err)) < 0 ||
	    (rc = tb_routing_load(conf, &gw->routing, err)) < 0 ||
	    (rc = load_array(gw, conf, "listener", true, load_listener, err)) < 0 ||
	    (rc = check_refs(gw, gw->routing, conf, err)) < 0)
		goto fail;
	tb_conf_foreach_unused(conf->root, warn_unused, (void *)conf);
	*out = gw;
	return 0;
fail:
	tb_gw_free(gw);
	return rc;
}

int tb_gw_reload(tb_gw_t *gw, const tb_conf_t *conf, tb_conf_err_t *err)
{
	tb_routing_t *routing;
	int rc;

	memset(err, 0, sizeof(*err));
	if ((rc = tb_routing_load(conf, &routing, err)) < 0)
		return rc;
	for (tb_gw_listener_t *l = gw->listeners; l; l = l->next) {
		if (!l->fixed && !tb_routing_find(routing, l->router)) {
			snprintf(err->msg, sizeof(err->msg), "listener '%s' needs router '%s', which is gone",
				 l->name, l->router);
			tb_routing_free(routing);
			return TB_EINVAL;
		}
	}
	if ((rc = check_refs(gw, routing, conf, err)) < 0) {
		tb_routing_free(routing);
		return rc;
	}
	tb_routing_free(gw->routing);
	gw->routing = routing;
	tb_info("reloaded routers and data; %zu flows kept", gw->flows);
	return 0;
}

/* ---- listening ---- */

#if ENABLE_GW_MIXED
/* mixed (rog: htss5): SOCKS5 starts with byte 0x05; anything else is HTTP. */
typedef struct sniff {
	tb_gw_listener_t *l;
	tb_gw_session_t gs;
	tb_stream_t *s;
	tb_addr_t peer;
	tb_timer_t timer;
} sniff_t;

static void sniff_end(sniff_t *sn, bool close_stream)
{
	tb_timer_stop(tb_gw_loop(sn->l), &sn->timer);
	if (close_stream)
		tb_stream_close(sn->s);
	tb_gw_session_release(sn->l, &sn->gs);
	free(sn);
}

static void sniff_cancel(void *arg)
{
	sniff_end(arg, true);
}

static void sniff_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	sniff_t *sn = ctx;
	tb_gw_listener_t *l = sn->l;
	tb_addr_t peer = sn->peer;

	tb_stream_set_handler(s, NULL, NULL);
	sniff_end(sn, false);
	if (d[0] == 0x05)
		tb_socks5_serve(l, s, &peer, d, n);
	else
		tb_http_serve(l, s, &peer, d, n);
}

static void sniff_eof(void *ctx, tb_stream_t *s)
{
	sniff_end(ctx, true);
}

static void sniff_close(void *ctx, tb_stream_t *s, int err)
{
	sniff_end(ctx, true);
}

static void sniff_timeout(tb_loop_t *loop, void *arg)
{
	sniff_end(arg, true);
}

static const tb_stream_handler_t sniff_handler = {sniff_data, NULL, sniff_eof, sniff_close};

static void mixed_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *initial,
			size_t n)
{
	sniff_t *sn = calloc(1, sizeof(*sn));

	if (!sn) {
		tb_stream_close(s);
		return;
	}
	sn->l = l;
	sn->s = s;
	sn->peer = *peer;
	tb_gw_session_hold(l, &sn->gs, sniff_cancel, sn);
	tb_timer_init(&sn->timer, sniff_timeout, sn);
	tb_timer_start(tb_gw_loop(l), &sn->timer, l->gw->handshake_ms);
	tb_stream_set_handler(s, &sniff_handler, sn);
}
#endif

static void on_accept(void *arg, tb_stream_t *s, const tb_addr_t *peer)
{
	tb_gw_listener_t *l = arg;
	tb_gw_t *gw = l->gw;

	if (gw->flows + gw->sessions >= gw->max_flows) {
		tb_warn("listener %s: %zu flows, the limit; refusing a connection", l->name, gw->flows);
		tb_stream_close(s);
		return;
	}
	l->proto->serve(l, s, peer, NULL, 0);
}

static int listener_open(tb_gw_listener_t *l)
{
	/* N workers share each listening port; the kernel spreads
	 * connections over them (DESIGN.md idea 4). */
	tb_tcp_listen_opts_t o = {.reuseport = l->gw->workers > 1};
	char buf[TB_ADDR_STRLEN];
	int rc;

	if (!l->proto->serve || !l->has_bind)
		return 0;
	rc = tb_tcp_listen(l->gw->loop, &l->bind, &o, on_accept, l, &l->tcp);
	if (rc < 0) {
		tb_err("listener %s: cannot listen on %s: %s", l->name, tb_addr_str(&l->bind, buf, sizeof(buf)),
		       tb_strerror(rc));
		return rc;
	}
	tb_tcp_listener_addr(l->tcp, &l->bind);
	tb_info("listener %s (%s) on %s, %s %s%s", l->name, l->proto->name, tb_addr_str(&l->bind, buf, sizeof(buf)),
		l->fixed ? "connector" : "router", l->fixed ? l->fixed->name : l->router,
		l->auth.user ? ", with auth" : "");
	return 0;
}

int tb_gw_start(tb_gw_t *gw)
{
	int rc;

	for (tb_gw_listener_t *l = gw->listeners; l; l = l->next)
		if ((rc = listener_open(l)) < 0)
			return rc;
	for (tb_gw_listener_t *l = gw->listeners; l; l = l->next)
		if (l->proto->start && (rc = l->proto->start(l)) < 0)
			return rc;
	return 0;
}

static void listener_free(tb_gw_listener_t *l)
{
	tb_tcp_listener_close(l->tcp);
	if (l->proto && l->proto->free)
		l->proto->free(l);
	free(l->name);
	free(l->router);
	free(l->user_buf);
	free(l->pass_buf);
	free(l);
}

int tb_gw_listener_add(tb_gw_t *gw, const char *name, const char *proto, const tb_addr_t *bind,
		       const tb_gw_auth_t *auth, tb_connector_t *fixed, tb_gw_listener_t **out)
{
	tb_gw_listener_t *l = calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return TB_ENOMEM;
	l->gw = gw;
	l->proto = find_proto(proto);
	l->fixed = fixed;
	l->bind = *bind;
	l->has_bind = true;
	l->name = strdup(name);
	l->router = strdup("");
	if (auth && auth->user) {
		l->auth.user = l->user_buf = strdup(auth->user);
		l->auth.pass = l->pass_buf = strdup(auth->pass ? auth->pass : "");
	}
	if (!l->proto || !l->proto->serve || !l->name || !l->router || (auth && auth->user && !l->pass_buf)) {
		rc = l->proto ? TB_ENOMEM : TB_ENOENT;
		listener_free(l);
		return rc;
	}
	if ((rc = listener_open(l)) < 0) {
		listener_free(l);
		return rc;
	}
	l->next = gw->listeners;
	gw->listeners = l;
	*out = l;
	return 0;
}

void tb_gw_listener_remove(tb_gw_listener_t *l)
{
	tb_gw_listener_t **pp;

	for (pp = &l->gw->listeners; *pp && *pp != l; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = l->next;
	listener_free(l);
}

/* ---- drain and teardown ---- */

static void drain_finish(tb_gw_t *gw)
{
	void (*done)(void *) = gw->drain_done;

	if (!done)
		return;
	gw->drain_done = NULL;
	tb_timer_stop(gw->loop, &gw->drain_timer);
	tb_defer_cancel(gw->loop, &gw->drain_check);
	done(gw->drain_arg);
}

static void drain_maybe(tb_gw_t *gw)
{
	if (gw->draining && gw->flows == 0 && gw->sessions == 0)
		tb_defer(gw->loop, &gw->drain_check);
}

static void drain_check_cb(tb_loop_t *loop, void *arg)
{
	tb_gw_t *gw = arg;

	if (gw->flows == 0 && gw->sessions == 0)
		drain_finish(gw);
}

static void drain_timeout(tb_loop_t *loop, void *arg)
{
	tb_gw_t *gw = arg;

	tb_warn("drain timeout: %zu flows and %zu handshakes cut", gw->flows, gw->sessions);
	/* Each end unlinks itself (flow_done, session_release). */
	while (gw->flow_list)
		tb_relay_abort(gw->flow_list->relay, TB_ECANCELED);
	while (gw->session_list)
		gw->session_list->cancel(gw->session_list->arg);
	drain_finish(gw);
}

void tb_gw_drain(tb_gw_t *gw, uint32_t drain_ms, void (*done)(void *arg), void *arg)
{
	for (tb_gw_listener_t *l = gw->listeners; l; l = l->next) {
		tb_tcp_listener_close(l->tcp);
		l->tcp = NULL;
		if (l->proto->stop)
			l->proto->stop(l);
	}
	gw->draining = true;
	gw->drain_done = done;
	gw->drain_arg = arg;
	tb_info("stopping: %zu flows to drain (up to %u ms)", gw->flows, drain_ms);
	tb_timer_init(&gw->drain_timer, drain_timeout, gw);
	tb_timer_start(gw->loop, &gw->drain_timer, drain_ms);
	tb_defer_init(&gw->drain_check, drain_check_cb, gw);
	drain_maybe(gw);
}

void tb_gw_free(tb_gw_t *gw)
{
	tb_gw_listener_t *l, *next;

	if (!gw)
		return;
	for (l = gw->listeners; l; l = next) {
		next = l->next;
		listener_free(l);
	}
	for (size_t i = 0; i < gw->nconnectors; i++)
		tb_connector_free(gw->connectors[i]);
	free(gw->connectors);
	tb_routing_free(gw->routing);
	if (gw->draining) {
		tb_timer_stop(gw->loop, &gw->drain_timer);
		tb_defer_cancel(gw->loop, &gw->drain_check);
	}
	while (gw->rule_dns) {
		struct rule_dns *rd = gw->rule_dns;
		gw->rule_dns = rd->next;
		tb_dns_free(rd->dns);
		free(rd->servers);
		free(rd);
	}
	tb_dns_free(gw->dns);
	free(gw);
}

void tb_gw_fatal(tb_gw_t *gw, int code)
{
	gw->exit_code = code;
	tb_loop_stop(gw->loop);
}

int tb_gw_exit_code(const tb_gw_t *gw)
{
	return gw->exit_code;
}

unsigned tb_gw_workers(const tb_gw_t *gw)
{
	return gw->workers;
}

size_t tb_gw_flow_count(const tb_gw_t *gw)
{
	return gw->flows;
}

/* ---- services for protocol servers ---- */

tb_gw_t *tb_gw_of(const tb_gw_listener_t *l)
{
	return l->gw;
}

const tb_connector_env_t *tb_gw_env(const tb_gw_t *gw)
{
	return &gw->env;
}

void *tb_gw_listener_priv(const tb_gw_listener_t *l)
{
	return l->priv;
}

void tb_gw_listener_set_priv(tb_gw_listener_t *l, void *priv)
{
	l->priv = priv;
}

tb_loop_t *tb_gw_loop(const tb_gw_listener_t *l)
{
	return l->gw->loop;
}

const char *tb_gw_listener_name(const tb_gw_listener_t *l)
{
	return l->name;
}

const tb_gw_auth_t *tb_gw_listener_auth(const tb_gw_listener_t *l)
{
	return &l->auth;
}

void tb_gw_listener_addr(const tb_gw_listener_t *l, tb_addr_t *out)
{
	*out = l->bind;
}

uint32_t tb_gw_handshake_timeout_ms(const tb_gw_listener_t *l)
{
	return l->gw->handshake_ms;
}

uint32_t tb_gw_udp_idle_ms(const tb_gw_listener_t *l)
{
	return l->gw->udp_idle_ms;
}

const char *tb_gw_server_id(const tb_gw_listener_t *l)
{
	return l->gw->server_id;
}

void tb_gw_session_hold(tb_gw_listener_t *l, tb_gw_session_t *s, void (*cancel)(void *arg), void *arg)
{
	tb_gw_t *gw = l->gw;

	s->cancel = cancel;
	s->arg = arg;
	s->prev = NULL;
	s->next = gw->session_list;
	if (s->next)
		s->next->prev = s;
	gw->session_list = s;
	gw->sessions++;
}

void tb_gw_session_release(tb_gw_listener_t *l, tb_gw_session_t *s)
{
	tb_gw_t *gw = l->gw;

	if (s->prev)
		s->prev->next = s->next;
	else
		gw->session_list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	gw->sessions--;
	drain_maybe(gw);
}

static void open_connected(void *arg, tb_stream_t *s, int err)
{
	tb_gw_open_t *o = arg;
	tb_connector_cb cb = o->cb;
	void *cbarg = o->arg;

	free(o);
	cb(cbarg, s, err);
}

/* Picks the connector (the router is looked up now, so a reload in between
 * is harmless) and starts it. */
static int open_select(tb_gw_open_t *o, const tb_addr_t *ips, size_t nips)
{
	tb_gw_t *gw = o->l->gw;
	const tb_router_t *r = tb_routing_find(gw->routing, o->l->router);
	const char *name = o->l->fixed ? o->l->fixed->name : r ? tb_router_select(r, &o->target, ips, nips) : NULL;
	char buf[TB_HOST_MAX + 8];

	o->conn = o->l->fixed ? o->l->fixed : name ? gw_connector(gw, name) : NULL;
	if (!o->conn)
		return TB_ENOENT;
	tb_debug("%s: %s -> %s", o->l->name, tb_target_str(&o->target, buf, sizeof(buf)), name);
	return tb_connector_connect(o->conn, &o->target, open_connected, o, &o->req);
}

static void open_resolved(void *arg, int err, const tb_addr_t *addrs, size_t n)
{
	tb_gw_open_t *o = arg;
	int rc;

	o->dq = NULL;
	/* A name that does not resolve is matched by name alone (rog). */
	rc = open_select(o, err < 0 ? NULL : addrs, err < 0 ? 0 : n);
	if (rc < 0)
		open_connected(o, NULL, rc);
}

/* The resolver for a rule's `dns` value: plain DNS servers get their own
 * c-ares channel; DoH (doh://, https://) is not implemented, so those rules
 * use the system resolver (logged once per value). */
static tb_dns_t *rule_resolver(tb_gw_t *gw, const char *servers)
{
	struct rule_dns *rd;

	if (!servers || !ENABLE_DNS_CARES)
		return gw->dns;
	for (rd = gw->rule_dns; rd; rd = rd->next)
		if (strcmp(rd->servers, servers) == 0)
			return rd->dns ? rd->dns : gw->dns;
	rd = calloc(1, sizeof(*rd));
	if (!rd || !(rd->servers = strdup(servers))) {
		free(rd);
		return gw->dns;
	}
	rd->next = gw->rule_dns;
	gw->rule_dns = rd;
	if (strncmp(servers, "doh://", 6) == 0 || strncmp(servers, "https://", 8) == 0)
		tb_warn("route rule dns '%s': DNS over HTTPS is not supported; using the system resolver", servers);
	else if (tb_dns_new(gw->loop, servers, &rd->dns) < 0)
		tb_warn("route rule dns '%s': unusable; using the system resolver", servers);
	return rd->dns ? rd->dns : gw->dns;
}

int tb_gw_open(tb_gw_listener_t *l, const tb_target_t *t, tb_connector_cb cb, void *arg, tb_gw_open_t **out)
{
	tb_gw_t *gw = l->gw;
	const tb_router_t *r = tb_routing_find(gw->routing, l->router);
	const char *dns = NULL;
	tb_gw_open_t *o;
	int rc;

	if (!r && !l->fixed)
		return TB_ENOENT;
	o = calloc(1, sizeof(*o));
	if (!o)
		return TB_ENOMEM;
	o->l = l;
	o->target = *t;
	o->cb = cb;
	o->arg = arg;
	if (r && !l->fixed && gw->dns && tb_router_wants_ips(r, t, &dns))
		rc = tb_dns_resolve(rule_resolver(gw, dns), t->host, 0, open_resolved, o, &o->dq);
	else
		rc = open_select(o, NULL, 0);
	if (rc < 0) {
		free(o);
		return rc;
	}
	*out = o;
	return 0;
}

void tb_gw_open_cancel(tb_gw_open_t *o)
{
	if (!o)
		return;
	tb_dns_cancel(o->dq);
	if (o->req)
		tb_connector_cancel(o->conn, o->req);
	free(o);
}

static void flow_unlink(tb_gw_t *gw, struct flow *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		gw->flow_list = f->next;
	if (f->next)
		f->next->prev = f->prev;
	gw->flows--;
	free(f);
}

static void flow_done(void *arg, tb_relay_t *r, const tb_relay_stats_t *st)
{
	struct flow *f = arg;
	tb_gw_listener_t *l = f->l;

	tb_debug("%s: flow ended (%s), %llu bytes up, %llu down", l->name, st->err ? tb_strerror(st->err) : "ok",
		 (unsigned long long)st->a_to_b, (unsigned long long)st->b_to_a);
	flow_unlink(l->gw, f);
	drain_maybe(l->gw);
}

int tb_gw_relay(tb_gw_listener_t *l, tb_stream_t *client, tb_stream_t *remote, bool client_eof)
{
	tb_gw_t *gw = l->gw;
	struct flow *f = calloc(1, sizeof(*f));
	tb_relay_opts_t o = {.idle_ms = gw->idle_ms, .a_eof = client_eof, .done = flow_done, .arg = f};

	if (!f) {
		tb_stream_close(client);
		tb_stream_close(remote);
		return TB_ENOMEM;
	}
	f->l = l;
	f->next = gw->flow_list;
	if (f->next)
		f->next->prev = f;
	gw->flow_list = f;
	gw->flows++;
	/* The relay may end inside this call (client_eof on a dead remote):
	 * flow_done then frees f, so f is not touched afterwards. */
	if (tb_relay_start(gw->loop, client, remote, &o, &f->relay) < 0) {
		flow_unlink(gw, f);
		return TB_ENOMEM;
	}
	return 0;
}

int tb_gw_udp_open(tb_gw_listener_t *l, const tb_target_t *first, tb_dgram_recv_cb cb, void *arg,
		   tb_dgram_t **out)
{
	tb_gw_t *gw = l->gw;
	const tb_router_t *r = tb_routing_find(gw->routing, l->router);
	const char *name = r ? tb_router_select(r, first, NULL, 0) : NULL;
	tb_connector_t *c = l->fixed ? l->fixed : name ? gw_connector(gw, name) : NULL;

	if (!c)
		return TB_ENOENT;
	return tb_connector_udp_open(c, cb, arg, out);
}
