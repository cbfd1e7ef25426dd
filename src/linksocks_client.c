/* linksocks_client.c: the LinkSocks client roles.
 *
 *   [[connector]] proto = "linksocks"            forward client: flows routed to this
 *                                                connector open channels on the server
 *   [[listener]]  proto = "linksocks-provider"   provider (`client -r`): the server's
 *                                                Connects become flows through `router`
 *   url = "ws://host:8765", token = "...", threads = 1, fast_open = false,
 *   reconnect = true, retry_auth = false, ca_file = "...", insecure = false,
 *   connector_token = "..." (provider: registered after every auth, §4.5)
 *
 * Each of `threads` WebSockets (§2.6) dials, upgrades, authenticates (URL
 * query on exactly /socket, else a binary Auth: §2.3) and then carries a
 * mux. A lost WebSocket fails its channels at once and is redialled with
 * exponential backoff and full jitter (§11). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks.h"
#include "tb/log.h"
#include "tb/ws.h"
#if ENABLE_TLS
#include "tb/tls.h"
#endif

#define HANDSHAKE_MS 45000u   /* §2.2 */
#define KEEPALIVE_MS 25000u   /* §11: provider pong 25 s, client ping 30 s */
#define READ_DEADLINE_MS 90000u
#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_CAP_MS 60000u /* §11: 60 s on routers */
#define STABLE_MS 30000u      /* authenticated this long: the backoff resets */
#define MAX_THREADS 64

typedef struct ls_client ls_client_t;

enum conn_state { C_IDLE, C_DIAL, C_WS, C_AUTH, C_UP };

typedef struct ls_conn {
	ls_client_t *cl;
	enum conn_state state;
	tb_dns_query_t *dq;
	tb_tcp_connect_t *tc;
	tb_ws_t *ws;
	tb_ls_mux_t *mux;
	tb_timer_t timer; /* handshake, keepalive, or the next dial */
	tb_timer_t reg;   /* autonomy: (re)send Connector{add} */
	uint64_t up_since, last_rx, reg_until;
	unsigned fails;
	uint8_t reg_id[TB_LS_UUID_LEN];
} ls_conn_t;

struct ls_client {
	tb_loop_t *loop;
	const tb_connector_env_t *env;
	tb_gw_listener_t *l; /* provider: where the server's Connects go */
	tb_ls_mux_opts_t mo; /* batching and compression */
	bool reverse;
	char *token;
	char *connector_token; /* provider: register it after each auth (§4.5) */
	char host[TB_HOST_MAX + 1];
	char hosthdr[TB_HOST_MAX + 10];
	uint16_t port;
	bool tls, url_auth, fast_open, reconnect, retry_auth, stopped;
	char path[256];
	char query[1024]; /* for URL auth: the full query */
	uint8_t instance[TB_LS_UUID_LEN];
	unsigned nconns, rr;
	ls_conn_t *conns;
	tb_ls_waitq_t waitq;
	tb_defer_t start;
#if ENABLE_TLS
	tb_tls_config_t *tlscfg;
#endif
};

static void conn_dial(ls_conn_t *k);

/* ---- the URL (§2.2) ---- */

