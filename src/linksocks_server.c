/* linksocks_server.c: the LinkSocks server, a gateway listener kind.
 *
 *   [[listener]]  proto = "linksocks", endpoint = "0.0.0.0:8765", router = "..."
 *   tokens = ["fwd"]                       forward tokens: their Connects go to the router
 *   [[listener.reverse]] token = "rev", socks = "127.0.0.1:9870", user, pass
 *                                          reverse tokens: a SOCKS5 port whose flows go
 *                                          round-robin to the providers of that token
 *   [[listener.connector]] token = "c", reverse = "rev"
 *                                          agent mode: connector clients' channels are
 *                                          relayed to the providers of `rev` (§4.4)
 *   autonomy = true (in [[listener.reverse]]) providers of that token add and
 *                                          remove connector tokens (§4.5); no SOCKS5 port
 *   tls_cert, tls_key                      wss (with CONFIG_TLS)
 *
 * One HTTP/1.1 request per TCP connection (spec/linksocks.md §2.1): `/` gets
 * the status line, `/socket` and below upgrade to a WebSocket, anything else
 * 404. A WebSocket authenticates by URL query or by a binary Auth message
 * (§2.3), then carries a mux: an egress mux for a forward client, an opener
 * mux for a provider. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks.h"
#include "tb/log.h"
#include "tb/ws.h"
#if ENABLE_TLS
#include "tb/tls.h"
#endif

#define LS_VERSION_TEXT "v1.7.15" /* the reference version we are compatible with */
#define PING_MS 30000u            /* §11: the server pings providers */
#define READ_DEADLINE_MS 90000u   /* §11: any inbound frame refreshes it */

typedef struct ls_server ls_server_t;
typedef struct ls_sess ls_sess_t;
typedef struct ls_token ls_token_t;

enum tok_kind { TOK_FORWARD, TOK_REVERSE, TOK_CONNECTOR };

/* A reverse token's provider pool, as the connector its SOCKS port uses. */
typedef struct ls_pool {
	tb_connector_t c; /* first */
	ls_token_t *tok;
} ls_pool_t;

struct ls_token {
	ls_token_t *next;
	enum tok_kind kind;
	char *token;
	char hex[TB_LS_TOKEN_HEX_LEN + 1]; /* for URL auth (§2.3) */
	/* reverse */
	tb_addr_t socks;
	tb_gw_auth_t auth;
	char *user, *pass;
	tb_gw_listener_t *socks_l;
	ls_pool_t pool;
	ls_sess_t *providers;
	ls_sess_t *rr; /* next provider to use */
	tb_ls_waitq_t waitq; /* SOCKS flows waiting for a provider */
	char *pool_name;
	/* connector (agent mode, §4.4): the reverse token it reaches */
	ls_token_t *target;
	/* autonomy (§4.5): a reverse token whose providers manage connector
	 * tokens; such a connector token reaches the one provider that added
	 * it (owner, NULL while that provider is away: §11 keeps the token). */
	bool autonomy, dynamic;
	ls_sess_t *owner;
};

/* An agent-mode channel: connector -> server -> provider, relayed as
 * messages, never opened here (§4.4). */
typedef struct agent_ch {
	struct agent_ch *next;
	uint8_t id[TB_LS_UUID_LEN];
	ls_sess_t *conn, *prov;
	/* while prov is NULL: the Connect, waiting for a provider (v1.8's
	 * --connector-wait-provider, 5 s) */
	uint8_t *connect;
	size_t connect_len;
	tb_timer_t wait;
} agent_ch_t;

#define AGENT_WAIT_MS 5000u
#define AGENT_WAIT_MAX 256 /* waiting Connects per server */

struct ls_server {
	tb_gw_listener_t *l;
	tb_ls_mux_opts_t mo; /* batching and compression, for every session */
	ls_token_t *tokens;
	ls_sess_t *sessions;
	agent_ch_t *agent;
	unsigned agent_waiting;
	bool fast_open;
	char *api_key;        /* §8: the HTTP API, when set */
	tb_addr_t api_socks;  /* where API reverse tokens' SOCKS5 ports listen (port 0) */
	ls_token_t *dead;     /* removed reverse tokens with SOCKS flows still waiting */
#if ENABLE_TLS
	tb_tls_config_t *tls;
#endif
};

enum sess_state { S_HTTP, S_AUTH, S_FORWARD, S_PROVIDER, S_CONNECTOR, S_DEAD };

struct ls_sess {
	ls_server_t *srv;
	ls_sess_t *next, *prev;   /* all sessions */
	ls_sess_t *pnext, *pprev; /* providers of one token */
	ls_token_t *tok;
	enum sess_state state;
	tb_stream_t *s; /* until the upgrade */
	tb_addr_t peer;
	tb_buf_t head;
	tb_ws_t *ws;
	tb_ls_mux_t *mux;
	tb_timer_t timer; /* handshake, then ping / read deadline */
	uint64_t last_rx;
	tb_gw_session_t gs;
	bool held;
	ls_sess_t *blocked_on; /* agent relaying: paused until that one drains */
};

static void agent_drop_sess(ls_sess_t *ss);
static void agent_unblock(ls_sess_t *dst);

/* ---- sessions ---- */

static void sess_free(ls_sess_t *ss)
{
	tb_loop_t *loop = tb_gw_loop(ss->srv->l);

	tb_timer_stop(loop, &ss->timer);
	if (ss->state == S_PROVIDER && ss->tok) {
		ls_token_t *t = ss->tok;
		if (t->rr == ss)
			t->rr = ss->pnext;
		if (ss->pprev)
			ss->pprev->pnext = ss->pnext;
		else
			t->providers = ss->pnext;
		if (ss->pnext)
			ss->pnext->pprev = ss->pprev;
		tb_info("linksocks: provider for token %.4s... left", t->token);
		for (ls_token_t *x = ss->srv->tokens; x; x = x->next)
			if (x->owner == ss)
				x->owner = NULL;
	}
	agent_drop_sess(ss);
	if (ss->mux)
		tb_ls_mux_free(ss->mux, TB_ECONNRESET);
	if (ss->ws)
		tb_ws_free(ss->ws);
	agent_unblock(ss);
	if (ss->s)
		tb_stream_close(ss->s);
	tb_buf_free(&ss->head);
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		ss->srv->sessions = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	if (ss->held)
		tb_gw_session_release(ss->srv->l, &ss->gs);
	free(ss);
}

static void sess_cancel(void *arg)
{
	sess_free(arg);
}

static void sess_timer(tb_loop_t *loop, void *arg)
{
	ls_sess_t *ss = arg;
	uint64_t now = tb_loop_now(loop);

	if (ss->state == S_HTTP || ss->state == S_AUTH) {
		tb_debug("linksocks: handshake timeout");
		sess_free(ss);
		return;
	}
	if (now - ss->last_rx >= READ_DEADLINE_MS) {
		tb_info("linksocks: no frame for %u s; dropping the WebSocket", READ_DEADLINE_MS / 1000);
		sess_free(ss);
		return;
	}
	if (ss->state == S_PROVIDER)
		tb_ws_ping(ss->ws, NULL, 0);
	tb_timer_start(loop, &ss->timer, PING_MS);
}

/* ---- the provider pool of a reverse token (a connector) ---- */

static tb_ls_mux_t *pick_provider(void *ctx)
{
	ls_token_t *t = ctx;
	ls_sess_t *p = t->rr ? t->rr : t->providers;

	if (!p)
		return NULL;
	t->rr = p->pnext; /* round-robin over the token's providers (§1) */
	return p->mux;
}

static int pool_connect(tb_connector_t *c, const tb_target_t *t, tb_connector_cb cb, void *arg,
			tb_connect_req_t **req)
{
	return tb_ls_waitq_open(&((ls_pool_t *)c)->tok->waitq, t, cb, arg, req);
}