static int parse_url(ls_client_t *cl, const char *url, char *why, size_t whylen)
{
	const char *p = strstr(url, "://"), *rest, *slash, *q;
	char scheme[8] = "wss", hostport[TB_HOST_MAX + 10];
	tb_target_t t;
	size_t n;

	if (p) {
		n = (size_t)(p - url);
		if (n >= sizeof(scheme))
			goto bad;
		memcpy(scheme, url, n);
		scheme[n] = '\0';
		rest = p + 3;
	} else {
		rest = url; /* §2.2: no scheme means wss:// */
	}
	if (strcmp(scheme, "ws") == 0 || strcmp(scheme, "http") == 0)
		cl->tls = false;
	else if (strcmp(scheme, "wss") == 0 || strcmp(scheme, "https") == 0)
		cl->tls = true;
	else
		goto bad;
	slash = strpbrk(rest, "/?");
	n = slash ? (size_t)(slash - rest) : strlen(rest);
	if (n == 0 || n >= sizeof(hostport))
		goto bad;
	memcpy(hostport, rest, n);
	hostport[n] = '\0';
	if (tb_http_authority_parse(hostport, n, cl->tls ? 443 : 80, &t) < 0)
		goto bad;
	snprintf(cl->host, sizeof(cl->host), "%s", t.host);
	cl->port = t.port;
	snprintf(cl->hosthdr, sizeof(cl->hosthdr), "%s", hostport);
	q = slash ? strchr(slash, '?') : NULL;
	n = slash ? (q ? (size_t)(q - slash) : strlen(slash)) : 0;
	if (n == 0 || (n == 1 && slash[0] == '/'))
		snprintf(cl->path, sizeof(cl->path), "/socket"); /* §2.2 */
	else if (n < sizeof(cl->path))
		snprintf(cl->path, sizeof(cl->path), "%.*s", (int)n, slash);
	else
		goto bad;
	/* §2.3: URL-query auth iff the path is exactly /socket. */
	cl->url_auth = strcmp(cl->path, "/socket") == 0;
	if (cl->url_auth) {
		const char *raw = q ? q + 1 : "";
		if (tb_ls_url_query_build(cl->query, sizeof(cl->query), raw, strlen(raw), cl->token, strlen(cl->token),
					  cl->reverse, cl->instance) < 0) {
			snprintf(why, whylen, "cannot build the auth query (mbedTLS missing, or too long)");
			return TB_EINVAL;
		}
	} else {
		snprintf(cl->query, sizeof(cl->query), "%s", q ? q + 1 : "");
	}
	return 0;
bad:
	snprintf(why, whylen, "expected ws://host[:port][/path] or wss://..., got '%s'", url);
	return TB_EINVAL;
}

/* ---- one WebSocket ---- */

static void conn_stop(ls_conn_t *k)
{
	tb_loop_t *loop = k->cl->loop;

	tb_timer_stop(loop, &k->timer);
	tb_timer_stop(loop, &k->reg);
	tb_dns_cancel(k->dq);
	k->dq = NULL;
	tb_tcp_connect_cancel(k->tc);
	k->tc = NULL;
	if (k->mux)
		tb_ls_mux_free(k->mux, TB_ENETUNREACH);
	k->mux = NULL;
	if (k->ws)
		tb_ws_free(k->ws);
	k->ws = NULL;
	k->state = C_IDLE;
}

static uint32_t backoff_ms(ls_conn_t *k)
{
	uint64_t d = BACKOFF_FIRST_MS;
	uint32_t r;

	for (unsigned i = 0; i < k->fails && d < BACKOFF_CAP_MS; i++)
		d = d * 3 / 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	/* Full jitter: a uniform delay in [d/2, d], so a fleet of routers that
	 * lost one server do not come back in step. */
	tb_port_random(&r, sizeof(r));
	return (uint32_t)(d / 2 + r % (d / 2 + 1));
}

/* The WebSocket is gone (or never came): channels fail, redial later. */
static void conn_down(ls_conn_t *k, const char *why, bool auth_refused)
{
	ls_client_t *cl = k->cl;
	uint64_t now = tb_loop_now(cl->loop);
	uint32_t delay;

	if (k->state == C_UP && now - k->up_since >= STABLE_MS)
		k->fails = 0;
	tb_warn("linksocks: %s:%u: %s", cl->host, cl->port, why);
	conn_stop(k);
	if (auth_refused && !cl->retry_auth) {
		/* §2.3: the reference treats a refused token as fatal. */
		tb_err("linksocks: authentication refused; stopping (use retry_auth to keep trying)");
		cl->stopped = true;
		if (cl->env->gw)
			tb_gw_fatal(cl->env->gw, 1);
		return;
	}
	if (cl->stopped)
		return;
	if (!cl->reconnect) {
		/* -R: the reference stops once its connection is gone. */
		for (unsigned i = 0; i < cl->nconns; i++)
			if (cl->conns[i].state != C_IDLE)
				return;
		tb_err("linksocks: no connection left and reconnecting is off; stopping");
		cl->stopped = true;
		if (cl->env->gw)
			tb_gw_fatal(cl->env->gw, 1);
		return;
	}
	delay = auth_refused ? BACKOFF_CAP_MS : backoff_ms(k);
	k->fails++;
	tb_info("linksocks: reconnecting in %u ms", delay);
	tb_timer_start(cl->loop, &k->timer, delay);
}

static void conn_timer(tb_loop_t *loop, void *arg)
{
	ls_conn_t *k = arg;

	switch (k->state) {
	case C_IDLE:
		conn_dial(k);
		return;
	case C_UP:
		if (tb_loop_now(loop) - k->last_rx >= READ_DEADLINE_MS) {
			conn_down(k, "no frame from the server for 90 s", false);
			return;
		}
		/* §11: a provider keeps itself attached with unsolicited pongs;
		 * every client pings so the server's pongs refresh both ends. */
		if (k->cl->reverse)
			tb_ws_pong(k->ws, NULL, 0);
		tb_ws_ping(k->ws, NULL, 0);
		tb_timer_start(loop, &k->timer, KEEPALIVE_MS);
		return;
	default:
		conn_down(k, "handshake timeout", false);
	}
}

/* §4.5, §11: Connector{add} after every (re)auth, so the token follows a
 * reconnected provider. */
static void send_register(ls_conn_t *k)
{
	tb_ls_msg_t msg = {.type = TB_LS_CONNECTOR};

	if (tb_ls_uuid_random(k->reg_id) < 0)
		return;
	memcpy(msg.connector.request, k->reg_id, TB_LS_UUID_LEN);
	msg.connector.token.p = k->cl->connector_token;
	msg.connector.token.len = strlen(k->cl->connector_token);
	msg.connector.op = TB_LS_OP_ADD;
	tb_ls_mux_send(k->mux, &msg);
}

static void reg_timer(tb_loop_t *loop, void *arg)
{
	ls_conn_t *k = arg;

	if (k->state == C_UP)
		send_register(k);
}

static void on_connector_response(ls_conn_t *k, const tb_ls_msg_t *msg)
{
	const tb_ls_str_t *e = &msg->connector_resp.error;

	if (memcmp(msg->connector_resp.request, k->reg_id, TB_LS_UUID_LEN) != 0)
		return;
	if (msg->connector_resp.success) {
		tb_info("linksocks: connector token %.*s registered", (int)msg->connector_resp.token.len,
			msg->connector_resp.token.p ? msg->connector_resp.token.p : "");
		return;
	}
	/* §11: a reference server frees the old binding only once it notices
	 * the dead connection: "already exists" is transient for 60 s. */
	if (e->len == 30 && memcmp(e->p, "connector token already exists", 30) == 0 &&
	    tb_loop_now(k->cl->loop) < k->reg_until) {
		tb_timer_start(k->cl->loop, &k->reg, 2000);
		return;
	}
	tb_err("linksocks: connector token refused: %.*s", (int)e->len, e->p ? e->p : "");
}

static void mux_control(void *ctx, tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	char level[16], text[256];

	if (msg->type == TB_LS_CONNECTOR_RESPONSE) {
		on_connector_response(ctx, msg);
		return;
	}
	if (msg->type == TB_LS_LOG &&
	    tb_ls_log_parse(msg->log.json.p, msg->log.json.len, level, sizeof(level), text, sizeof(text)) == 0) {
		tb_log(tb_ls_log_level(level), "linksocks server: %s", text);
		return;
	}
	tb_debug("linksocks: ignored %s from the server", tb_ls_type_name(msg->type));
}

static void on_auth_response(ls_conn_t *k, const tb_ls_msg_t *msg)
{
	ls_client_t *cl = k->cl;
	tb_ls_mux_opts_t o = cl->mo;
	char why[300];

	if (!msg->auth_resp.success) {
		snprintf(why, sizeof(why), "authentication failed: %.*s", (int)msg->auth_resp.error.len,
			 msg->auth_resp.error.p ? msg->auth_resp.error.p : "");
		conn_down(k, why, true);
		return;
	}
	o.egress = cl->reverse;
	o.l = cl->l;
	if (tb_ls_mux_new(cl->loop, &tb_ls_ws_transport, k->ws, &o, mux_control, k, &k->mux) < 0) {
		conn_down(k, "out of memory", false);
		return;
	}
	k->state = C_UP;
	k->up_since = tb_loop_now(cl->loop);
	tb_info("linksocks: %s %s:%u authenticated", cl->reverse ? "provider connected to" : "connected to", cl->host,
		cl->port);
	tb_ws_ping(k->ws, NULL, 0); /* §2.5: a first ping right after auth */
	tb_timer_start(cl->loop, &k->timer, KEEPALIVE_MS);
	if (cl->connector_token) {
		k->reg_until = k->up_since + 60000;
		send_register(k);
	}
	tb_ls_waitq_kick(&cl->waitq);
}