static int pool_udp_open(tb_connector_t *c, tb_dgram_recv_cb cb, void *arg, tb_dgram_t **out)
{
	tb_ls_mux_t *m = pick_provider(((ls_pool_t *)c)->tok);

	return m ? tb_ls_mux_udp(m, cb, arg, out) : TB_ENETUNREACH;
}

static void pool_free(tb_connector_t *c)
{
	/* embedded in its token */
}

static const tb_connector_ops_t pool_ops = {
	.proto = "linksocks-pool",
	.connect = pool_connect,
	.cancel = tb_ls_waitq_cancel,
	.udp_open = pool_udp_open,
	.free = pool_free,
};

/* ---- agent mode (§4.4): connector channels relayed to providers ---- */

static agent_ch_t **agent_find(ls_server_t *srv, const uint8_t id[TB_LS_UUID_LEN])
{
	agent_ch_t **pp;

	for (pp = &srv->agent; *pp; pp = &(*pp)->next)
		if (memcmp((*pp)->id, id, TB_LS_UUID_LEN) == 0)
			return pp;
	return NULL;
}

static void agent_unlink(agent_ch_t **pp)
{
	agent_ch_t *a = *pp;

	*pp = a->next;
	if (a->connect) {
		tb_timer_stop(tb_gw_loop(a->conn->srv->l), &a->wait);
		a->conn->srv->agent_waiting--;
		free(a->connect);
	}
	free(a);
}

/* Sends raw to dst; when dst's WebSocket is full, src stops reading until
 * dst drains (the same no-drop rule as the mux, §11). */
static void agent_send(ls_sess_t *src, ls_sess_t *dst, const uint8_t *raw, size_t len)
{
	if (!dst->ws)
		return;
	if (tb_ws_send(dst->ws, TB_WS_OP_BINARY, raw, len) == TB_ENOBUFS && src && !src->blocked_on) {
		src->blocked_on = dst;
		tb_ws_pause(src->ws);
	}
}

static void agent_unblock(ls_sess_t *dst)
{
	for (ls_sess_t *s = dst->srv->sessions; s; s = s->next) {
		if (s->blocked_on != dst)
			continue;
		s->blocked_on = NULL;
		if (s->ws)
			tb_ws_resume(s->ws);
	}
}

static void agent_disconnect(ls_sess_t *to, const uint8_t id[TB_LS_UUID_LEN])
{
	tb_ls_msg_t msg = {.type = TB_LS_DISCONNECT};
	uint8_t buf[24];
	int n;

	memcpy(msg.disconnect.channel, id, TB_LS_UUID_LEN);
	if ((n = tb_ls_msg_encode(&msg, buf, sizeof(buf))) > 0)
		agent_send(NULL, to, buf, (size_t)n);
}

/* A WebSocket left: the other side of each of its channels hears of it. */
static void agent_drop_sess(ls_sess_t *ss)
{
	agent_ch_t **pp = &ss->srv->agent;

	while (*pp) {
		agent_ch_t *a = *pp;
		if (a->conn != ss && a->prov != ss) {
			pp = &a->next;
			continue;
		}
		if (a->prov)
			agent_disconnect(a->conn == ss ? a->prov : a->conn, a->id);
		agent_unlink(pp);
	}
}

static void agent_refuse(ls_sess_t *ss, const uint8_t id[TB_LS_UUID_LEN])
{
	tb_ls_msg_t reply = {.type = TB_LS_CONNECT_RESPONSE};
	uint8_t buf[64];
	int n;

	/* §4.4: the reference's words for a missing provider. */
	memcpy(reply.connect_resp.channel, id, TB_LS_UUID_LEN);
	reply.connect_resp.error.p = TB_LS_ERR_NO_PROVIDER;
	reply.connect_resp.error.len = strlen(TB_LS_ERR_NO_PROVIDER);
	if ((n = tb_ls_msg_encode(&reply, buf, sizeof(buf))) > 0)
		agent_send(NULL, ss, buf, (size_t)n);
}

static tb_ls_mux_t *agent_pick(ls_token_t *ct)
{
	if (ct->dynamic)
		return ct->owner ? ct->owner->mux : NULL;
	return pick_provider(ct->target);
}

/* Sends a channel's Connect to a provider; false when there is none. */
static bool agent_dispatch(agent_ch_t *a, const uint8_t *raw, size_t len)
{
	ls_token_t *ct = a->conn->tok;
	tb_ls_mux_t *pm = agent_pick(ct);

	if (!pm)
		return false;
	for (ls_sess_t *p = ct->target->providers; p; p = p->pnext)
		if (p->mux == pm)
			a->prov = p;
	/* §4.4: the identical Connect bytes, same ChannelID. */
	agent_send(a->conn, a->prov, raw, len);
	return true;
}

static void agent_wait_end(tb_loop_t *loop, void *arg)
{
	agent_ch_t *a = arg;
	agent_ch_t **pp = agent_find(a->conn->srv, a->id);

	agent_refuse(a->conn, a->id);
	agent_unlink(pp);
}

/* A provider arrived: the Connects waiting for one go now. */
static void agent_retry(ls_server_t *srv)
{
	for (agent_ch_t **pp = &srv->agent; *pp;) {
		agent_ch_t *a = *pp;
		if (!a->connect || !agent_pick(a->conn->tok)) {
			pp = &a->next;
			continue;
		}
		uint8_t *raw = a->connect;
		a->connect = NULL;
		tb_timer_stop(tb_gw_loop(srv->l), &a->wait);
		srv->agent_waiting--;
		agent_dispatch(a, raw, a->connect_len);
		free(raw);
		pp = &a->next;
	}
}

static void agent_connect(ls_sess_t *ss, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	ls_server_t *srv = ss->srv;
	agent_ch_t *a;

	if (agent_find(srv, msg->connect.channel) || !(a = calloc(1, sizeof(*a)))) {
		agent_refuse(ss, msg->connect.channel);
		return;
	}
	memcpy(a->id, msg->connect.channel, TB_LS_UUID_LEN);
	a->conn = ss;
	a->next = srv->agent;
	srv->agent = a;
	if (agent_dispatch(a, raw, len))
		return;
	/* No provider yet: wait a little, as v1.8 does, instead of failing a
	 * connector that came up a moment before its provider. */
	if (srv->agent_waiting >= AGENT_WAIT_MAX || !(a->connect = malloc(len))) {
		agent_refuse(ss, a->id);
		agent_unlink(&srv->agent);
		return;
	}
	memcpy(a->connect, raw, len);
	a->connect_len = len;
	srv->agent_waiting++;
	tb_timer_init(&a->wait, agent_wait_end, a);
	tb_timer_start(tb_gw_loop(srv->l), &a->wait, AGENT_WAIT_MS);
}

static const uint8_t *msg_channel(const tb_ls_msg_t *msg)
{
	switch (msg->type) {
	case TB_LS_DATA:
		return msg->data.channel;
	case TB_LS_CONNECT_RESPONSE:
		return msg->connect_resp.channel;
	default:
		return msg->disconnect.channel;
	}
}

/* Data / ConnectResponse / Disconnect for a channel no mux owns: relay it
 * if it is an agent channel, else drop it quietly (§4.3). */
static void agent_foreign(void *ctx, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	ls_sess_t *ss = ctx;
	agent_ch_t **pp = agent_find(ss->srv, msg_channel(msg));
	ls_sess_t *to;

	if (!pp || !(*pp)->prov || ((*pp)->conn != ss && (*pp)->prov != ss))
		return;
	to = (*pp)->conn == ss ? (*pp)->prov : (*pp)->conn;
	if (ss == (*pp)->conn && msg->type == TB_LS_CONNECT_RESPONSE)
		return; /* only the provider answers Connects */
	agent_send(ss, to, raw, len);
	/* §11: a connector's Disconnect reaches the provider (the reference
	 * echoes it back instead); either side's Disconnect ends the channel. */
	if (msg->type == TB_LS_DISCONNECT ||
	    (msg->type == TB_LS_CONNECT_RESPONSE && !msg->connect_resp.success))
		agent_unlink(pp);
}