static void on_ws_message(void *ctx, tb_ws_t *ws, unsigned opcode, const uint8_t *data, size_t len)
{
	ls_conn_t *k = ctx;
	tb_ls_msg_t msg;

	k->last_rx = tb_loop_now(k->cl->loop);
	if (k->state == C_UP) {
		tb_ls_mux_input(k->mux, data, len);
		return;
	}
	/* §2.4: AuthResponse is always the server's first message. */
	if (tb_ls_msg_decode(data, len, &msg) < 0 || msg.type != TB_LS_AUTH_RESPONSE) {
		conn_down(k, "the server's first message is not an AuthResponse", false);
		return;
	}
	on_auth_response(k, &msg);
}

static void on_ws_open(void *ctx, tb_ws_t *ws)
{
	ls_conn_t *k = ctx;
	ls_client_t *cl = k->cl;
	tb_ls_msg_t msg = {.type = TB_LS_AUTH};
	uint8_t buf[300];
	int n;

	k->state = C_AUTH;
	if (cl->url_auth)
		return; /* §2.3 Style A: the query carried the token */
	msg.auth.token.p = cl->token;
	msg.auth.token.len = strlen(cl->token);
	msg.auth.reverse = cl->reverse;
	memcpy(msg.auth.instance, cl->instance, TB_LS_UUID_LEN);
	n = tb_ls_msg_encode(&msg, buf, sizeof(buf));
	if (n > 0)
		n = tb_ws_send(ws, TB_WS_OP_BINARY, buf, (size_t)n);
	if (n < 0 && n != TB_ENOBUFS)
		conn_down(k, "cannot send Auth", false);
}

static void on_ws_pong(void *ctx, tb_ws_t *ws, const uint8_t *data, size_t len)
{
	ls_conn_t *k = ctx;

	k->last_rx = tb_loop_now(k->cl->loop);
}

static void on_ws_drain(void *ctx, tb_ws_t *ws)
{
	ls_conn_t *k = ctx;

	if (k->mux)
		tb_ls_mux_drained(k->mux);
}

static void on_ws_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	ls_conn_t *k = ctx;
	char why[96];

	if (k->state == C_WS && err == TB_EDENIED)
		snprintf(why, sizeof(why), "upgrade refused with HTTP %d", tb_ws_http_status(ws));
	else
		snprintf(why, sizeof(why), "WebSocket closed (%d, %s)", code, tb_strerror(err));
	conn_down(k, why, false);
}

static const tb_ws_handler_t ws_handler = {on_ws_open, on_ws_message, on_ws_pong, on_ws_drain, on_ws_close};

static void start_ws(ls_conn_t *k, tb_stream_t *s)
{
	ls_client_t *cl = k->cl;
	tb_ws_request_t req = {
		.host = cl->hosthdr,
		.path = cl->path,
		.query = cl->query,
		.user_agent = "Go-http-client/1.1", /* §2.4: as the reference client */
	};

	k->state = C_WS;
	if (tb_ws_client_new(cl->loop, s, &req, NULL, &ws_handler, k, &k->ws) < 0) {
		tb_stream_close(s);
		conn_down(k, "cannot start the WebSocket", false);
	}
}

static void on_tcp(void *arg, tb_stream_t *s, int err)
{
	ls_conn_t *k = arg;
	char why[96];

	k->tc = NULL;
	if (err < 0) {
		snprintf(why, sizeof(why), "connect: %s", tb_strerror(err));
		conn_down(k, why, false);
		return;
	}
#if ENABLE_TLS
	if (k->cl->tls) {
		tb_stream_t *tls;
		if (tb_tls_wrap(k->cl->loop, k->cl->tlscfg, s, k->cl->host, NULL, NULL, &tls) < 0) {
			tb_stream_close(s);
			conn_down(k, "TLS setup failed", false);
			return;
		}
		s = tls;
	}
#endif
	start_ws(k, s);
}

static void on_resolved(void *arg, int err, const tb_addr_t *addrs, size_t n)
{
	ls_conn_t *k = arg;
	tb_addr_t a;

	k->dq = NULL;
	if (err < 0 || n == 0) {
		conn_down(k, "the server's name does not resolve", false);
		return;
	}
	a = addrs[0];
	a.port = k->cl->port;
	if (tb_tcp_connect(k->cl->loop, &a, 10000, on_tcp, k, &k->tc) < 0)
		conn_down(k, "cannot connect", false);
}

static void conn_dial(ls_conn_t *k)
{
	ls_client_t *cl = k->cl;

	if (cl->stopped)
		return;
	k->state = C_DIAL;
	k->last_rx = tb_loop_now(cl->loop);
	tb_timer_start(cl->loop, &k->timer, HANDSHAKE_MS);
	if (!cl->env->dns || tb_dns_resolve(cl->env->dns, cl->host, 0, on_resolved, k, &k->dq) < 0)
		conn_down(k, "no resolver", false);
}