/* §4.4, §11: a connector learns how many providers its token has. */
static void send_partners(ls_sess_t *ss, ls_token_t *t)
{
	tb_ls_msg_t msg = {.type = TB_LS_PARTNERS};
	char json[64];
	uint8_t buf[96];
	long count = 0;
	int n;

	for (ls_sess_t *p = t->providers; p; p = p->pnext)
		count++;
	if ((n = tb_ls_partners_json(json, sizeof(json), count)) < 0)
		return;
	msg.partners.json.p = json;
	msg.partners.json.len = (size_t)n;
	if ((n = tb_ls_msg_encode(&msg, buf, sizeof(buf))) > 0)
		agent_send(NULL, ss, buf, (size_t)n);
}

/* ---- autonomy (§4.5): providers add and remove connector tokens ---- */

static ls_token_t *token_add(ls_server_t *srv, enum tok_kind kind, const char *tok);

static void connector_reply(ls_sess_t *ss, const uint8_t req[TB_LS_UUID_LEN], const char *token, const char *error)
{
	tb_ls_msg_t msg = {.type = TB_LS_CONNECTOR_RESPONSE};
	uint8_t buf[300];
	int n;

	memcpy(msg.connector_resp.request, req, TB_LS_UUID_LEN);
	msg.connector_resp.success = error == NULL;
	msg.connector_resp.token.p = token;
	msg.connector_resp.token.len = token ? strlen(token) : 0;
	msg.connector_resp.error.p = error;
	msg.connector_resp.error.len = error ? strlen(error) : 0;
	if ((n = tb_ls_msg_encode(&msg, buf, sizeof(buf))) > 0)
		agent_send(NULL, ss, buf, (size_t)n);
}

static void token_free(ls_token_t *t)
{
	tb_ls_waitq_clear(&t->waitq);
	free(t->pool_name);
	free(t->token);
	free(t->user);
	free(t->pass);
	free(t);
}

static void token_remove(ls_server_t *srv, ls_token_t *t)
{
	ls_token_t **pp;

	/* A reverse token takes its connector tokens along (§8). */
	if (t->kind == TOK_REVERSE) {
		for (ls_token_t *x = srv->tokens; x;) {
			if (x->kind == TOK_CONNECTOR && x->target == t) {
				token_remove(srv, x);
				x = srv->tokens;
			} else {
				x = x->next;
			}
		}
	}
	/* Removing a token disconnects the clients using it (§4.5, §8). */
	for (ls_sess_t *s = srv->sessions, *next; s; s = next) {
		next = s->next;
		if (s->tok == t)
			sess_free(s);
	}
	for (pp = &srv->tokens; *pp && *pp != t; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = t->next;
	if (t->socks_l) {
		tb_gw_listener_remove(t->socks_l);
		t->socks_l = NULL;
	}
	if (t->waitq.head) {
		/* SOCKS flows still wait on its pool: they time out on their
		 * own (their requests point into it), so it lives until then,
		 * at the latest until the listener goes. */
		t->next = srv->dead;
		srv->dead = t;
		return;
	}
	token_free(t);
}

static void manage_connector(ls_sess_t *ss, const tb_ls_msg_t *msg)
{
	ls_server_t *srv = ss->srv;
	char tok[TB_LS_STR_MAX + 1], gen[17];
	ls_token_t *t = NULL;
	uint8_t r[8];

	if (!ss->tok->autonomy) {
		connector_reply(ss, msg->connector.request, NULL, "Unauthorized connector management attempt");
		return;
	}
	snprintf(tok, sizeof(tok), "%.*s", (int)msg->connector.token.len,
		 msg->connector.token.p ? msg->connector.token.p : "");
	for (ls_token_t *x = srv->tokens; x; x = x->next)
		if (strcmp(x->token, tok) == 0)
			t = x;
	if (msg->connector.op == TB_LS_OP_REMOVE) {
		/* §4.5: success even for unknown tokens; only the owner's go. */
		if (t && t->dynamic && (t->owner == ss || !t->owner))
			token_remove(srv, t);
		connector_reply(ss, msg->connector.request, NULL, NULL);
		return;
	}
	if (!*tok) { /* §4.5: an empty token asks for a generated one */
		tb_port_random(r, sizeof(r));
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(gen + 2 * i, 3, "%02x", r[i]);
		snprintf(tok, sizeof(tok), "%s", gen);
	}
	if (strcmp(tok, "anonymous") == 0) {
		connector_reply(ss, msg->connector.request, NULL, "anonymous token is not allowed");
		return;
	}
	/* §11: a token that maps to the same reverse token is re-bound to this
	 * provider when its previous owner is gone (or is this one). */
	if (t && !(t->dynamic && t->target == ss->tok && (!t->owner || t->owner == ss))) {
		connector_reply(ss, msg->connector.request, NULL, "connector token already exists");
		return;
	}
	if (!t && !(t = token_add(srv, TOK_CONNECTOR, tok))) {
		connector_reply(ss, msg->connector.request, NULL, "out of memory");
		return;
	}
	t->dynamic = true;
	t->target = ss->tok;
	t->owner = ss;
	tb_info("linksocks: provider registered connector token %.4s...", tok);
	connector_reply(ss, msg->connector.request, tok, NULL);
	agent_retry(srv);
}

/* ---- authentication (§2.3) ---- */

static ls_token_t *find_raw(ls_server_t *srv, const char *tok, size_t len)
{
	ls_token_t *found = NULL;

	/* Every token is compared, in constant time, whatever matches. */
	for (ls_token_t *t = srv->tokens; t; t = t->next)
		if (tb_ct_equal(t->token, strlen(t->token), tok, len) && !found)
			found = t;
	return found;
}

static ls_token_t *find_hex(ls_server_t *srv, const char *hex)
{
	ls_token_t *found = NULL;

	for (ls_token_t *t = srv->tokens; t; t = t->next)
		if (tb_ct_equal(t->hex, TB_LS_TOKEN_HEX_LEN, hex, TB_LS_TOKEN_HEX_LEN) && !found)
			found = t;
	return found;
}

static void control(void *ctx, tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len);

static void auth_reply(ls_sess_t *ss, const char *error)
{
	uint8_t buf[300];
	tb_ls_msg_t msg = {.type = TB_LS_AUTH_RESPONSE};
	int n;

	msg.auth_resp.success = error == NULL;
	msg.auth_resp.error.p = error;
	msg.auth_resp.error.len = error ? strlen(error) : 0;
	n = tb_ls_msg_encode(&msg, buf, sizeof(buf));
	if (n > 0)
		tb_ws_send(ss->ws, TB_WS_OP_BINARY, buf, (size_t)n);
}

static void auth_fail(ls_sess_t *ss, const char *why)
{
	char peer[TB_ADDR_STRLEN];

	tb_warn("linksocks: %s: authentication failed: %s", tb_addr_str(&ss->peer, peer, sizeof(peer)), why);
	auth_reply(ss, why);
	/* §11: a Close 1008 after the failure; the reference client has read
	 * the AuthResponse already. on_close frees the session. */
	ss->state = S_DEAD;
	tb_ws_close(ss->ws, TB_WS_CLOSE_POLICY, NULL);
}

/* reverse: -1 when the client did not say (URL auth without the key). */
static void auth_as(ls_sess_t *ss, ls_token_t *t, int reverse)
{
	ls_server_t *srv = ss->srv;
	tb_ls_mux_opts_t o = srv->mo;
	tb_loop_t *loop = tb_gw_loop(srv->l);
	char peer[TB_ADDR_STRLEN];

	/* §2.3: reverse needs a reverse token; not reverse needs a forward
	 * token or a connector token whose reverse token exists. */
	if (!t || (reverse == 1 && t->kind != TOK_REVERSE) || (reverse == 0 && t->kind == TOK_REVERSE) ||
	    (t->kind == TOK_CONNECTOR && !t->target)) {
		auth_fail(ss, TB_LS_ERR_INVALID_TOKEN);
		return;
	}
	o.egress = t->kind == TOK_FORWARD;
	o.l = srv->l;
	o.foreign = agent_foreign;
	if (tb_ls_mux_new(loop, &tb_ls_ws_transport, ss->ws, &o, control, ss, &ss->mux) < 0) {
		sess_free(ss);
		return;
	}
	auth_reply(ss, NULL);
	/* The handshake is over: from now on the gateway counts this
	 * WebSocket's channels as flows. Held any longer, an idle WebSocket
	 * would keep every stop waiting for the whole drain timeout. */
	if (ss->held) {
		tb_gw_session_release(srv->l, &ss->gs);
		ss->held = false;
	}
	ss->tok = t;
	ss->last_rx = tb_loop_now(loop);
	tb_timer_start(loop, &ss->timer, PING_MS);
	tb_addr_str(&ss->peer, peer, sizeof(peer));
	if (t->kind == TOK_FORWARD) {
		ss->state = S_FORWARD;
		tb_info("linksocks: forward client %s authenticated", peer);
		return;
	}
	if (t->kind == TOK_CONNECTOR) {
		ss->state = S_CONNECTOR;
		tb_info("linksocks: connector %s authenticated for reverse token %.4s...", peer, t->target->token);
		send_partners(ss, t->target);
		return;
	}
	ss->state = S_PROVIDER;
	ss->pnext = t->providers;
	if (ss->pnext)
		ss->pnext->pprev = ss;
	t->providers = ss;
	tb_info("linksocks: provider %s authenticated for token %.4s...", peer, t->token);
	tb_ls_waitq_kick(&t->waitq);
	agent_retry(srv);
}

static void control(void *ctx, tb_ls_mux_t *m, const tb_ls_msg_t *msg, const uint8_t *raw, size_t len)
{
	ls_sess_t *ss = ctx;

	if (msg->type == TB_LS_CONNECT && ss->state == S_CONNECTOR) {
		agent_connect(ss, msg, raw, len);
		return;
	}
	if (msg->type == TB_LS_CONNECTOR && ss->state == S_PROVIDER) {
		manage_connector(ss, msg);
		return;
	}
	/* Connector management (0x07, autonomy) is not served yet; Log and
	 * Partners from clients are ignored (§9 hellos). */
	tb_debug("linksocks: ignored %s from a client", tb_ls_type_name(msg->type));
}

/* ---- the WebSocket ---- */

static void on_ws_message(void *ctx, tb_ws_t *ws, unsigned opcode, const uint8_t *data, size_t len)
{
	ls_sess_t *ss = ctx;
	tb_ls_msg_t msg;

	ss->last_rx = tb_loop_now(tb_gw_loop(ss->srv->l));
	if (ss->state == S_FORWARD || ss->state == S_PROVIDER || ss->state == S_CONNECTOR) {
		tb_ls_mux_input(ss->mux, data, len);
		return;
	}
	if (ss->state != S_AUTH)
		return;
	/* §2.3 Style B: the first message must be Auth. */
	if (tb_ls_msg_decode(data, len, &msg) < 0 || msg.type != TB_LS_AUTH) {
		auth_fail(ss, TB_LS_ERR_INVALID_AUTH);
		return;
	}
	auth_as(ss, find_raw(ss->srv, msg.auth.token.p, msg.auth.token.len), msg.auth.reverse ? 1 : 0);
}

static void on_ws_pong(void *ctx, tb_ws_t *ws, const uint8_t *data, size_t len)
{
	ls_sess_t *ss = ctx;

	ss->last_rx = tb_loop_now(tb_gw_loop(ss->srv->l));
}

static void on_ws_drain(void *ctx, tb_ws_t *ws)
{
	ls_sess_t *ss = ctx;

	agent_unblock(ss);
	if (ss->mux)
		tb_ls_mux_drained(ss->mux);
}

static void on_ws_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	ls_sess_t *ss = ctx;

	tb_debug("linksocks: WebSocket closed (%d, %s)", code, tb_strerror(err));
	sess_free(ss);
}

static const tb_ws_handler_t ws_handler = {NULL, on_ws_message, on_ws_pong, on_ws_drain, on_ws_close};

/* ---- HTTP (§2.1) ---- */

static void http_reply(ls_sess_t *ss, int status, const char *ctype, const char *body)
{
	char head[256], extra[128];
	int n;

	snprintf(extra, sizeof(extra), "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n", ctype,
		 strlen(body));
	if (status == 413) /* tb_http_reason() has no words for it */
		n = snprintf(head, sizeof(head), "HTTP/1.1 413 Request Entity Too Large\r\n%s\r\n", extra);
	else
		n = tb_http_response_build(head, sizeof(head), status, extra);
	if (n >= (int)sizeof(head))
		n = -1;
	if (n > 0)
		tb_stream_write(ss->s, head, (size_t)n);
	tb_stream_write(ss->s, body, strlen(body));
	tb_stream_shutdown(ss->s);
	ss->state = S_DEAD; /* freed on the client's EOF or the timer */
}

static bool path_is_socket(const tb_http_span_t *target, tb_http_span_t *query)
{
	const char *q = memchr(target->p, '?', target->len);
	size_t plen = q ? (size_t)(q - target->p) : target->len;

	query->p = q ? q + 1 : NULL;
	query->len = q ? target->len - plen - 1 : 0;
	if (plen == 7 && memcmp(target->p, "/socket", 7) == 0)
		return true;
	return plen > 7 && memcmp(target->p, "/socket/", 8) == 0;
}

static void upgrade(ls_sess_t *ss, const tb_http_request_t *r)
{
	tb_http_span_t key, query;
	tb_ls_url_auth_t ua;
	char out[256];
	size_t rest_len = tb_buf_len(&ss->head) - r->head_len;
	const uint8_t *all = tb_buf_pullup(&ss->head, tb_buf_len(&ss->head));
	int status, n;

	path_is_socket(&r->target, &query);
	if ((status = tb_ws_upgrade_check(r, &key)) != 0) {
		/* §2.1: a plain GET without upgrade headers gets 400. */
		n = tb_ws_refusal_build(out, sizeof(out), status);
		if (n > 0)
			tb_stream_write(ss->s, out, (size_t)n);
		tb_stream_shutdown(ss->s);
		ss->state = S_DEAD;
		return;
	}
	tb_stream_set_handler(ss->s, NULL, NULL);
	if (tb_ws_server_new(tb_gw_loop(ss->srv->l), ss->s, key.p, key.len, all + r->head_len, rest_len, NULL,
			     &ws_handler, ss, &ss->ws) < 0) {
		sess_free(ss);
		return;
	}
	ss->s = NULL; /* the WebSocket owns it */
	ss->state = S_AUTH;
	if (tb_ls_url_query_parse(query.p ? query.p : "", query.len, &ua) == 0 && ua.has_token) {
		/* §2.3 Style A: the lowercase hex SHA-256 of the token. */
		auth_as(ss, find_hex(ss->srv, ua.token_hex), ua.reverse);
		return;
	}
	if (ua.has_token) {
		auth_fail(ss, TB_LS_ERR_INVALID_TOKEN_FORMAT);
		return;
	}
	/* else: Style B, the first message is Auth */
}

/* ---- the HTTP API (§8) ---- */

#define API_BODY_MAX 65536
#define API_STR_MAX TB_LS_STR_MAX
#define API_PORT_MIN 1024 /* §6: the pool for reverse tokens without a port */
#define API_PORT_MAX 10240
#define API_PORT_TRIES 64

static void reverse_init(ls_server_t *srv, ls_token_t *rt);
static int reverse_open(ls_server_t *srv, ls_token_t *t);

/* A growing JSON text; oom sticks. */
typedef struct jbuf {
	char *p;
	size_t len, cap;
	bool oom;
} jbuf_t;

static void jb_add(jbuf_t *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap))) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void jb_puts(jbuf_t *b, const char *s)
{
	jb_add(b, s, strlen(s));
}

static void jb_long(jbuf_t *b, long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%ld", v);
	jb_puts(b, num);
}