/* ---- the client object ---- */

static tb_ls_mux_t *pick_conn(void *ctx)
{
	ls_client_t *cl = ctx;

	for (unsigned i = 0; i < cl->nconns; i++) {
		ls_conn_t *k = &cl->conns[cl->rr++ % cl->nconns];
		if (k->state == C_UP)
			return k->mux; /* round-robin over the live WebSockets (§2.6) */
	}
	return NULL;
}

static void client_start(tb_loop_t *loop, void *arg)
{
	ls_client_t *cl = arg;

	for (unsigned i = 0; i < cl->nconns; i++)
		conn_dial(&cl->conns[i]);
}

static void client_free(ls_client_t *cl)
{
	if (!cl)
		return;
	cl->stopped = true;
	tb_defer_cancel(cl->loop, &cl->start);
	tb_ls_waitq_clear(&cl->waitq);
	for (unsigned i = 0; cl->conns && i < cl->nconns; i++)
		conn_stop(&cl->conns[i]);
	free(cl->conns);
	free(cl->token);
	free(cl->connector_token);
#if ENABLE_TLS
	tb_tls_config_free(cl->tlscfg);
#endif
	free(cl);
}

static int opt_str(const tb_conf_val_t *t, const char *key, const char **out, tb_conf_err_t *err)
{
	int rc = tb_conf_get_str(t, key, out, err);

	return rc == TB_ENOENT ? 0 : rc;
}

static int opt_bool(const tb_conf_val_t *t, const char *key, bool *out, tb_conf_err_t *err)
{
	int rc = tb_conf_get_bool(t, key, out, err);

	return rc == TB_ENOENT ? 0 : rc;
}

static int client_new(const tb_connector_env_t *env, const tb_conf_val_t *t, bool reverse, ls_client_t **out,
		      tb_conf_err_t *err)
{
	const char *url = "ws://localhost:8765", *token = "", *ca = NULL, *ctok = NULL;
	bool insecure = false;
	int64_t threads = 1;
	ls_client_t *cl = calloc(1, sizeof(*cl));
	int rc;

	if (!cl)
		return TB_ENOMEM;
	*out = cl;
	cl->loop = env->loop;
	cl->env = env;
	cl->reverse = reverse;
	cl->reconnect = true;
	if ((rc = opt_str(t, "url", &url, err)) < 0 || (rc = opt_str(t, "token", &token, err)) < 0 ||
	    (rc = opt_str(t, "ca_file", &ca, err)) < 0 || (rc = opt_bool(t, "insecure", &insecure, err)) < 0 ||
	    (rc = opt_bool(t, "fast_open", &cl->fast_open, err)) < 0 ||
	    (rc = opt_bool(t, "reconnect", &cl->reconnect, err)) < 0 ||
	    (rc = opt_bool(t, "retry_auth", &cl->retry_auth, err)) < 0 ||
	    (rc = opt_str(t, "connector_token", &ctok, err)) < 0 || (rc = tb_ls_mux_opts_conf(&cl->mo, t, err)) < 0)
		return rc;
	if (ctok && (!reverse || strlen(ctok) > TB_LS_STR_MAX)) {
		tb_conf_set_err(err, tb_conf_get(t, "connector_token"), "a provider's token of at most 255 bytes");
		return TB_EINVAL;
	}
	if (ctok && !(cl->connector_token = strdup(ctok)))
		return TB_ENOMEM;
	rc = tb_conf_get_int(t, "threads", &threads, err);
	if (rc < 0 && rc != TB_ENOENT)
		return rc;
	if (threads < 1 || threads > MAX_THREADS) {
		tb_conf_set_err(err, tb_conf_get(t, "threads"), "threads must be 1 to %d", MAX_THREADS);
		return TB_EINVAL;
	}
	/* §2.3: an empty token is sent as "anonymous". */
	if (!*token)
		token = "anonymous";
	if (strlen(token) > TB_LS_STR_MAX) {
		tb_conf_set_err(err, tb_conf_get(t, "token"), "a token is at most 255 bytes");
		return TB_EINVAL;
	}
	if (!(cl->token = strdup(token)) || tb_ls_uuid_random(cl->instance) < 0)
		return TB_ENOMEM;
	if (parse_url(cl, url, err->msg, sizeof(err->msg)) < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "url"), "%s", err->msg);
		return TB_EINVAL;
	}
	if (cl->tls) {
#if ENABLE_TLS
		tb_tls_opts_t to = {.role = TB_TLS_CLIENT, .ca_file = ca, .insecure = insecure};
		if (tb_tls_config_new(&to, &cl->tlscfg, err->msg, sizeof(err->msg)) < 0) {
			tb_conf_set_err(err, tb_conf_get(t, "url"), "TLS: %s", err->msg);
			return TB_EINVAL;
		}
#else
		tb_conf_set_err(err, tb_conf_get(t, "url"), "wss:// needs CONFIG_TLS");
		return TB_EINVAL;
#endif
	}
	cl->nconns = (unsigned)threads;
	if (!(cl->conns = calloc(cl->nconns, sizeof(*cl->conns))))
		return TB_ENOMEM;
	for (unsigned i = 0; i < cl->nconns; i++) {
		cl->conns[i].cl = cl;
		tb_timer_init(&cl->conns[i].timer, conn_timer, &cl->conns[i]);
		tb_timer_init(&cl->conns[i].reg, reg_timer, &cl->conns[i]);
	}
	cl->waitq.loop = cl->loop;
	cl->waitq.pick = pick_conn;
	cl->waitq.ctx = cl;
	cl->waitq.wait_ms = 10000; /* §5: no WebSocket for 10 s: REP 3 */
	cl->waitq.fast_open = cl->fast_open;
	tb_defer_init(&cl->start, client_start, cl);
	return 0;
}

/* ---- the forward client, a connector ---- */

typedef struct ls_connector {
	tb_connector_t c; /* first */
	ls_client_t *cl;
} ls_connector_t;

static int fwd_connect(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg,
		       tb_connect_req_t **req)
{
	return tb_ls_waitq_open(&((ls_connector_t *)c)->cl->waitq, t, cb, arg, req);
}

static int fwd_udp_open(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	tb_ls_mux_t *m = pick_conn(((ls_connector_t *)c)->cl);

	return m ? tb_ls_mux_udp(m, cb, arg, out) : TB_ENETUNREACH;
}

static void fwd_free(tb_connector_t *c)
{
	ls_connector_t *lc = (ls_connector_t *)c;

	client_free(lc->cl);
	free(c->name);
	free(c);
}

static const tb_connector_ops_t fwd_ops = {
	.proto = "linksocks",
	.connect = fwd_connect,
	.cancel = tb_ls_waitq_cancel,
	.udp_open = fwd_udp_open,
	.free = fwd_free,
};

int tb_linksocks_connector_new(const tb_connector_env_t *env, const char *name, const tb_conf_val_t *table,
			       tb_connector_t **out, tb_conf_err_t *err)
{
	ls_connector_t *lc = calloc(1, sizeof(*lc));
	int rc;

	if (!lc || !(lc->c.name = strdup(name))) {
		free(lc);
		return TB_ENOMEM;
	}
	lc->c.ops = &fwd_ops;
	lc->c.env = env;
	if ((rc = client_new(env, table, false, &lc->cl, err)) < 0) {
		fwd_free(&lc->c);
		return rc;
	}
	tb_defer(env->loop, &lc->cl->start); /* dial once the loop runs */
	*out = &lc->c;
	return 0;
}

/* ---- the provider, a listener kind ---- */

static int prov_init(tb_gw_listener_t *l, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	ls_client_t *cl;
	int rc = client_new(tb_gw_env(tb_gw_of(l)), t, true, &cl, err);

	if (rc < 0) {
		client_free(cl);
		return rc;
	}
	cl->l = l;
	tb_gw_listener_set_priv(l, cl);
	return 0;
}

static int prov_start(tb_gw_listener_t *l)
{
	ls_client_t *cl = tb_gw_listener_priv(l);

	tb_defer(cl->loop, &cl->start);
	return 0;
}

static void prov_stop(tb_gw_listener_t *l)
{
	ls_client_t *cl = tb_gw_listener_priv(l);

	/* Draining: flows already open finish; no redial, no new WebSocket. */
	cl->stopped = true;
	cl->reconnect = false;
}

static void prov_free(tb_gw_listener_t *l)
{
	client_free(tb_gw_listener_priv(l));
	tb_gw_listener_set_priv(l, NULL);
}

const tb_gw_proto_t tb_linksocks_provider_proto = {
	.name = "linksocks-provider",
	.init = prov_init,
	.start = prov_start,
	.stop = prov_stop,
	.free = prov_free,
	.endpoint_optional = true,
};