/* A JSON string literal; bytes >= 0x80 pass through (tokens are UTF-8). */
static void jb_str(jbuf_t *b, const char *s)
{
	char esc[8];

	jb_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			jb_add(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			jb_add(b, esc, 6);
		} else {
			jb_add(b, s, 1);
		}
	}
	jb_add(b, "\"", 1);
}

/* The request body: one flat JSON object. Known keys must have their type
 * (null counts as absent); unknown keys may hold strings, numbers,
 * booleans or null, not objects or arrays. */
typedef struct api_req {
	char type[API_STR_MAX + 1], token[API_STR_MAX + 1], user[API_STR_MAX + 1], pass[API_STR_MAX + 1],
		reverse[API_STR_MAX + 1];
	long port;
	bool amc;
} api_req_t;

typedef struct jreader {
	const char *p, *end;
} jreader_t;

static void jr_ws(jreader_t *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int jr_hex4(jreader_t *r, unsigned *out)
{
	unsigned v = 0;

	if (r->end - r->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = *r->p++;
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A string into out (NUL-terminated, at most cap - 1 bytes; out may be NULL
 * to skip). -1 on a syntax error, a NUL or overflow. */
static int jr_string(jreader_t *r, char *out, size_t cap)
{
	size_t n = 0;

	if (r->p >= r->end || *r->p != '"')
		return -1;
	r->p++;
	for (;;) {
		char tmp[4];
		size_t tn = 1;
		unsigned cp;

		if (r->p >= r->end)
			return -1;
		unsigned char c = (unsigned char)*r->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		tmp[0] = (char)c;
		if (c == '\\') {
			if (r->p >= r->end)
				return -1;
			switch (*r->p++) {
			case '"': tmp[0] = '"'; break;
			case '\\': tmp[0] = '\\'; break;
			case '/': tmp[0] = '/'; break;
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case 'u':
				if (jr_hex4(r, &cp) < 0 || cp == 0)
					return -1;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					unsigned lo;
					if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
						return -1;
					r->p += 2;
					if (jr_hex4(r, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
						return -1;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					return -1;
				}
				if (cp < 0x80) {
					tmp[0] = (char)cp;
				} else if (cp < 0x800) {
					tmp[0] = (char)(0xc0 | (cp >> 6));
					tmp[1] = (char)(0x80 | (cp & 0x3f));
					tn = 2;
				} else if (cp < 0x10000) {
					tmp[0] = (char)(0xe0 | (cp >> 12));
					tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					tmp[2] = (char)(0x80 | (cp & 0x3f));
					tn = 3;
				} else {
					tmp[0] = (char)(0xf0 | (cp >> 18));
					tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
					tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
					tmp[3] = (char)(0x80 | (cp & 0x3f));
					tn = 4;
				}
				break;
			default:
				return -1;
			}
		}
		if (out) {
			if (n + tn >= cap)
				return -1;
			memcpy(out + n, tmp, tn);
		}
		n += tn;
	}
	if (out)
		out[n] = '\0';
	return 0;
}

/* A JSON number; *is_int when it has no fraction or exponent and fits. */
static int jr_number(jreader_t *r, long *out, bool *is_int)
{
	const char *s = r->p;
	long v = 0;
	bool neg = false, ovf = false;

	*is_int = true;
	if (r->p < r->end && *r->p == '-') {
		neg = true;
		r->p++;
	}
	if (r->p >= r->end || *r->p < '0' || *r->p > '9')
		return -1;
	if (*r->p == '0' && r->end - r->p > 1 && r->p[1] >= '0' && r->p[1] <= '9')
		return -1;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		if (v > (0x7fffffffL - 9) / 10)
			ovf = true;
		else
			v = v * 10 + (*r->p - '0');
		r->p++;
	}
	if (r->p < r->end && *r->p == '.') {
		*is_int = false;
		r->p++;
		if (r->p >= r->end || *r->p < '0' || *r->p > '9')
			return -1;
		while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		*is_int = false;
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (r->p >= r->end || *r->p < '0' || *r->p > '9')
			return -1;
		while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			r->p++;
	}
	if (ovf)
		*is_int = false;
	*out = neg ? -v : v;
	return r->p > s ? 0 : -1;
}

static bool jr_word(jreader_t *r, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
		return false;
	r->p += n;
	return true;
}

static int api_parse(const char *body, size_t len, api_req_t *q)
{
	jreader_t r = {body, body + len};
	char key[32];

	memset(q, 0, sizeof(*q));
	jr_ws(&r);
	if (r.p >= r.end || *r.p++ != '{')
		return -1;
	jr_ws(&r);
	if (r.p < r.end && *r.p == '}') {
		r.p++;
		goto end;
	}
	for (;;) {
		char *str = NULL;
		long num;
		bool is_int;

		jr_ws(&r);
		/* a long key is no key of ours: read it to skip */
		jreader_t save = r;
		if (jr_string(&r, key, sizeof(key)) < 0) {
			r = save;
			if (jr_string(&r, NULL, 0) < 0)
				return -1;
			key[0] = '\0';
		}
		jr_ws(&r);
		if (r.p >= r.end || *r.p++ != ':')
			return -1;
		jr_ws(&r);
		if (strcmp(key, "type") == 0)
			str = q->type;
		else if (strcmp(key, "token") == 0)
			str = q->token;
		else if (strcmp(key, "username") == 0)
			str = q->user;
		else if (strcmp(key, "password") == 0)
			str = q->pass;
		else if (strcmp(key, "reverse_token") == 0)
			str = q->reverse;
		if (r.p >= r.end)
			return -1;
		if (jr_word(&r, "null")) {
			/* absent */
		} else if (*r.p == '"') {
			if (strcmp(key, "port") == 0 || strcmp(key, "allow_manage_connector") == 0)
				return -1;
			if (jr_string(&r, str, str ? API_STR_MAX + 1 : 0) < 0)
				return -1;
		} else if (jr_word(&r, "true") || jr_word(&r, "false")) {
			if (str || strcmp(key, "port") == 0)
				return -1;
			if (strcmp(key, "allow_manage_connector") == 0)
				q->amc = r.p[-1] == 'e' && r.p[-2] == 'u';
		} else if (*r.p == '-' || (*r.p >= '0' && *r.p <= '9')) {
			if (jr_number(&r, &num, &is_int) < 0 || str || strcmp(key, "allow_manage_connector") == 0)
				return -1;
			if (strcmp(key, "port") == 0) {
				if (!is_int)
					return -1;
				q->port = num;
			}
		} else {
			return -1;
		}
		jr_ws(&r);
		if (r.p >= r.end)
			return -1;
		if (*r.p == '}') {
			r.p++;
			break;
		}
		if (*r.p++ != ',')
			return -1;
	}
end:
	jr_ws(&r);
	return r.p == r.end ? 0 : -1;
}

static void api_json(ls_sess_t *ss, int status, jbuf_t *b)
{
	http_reply(ss, b->oom ? 500 : status, "application/json", b->oom ? "" : b->p ? b->p : "");
	free(b->p);
}

static void api_fail(ls_sess_t *ss, const char *error)
{
	jbuf_t b = {0};

	jb_puts(&b, "{\"success\":false,\"error\":");
	jb_str(&b, error);
	jb_puts(&b, "}\n");
	api_json(ss, 200, &b);
}

static void api_ok(ls_sess_t *ss, const char *token, bool with_port, long port)
{
	jbuf_t b = {0};

	jb_puts(&b, "{\"success\":true,\"token\":");
	jb_str(&b, token);
	if (with_port) {
		jb_puts(&b, ",\"port\":");
		jb_long(&b, port);
	}
	jb_puts(&b, "}\n");
	api_json(ss, 200, &b);
}

static ls_token_t *find_token(ls_server_t *srv, const char *tok)
{
	for (ls_token_t *t = srv->tokens; t; t = t->next)
		if (strcmp(t->token, tok) == 0)
			return t;
	return NULL;
}

static void api_status(ls_sess_t *ss)
{
	ls_server_t *srv = ss->srv;
	jbuf_t b = {0};
	bool first = true;

	jb_puts(&b, "{\"version\":\"" LS_VERSION_TEXT "\",\"tokens\":[");
	for (ls_token_t *t = srv->tokens; t; t = t->next) {
		long clients = 0;
		bool any = false;

		if (t->kind == TOK_CONNECTOR)
			continue; /* listed under their reverse token */
		for (ls_sess_t *s = srv->sessions; s; s = s->next)
			if (s->tok == t && (s->state == S_FORWARD || s->state == S_PROVIDER))
				clients++;
		jb_puts(&b, first ? "{\"token\":" : ",{\"token\":");
		first = false;
		jb_str(&b, t->token);
		jb_puts(&b, t->kind == TOK_FORWARD ? ",\"type\":\"forward\"" : ",\"type\":\"reverse\"");
		jb_puts(&b, ",\"clients_count\":");
		jb_long(&b, clients);
		if (t->kind == TOK_REVERSE) {
			jb_puts(&b, ",\"port\":");
			jb_long(&b, t->autonomy ? -1 : (long)t->socks.port);
			for (ls_token_t *c = srv->tokens; c; c = c->next) {
				if (c->kind != TOK_CONNECTOR || c->target != t)
					continue;
				jb_puts(&b, any ? "," : ",\"connector_tokens\":[");
				any = true;
				jb_str(&b, c->token);
			}
			if (any)
				jb_puts(&b, "]");
		}
		jb_puts(&b, "}");
	}
	jb_puts(&b, "]}\n");
	api_json(ss, 200, &b);
}

static void gen_token(char out[17])
{
	uint8_t r[8] = {0};

	tb_port_random(r, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void api_add_reverse(ls_sess_t *ss, const api_req_t *q, const char *tok)
{
	ls_server_t *srv = ss->srv;
	ls_token_t *t;
	int rc = 0;

	if (!q->amc && (q->port < 0 || q->port > 65535)) {
		api_fail(ss, "invalid port");
		return;
	}
	if (!(t = token_add(srv, TOK_REVERSE, tok))) {
		api_fail(ss, "out of memory");
		return;
	}
	reverse_init(srv, t);
	t->autonomy = q->amc;
	if (*q->user && *q->pass) { /* §7: used only when both are set */
		t->auth.user = t->user = strdup(q->user);
		t->auth.pass = t->pass = strdup(q->pass);
		if (!t->user || !t->pass) {
			token_remove(srv, t);
			api_fail(ss, "out of memory");
			return;
		}
	}
	t->socks = srv->api_socks;
	if (q->amc) {
		/* §8: port -1 whatever was asked; no SOCKS port (§4.5) */
	} else if (q->port) {
		t->socks.port = (uint16_t)q->port;
		rc = reverse_open(srv, t);
	} else {
		/* §6: a free port drawn from 1024-10240 */
		rc = TB_EINVAL; /* until a try */
		for (int i = 0; i < API_PORT_TRIES && rc < 0 && rc != TB_ENOMEM; i++) {
			uint8_t r[2] = {0};
			tb_port_random(r, sizeof(r));
			t->socks.port = (uint16_t)(API_PORT_MIN + ((r[0] << 8) | r[1]) % (API_PORT_MAX - API_PORT_MIN + 1));
			rc = reverse_open(srv, t);
		}
	}
	if (rc < 0) {
		char why[128];
		snprintf(why, sizeof(why), "cannot listen for SOCKS5: %s", tb_strerror(rc));
		token_remove(srv, t);
		api_fail(ss, why);
		return;
	}
	tb_info("linksocks: API added reverse token %.4s... (SOCKS5 port %ld)", tok,
		q->amc ? -1L : (long)t->socks.port);
	api_ok(ss, tok, true, q->amc ? -1L : (long)t->socks.port);
}

static void api_add(ls_sess_t *ss, const char *body, size_t len)
{
	ls_server_t *srv = ss->srv;
	enum tok_kind kind;
	api_req_t q;
	char gen[17];
	const char *tok;
	ls_token_t *t, *rt = NULL;

	if (api_parse(body, len, &q) < 0) {
		http_reply(ss, 400, "text/plain; charset=utf-8", "invalid request body\n");
		return;
	}
	if (strcmp(q.type, "forward") == 0) {
		kind = TOK_FORWARD;
	} else if (strcmp(q.type, "reverse") == 0) {
		kind = TOK_REVERSE;
	} else if (strcmp(q.type, "connector") == 0) {
		kind = TOK_CONNECTOR;
	} else {
		http_reply(ss, 400, "text/plain; charset=utf-8", "invalid token type\n");
		return;
	}
	tok = q.token;
	if (!*tok) {
		gen_token(gen);
		tok = gen;
	}
	if (strcmp(tok, "anonymous") == 0) {
		api_fail(ss, "anonymous token is not allowed");
		return;
	}
	if (kind == TOK_CONNECTOR) {
		if (!*q.reverse) {
			api_fail(ss, "reverse_token is required for connector token");
			return;
		}
		if (!(rt = find_token(srv, q.reverse)) || rt->kind != TOK_REVERSE) {
			api_fail(ss, "reverse token does not exist");
			return;
		}
	}
	if (find_token(srv, tok)) {
		api_fail(ss, "token already exists");
		return;
	}
	if (kind == TOK_REVERSE) {
		api_add_reverse(ss, &q, tok);
		return;
	}
	if (!(t = token_add(srv, kind, tok))) {
		api_fail(ss, "out of memory");
		return;
	}
	t->target = rt;
	tb_info("linksocks: API added %s token %.4s...", kind == TOK_FORWARD ? "forward" : "connector", tok);
	if (rt)
		agent_retry(srv);
	api_ok(ss, tok, false, 0);
}

static void api_delete(ls_sess_t *ss, const char *tok)
{
	ls_token_t *t = find_token(ss->srv, tok);

	/* §8: success even for unknown tokens */
	if (t) {
		tb_info("linksocks: API removed token %.4s...", tok);
		token_remove(ss->srv, t);
	}
	api_ok(ss, tok, false, 0);
}

/* The path's token, percent-decoded; -1 when it does not fit or is bad. */
static int path_token(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = tb_hexval(p[i + 1])) < 0 || (lo = tb_hexval(p[i + 2])) < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
			if (c == '\0')
				return -1;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

enum api_path { API_NONE, API_STATUS, API_TOKEN, API_TOKEN_ONE };

static enum api_path api_path_of(const tb_http_span_t *target, tb_http_span_t *rest)
{
	const char *q = memchr(target->p, '?', target->len);
	size_t plen = q ? (size_t)(q - target->p) : target->len;

	rest->p = NULL;
	rest->len = 0;
	if (plen == 11 && memcmp(target->p, "/api/status", 11) == 0)
		return API_STATUS;
	if (plen == 10 && memcmp(target->p, "/api/token", 10) == 0)
		return API_TOKEN;
	if (plen > 11 && memcmp(target->p, "/api/token/", 11) == 0) {
		rest->p = target->p + 11;
		rest->len = plen - 11;
		return API_TOKEN_ONE;
	}
	return API_NONE;
}

/* 0: the whole body is here (*body, *len); TB_EAGAIN: wait for more;
 * else the status to reply with. */
static int api_body(ls_sess_t *ss, const tb_http_request_t *r, const char **body, size_t *len)
{
	const tb_http_span_t *cl = tb_http_header_get(r, "Content-Length");
	size_t have = tb_buf_len(&ss->head) - r->head_len, want = 0;

	if (tb_http_header_get(r, "Transfer-Encoding"))
		return 400; /* only Content-Length bodies */
	if (cl) {
		if (cl->len == 0 || cl->len > 7)
			return cl->len > 7 ? 413 : 400;
		for (size_t i = 0; i < cl->len; i++) {
			if (cl->p[i] < '0' || cl->p[i] > '9')
				return 400;
			want = want * 10 + (size_t)(cl->p[i] - '0');
		}
	}
	if (want > API_BODY_MAX)
		return 413;
	if (have < want)
		return TB_EAGAIN;
	*body = (const char *)tb_buf_pullup(&ss->head, tb_buf_len(&ss->head)) + r->head_len;
	*len = want;
	return 0;
}

/* Returns TB_EAGAIN while the body is incomplete. */
static int api_route(ls_sess_t *ss, const tb_http_request_t *r, enum api_path ap, const tb_http_span_t *rest)
{
	const tb_http_span_t *key = tb_http_header_get(r, "X-API-Key");
	const char *k = ss->srv->api_key, *body = NULL;
	bool get = tb_http_span_eq(&r->method, "GET"), post = tb_http_span_eq(&r->method, "POST"),
	     del = tb_http_span_eq(&r->method, "DELETE");
	char tok[API_STR_MAX + 1];
	size_t len = 0;
	int rc;

	/* Constant time: the key's length is all a wrong guess learns. */
	if (!key || !tb_ct_equal(key->p, key->len, k, strlen(k))) {
		http_reply(ss, 401, "text/plain; charset=utf-8", "{\"success\":false,\"error\":\"invalid API key\"}\n");
		return 0;
	}
	if ((ap == API_STATUS && !get) || (ap == API_TOKEN && !post && !del) || (ap == API_TOKEN_ONE && !del)) {
		http_reply(ss, 405, "text/plain; charset=utf-8", "");
		return 0;
	}
	if (ap == API_STATUS) {
		api_status(ss);
		return 0;
	}
	if ((rc = api_body(ss, r, &body, &len)) == TB_EAGAIN)
		return rc;
	if (rc > 0) {
		http_reply(ss, rc, "text/plain; charset=utf-8",
			   rc == 413 ? "request body too large\n" : "invalid request body\n");
		return 0;
	}
	if (ap == API_TOKEN_ONE) {
		if (path_token(rest->p, rest->len, tok, sizeof(tok)) < 0) {
			http_reply(ss, 400, "text/plain; charset=utf-8", "invalid request body\n");
			return 0;
		}
		api_delete(ss, tok);
		return 0;
	}
	if (post) {
		api_add(ss, body, len);
		return 0;
	}
	api_req_t q;
	if (api_parse(body, len, &q) < 0) {
		http_reply(ss, 400, "text/plain; charset=utf-8", "invalid request body\n");
		return 0;
	}
	api_delete(ss, q.token);
	return 0;
}

/* Returns TB_EAGAIN while an API request's body is incomplete. */
static int route_request(ls_sess_t *ss, const tb_http_request_t *r)
{
	tb_http_span_t query, rest;
	enum api_path ap;

	if (r->target.len == 1 && r->target.p[0] == '/') {
		http_reply(ss, 200, "text/plain; charset=utf-8",
			   ss->srv->api_key ? "LinkSocks " LS_VERSION_TEXT " is running. API endpoints available at /api/*\n"
					    : "LinkSocks " LS_VERSION_TEXT " is running but API is not enabled.\n");
		return 0;
	}
	if (path_is_socket(&r->target, &query)) {
		upgrade(ss, r);
		return 0;
	}
	if (ss->srv->api_key && (ap = api_path_of(&r->target, &rest)) != API_NONE)
		return api_route(ss, r, ap, &rest);
	http_reply(ss, 404, "text/plain; charset=utf-8", "404 page not found\n");
	return 0;
}

static void http_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	ls_sess_t *ss = ctx;
	tb_http_request_t r;
	const uint8_t *p;
	int rc;

	if (ss->state != S_HTTP)
		return; /* after a reply: discard until EOF */
	if (tb_buf_len(&ss->head) + n > TB_HTTP_HEAD_MAX + 65536 || tb_buf_append(&ss->head, d, n) < 0) {
		sess_free(ss);
		return;
	}
	p = tb_buf_pullup(&ss->head, tb_buf_len(&ss->head));
	rc = tb_http_request_parse(p, tb_buf_len(&ss->head), &r);
	if (rc == TB_EAGAIN)
		return;
	if (rc < 0) {
		http_reply(ss, tb_http_status_from_parse(rc), "text/plain", "bad request\n");
		return;
	}
	(void)route_request(ss, &r); /* TB_EAGAIN: more body to come */
}

static void http_eof(void *ctx, tb_stream_t *s)
{
	sess_free(ctx);
}

static void http_close(void *ctx, tb_stream_t *s, int err)
{
	sess_free(ctx);
}

static const tb_stream_handler_t http_handler = {http_data, NULL, http_eof, http_close};

static void start_session(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer)
{
	ls_server_t *srv = tb_gw_listener_priv(l);
	ls_sess_t *ss = calloc(1, sizeof(*ss));
	tb_loop_t *loop = tb_gw_loop(l);

	if (!ss) {
		tb_stream_close(s);
		return;
	}
	ss->srv = srv;
	ss->s = s;
	ss->peer = *peer;
	tb_buf_init(&ss->head);
	tb_timer_init(&ss->timer, sess_timer, ss);
	tb_timer_start(loop, &ss->timer, tb_gw_handshake_timeout_ms(l));
	ss->next = srv->sessions;
	if (ss->next)
		ss->next->prev = ss;
	srv->sessions = ss;
	tb_gw_session_hold(l, &ss->gs, sess_cancel, ss);
	ss->held = true;
	tb_stream_set_handler(s, &http_handler, ss);
}

#if ENABLE_TLS
static void serve_tls(tb_gw_listener_t *l, ls_server_t *srv, tb_stream_t *s, const tb_addr_t *peer)
{
	tb_stream_t *tls;

	if (tb_tls_wrap(tb_gw_loop(l), srv->tls, s, NULL, NULL, NULL, &tls) < 0) {
		tb_stream_close(s);
		return;
	}
	start_session(l, tls, peer);
}
#endif

static void ls_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *initial, size_t n)
{
#if ENABLE_TLS
	ls_server_t *srv = tb_gw_listener_priv(l);
	if (srv->tls) {
		serve_tls(l, srv, s, peer);
		return;
	}
#endif
	start_session(l, s, peer);
}

/* ---- configuration ---- */

static ls_token_t *token_add(ls_server_t *srv, enum tok_kind kind, const char *tok)
{
	ls_token_t *t = calloc(1, sizeof(*t));

	if (!t || !(t->token = strdup(tok)) || tb_ls_token_hash(tok, strlen(tok), t->hex) < 0) {
		if (t)
			free(t->token);
		free(t);
		return NULL;
	}
	t->kind = kind;
	t->next = srv->tokens;
	srv->tokens = t;
	return t;
}

static int token_check(const tb_conf_val_t *v, const char *tok, tb_conf_err_t *err)
{
	size_t n = strlen(tok);

	/* §2.3: "anonymous" is what an empty -t sends; the reference refuses
	 * to register it. §3.1: tokens travel as short strings. */
	if (n == 0 || n > TB_LS_STR_MAX || strcmp(tok, "anonymous") == 0) {
		tb_conf_set_err(err, v, "a token must be 1 to 255 bytes and not \"anonymous\"");
		return TB_EINVAL;
	}
	return 0;
}

static void reverse_init(ls_server_t *srv, ls_token_t *rt)
{
	rt->pool.c.ops = &pool_ops;
	rt->pool.tok = rt;
	rt->waitq.pick = pick_provider;
	rt->waitq.ctx = rt;
	rt->waitq.wait_ms = 10000; /* §5, §11: then REP 3 */
	rt->waitq.fast_open = srv->fast_open;
}

/* Opens a reverse token's SOCKS5 port (its address in t->socks). */
static int reverse_open(ls_server_t *srv, ls_token_t *t)
{
	tb_gw_listener_t *l = srv->l;
	char name[64];

	t->pool.c.env = tb_gw_env(tb_gw_of(l));
	t->waitq.loop = tb_gw_loop(l);
	snprintf(name, sizeof(name), "%s/reverse-%.4s", tb_gw_listener_name(l), t->token);
	free(t->pool_name);
	if (!(t->pool_name = strdup(name)))
		return TB_ENOMEM;
	t->pool.c.name = t->pool_name;
	return tb_gw_listener_add(tb_gw_of(l), name, "socks5", &t->socks, t->auth.user ? &t->auth : NULL,
				  &t->pool.c, &t->socks_l);
}

static int load_reverse(ls_server_t *srv, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	const char *tok, *socks = "127.0.0.1:9870", *user = NULL, *pass = NULL;
	ls_token_t *rt;
	int rc;

	if ((rc = tb_conf_need_str(t, "token", &tok, err)) < 0 ||
	    (rc = token_check(tb_conf_get(t, "token"), tok, err)) < 0)
		return rc;
	bool autonomy = false;

	if ((rc = tb_conf_get_bool(t, "autonomy", &autonomy, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (((rc = tb_conf_get_str(t, "socks", &socks, err)) < 0 && rc != TB_ENOENT) ||
	    ((rc = tb_conf_get_str(t, "user", &user, err)) < 0 && rc != TB_ENOENT) ||
	    ((rc = tb_conf_get_str(t, "pass", &pass, err)) < 0 && rc != TB_ENOENT))
		return rc;
	if (!(rt = token_add(srv, TOK_REVERSE, tok)))
		return TB_ENOMEM;
	rt->autonomy = autonomy;
	if (tb_addr_parse(socks, &rt->socks, false) < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "socks"), "expected ip:port, got '%s'", socks);
		return TB_EINVAL;
	}
	/* §7: used only when both are set. */
	if (user && pass && *user && *pass) {
		rt->auth.user = rt->user = strdup(user);
		rt->auth.pass = rt->pass = strdup(pass);
		if (!rt->user || !rt->pass)
			return TB_ENOMEM;
	}
	reverse_init(srv, rt);
	return 0;
}

/* [[listener.connector]] token = "C", reverse = "R" (agent mode, §1). */
static int load_connector_token(ls_server_t *srv, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	const char *tok, *rev;
	ls_token_t *ct, *rt = NULL;
	int rc;

	if ((rc = tb_conf_need_str(t, "token", &tok, err)) < 0 ||
	    (rc = token_check(tb_conf_get(t, "token"), tok, err)) < 0 ||
	    (rc = tb_conf_need_str(t, "reverse", &rev, err)) < 0)
		return rc;
	for (ls_token_t *x = srv->tokens; x; x = x->next)
		if (x->kind == TOK_REVERSE && strcmp(x->token, rev) == 0)
			rt = x;
	if (!rt) {
		tb_conf_set_err(err, tb_conf_get(t, "reverse"), "no [[listener.reverse]] with token '%s'", rev);
		return TB_EINVAL;
	}
	if (!(ct = token_add(srv, TOK_CONNECTOR, tok)))
		return TB_ENOMEM;
	ct->target = rt;
	return 0;
}

static int ls_init(tb_gw_listener_t *l, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	ls_server_t *srv = calloc(1, sizeof(*srv));
	tb_conf_val_t *v;
	int rc;

	if (!srv)
		return TB_ENOMEM;
	srv->l = l;
	tb_gw_listener_set_priv(l, srv);
	if ((rc = tb_conf_get_bool(t, "fast_open", &srv->fast_open, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if ((rc = tb_ls_mux_opts_conf(&srv->mo, t, err)) < 0)
		return rc;
	if ((v = tb_conf_get(t, "tokens"))) {
		if (v->type != TB_CONF_ARRAY) {
			tb_conf_set_err(err, v, "expected an array of strings");
			return TB_EINVAL;
		}
		for (tb_conf_val_t *e = v->u.list.first; e; e = e->next) {
			if (e->type != TB_CONF_STRING) {
				tb_conf_set_err(err, e, "expected a string");
				return TB_EINVAL;
			}
			if ((rc = token_check(e, e->u.str.s, err)) < 0)
				return rc;
			if (!token_add(srv, TOK_FORWARD, e->u.str.s))
				return TB_ENOMEM;
		}
	}
	if ((v = tb_conf_get(t, "reverse"))) {
		if (v->type != TB_CONF_ARRAY) {
			tb_conf_set_err(err, v, "expected [[listener.reverse]] tables");
			return TB_EINVAL;
		}
		for (tb_conf_val_t *e = v->u.list.first; e; e = e->next)
			if ((rc = load_reverse(srv, e, err)) < 0)
				return rc;
	}
	if ((v = tb_conf_get(t, "connector"))) {
		if (v->type != TB_CONF_ARRAY) {
			tb_conf_set_err(err, v, "expected [[listener.connector]] tables");
			return TB_EINVAL;
		}
		for (tb_conf_val_t *e = v->u.list.first; e; e = e->next)
			if ((rc = load_connector_token(srv, e, err)) < 0)
				return rc;
	}
	const char *apikey = NULL, *ash = "127.0.0.1";
	if (((rc = tb_conf_get_str(t, "api_key", &apikey, err)) < 0 && rc != TB_ENOENT) ||
	    ((rc = tb_conf_get_str(t, "api_socks_host", &ash, err)) < 0 && rc != TB_ENOENT))
		return rc;
	if (apikey && *apikey && !(srv->api_key = strdup(apikey)))
		return TB_ENOMEM;
	if (tb_addr_parse_ip(ash, &srv->api_socks) < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "api_socks_host"), "expected an IP address, got '%s'", ash);
		return TB_EINVAL;
	}
	if (!srv->tokens && !srv->api_key) {
		tb_conf_set_err(err, t, "a linksocks listener needs `tokens`, [[listener.reverse]] or `api_key`");
		return TB_EINVAL;
	}
#if ENABLE_TLS
	const char *cert = NULL, *key = NULL;
	if (((rc = tb_conf_get_str(t, "tls_cert", &cert, err)) < 0 && rc != TB_ENOENT) ||
	    ((rc = tb_conf_get_str(t, "tls_key", &key, err)) < 0 && rc != TB_ENOENT))
		return rc;
	if (cert || key) {
		tb_tls_opts_t to = {.role = TB_TLS_SERVER, .cert_file = cert, .key_file = key};
		if (tb_tls_config_new(&to, &srv->tls, err->msg, sizeof(err->msg)) < 0) {
			tb_conf_set_err(err, tb_conf_get(t, cert ? "tls_cert" : "tls_key"), "TLS: %s", err->msg);
			return TB_EINVAL;
		}
	}
#endif
	return 0;
}

static int ls_start(tb_gw_listener_t *l)
{
	ls_server_t *srv = tb_gw_listener_priv(l);
	int rc;

	/* Each reverse token's SOCKS5 port. The reference opens it when the
	 * first provider arrives; opening it now lets a client that comes
	 * first wait for a provider (§11) instead of being refused. */
	for (ls_token_t *t = srv->tokens; t; t = t->next) {
		/* §4.5: an autonomy token has no SOCKS port (-1): its providers'
		 * connectors reach them. */
		if (t->kind != TOK_REVERSE || t->autonomy)
			continue;
		if ((rc = reverse_open(srv, t)) < 0)
			return rc;
	}
	return 0;
}

static void ls_free(tb_gw_listener_t *l)
{
	ls_server_t *srv = tb_gw_listener_priv(l);

	if (!srv)
		return;
	while (srv->sessions)
		sess_free(srv->sessions);
	while (srv->agent)
		agent_unlink(&srv->agent);
	while (srv->tokens) {
		ls_token_t *t = srv->tokens;
		srv->tokens = t->next;
		token_free(t);
	}
	while (srv->dead) {
		ls_token_t *t = srv->dead;
		srv->dead = t->next;
		token_free(t);
	}
	free(srv->api_key);
#if ENABLE_TLS
	tb_tls_config_free(srv->tls);
#endif
	free(srv);
	tb_gw_listener_set_priv(l, NULL);
}

const tb_gw_proto_t tb_linksocks_server_proto = {
	.name = "linksocks",
	.serve = ls_serve,
	.init = ls_init,
	.start = ls_start,
	.free = ls_free,
};
