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
	ls_token_t *tokens;
	ls_sess_t *sessions;
	agent_ch_t *agent;
	unsigned agent_waiting;
	bool fast_open;
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

static void token_remove(ls_server_t *srv, ls_token_t *t)
{
	ls_token_t **pp;

	/* Removing a token disconnects the connectors using it (§4.5). */
	for (ls_sess_t *s = srv->sessions, *next; s; s = next) {
		next = s->next;
		if (s->tok == t)
			sess_free(s);
	}
	for (pp = &srv->tokens; *pp && *pp != t; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = t->next;
	free(t->token);
	free(t);
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
	tb_ls_mux_opts_t o = {0};
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
	n = tb_http_response_build(head, sizeof(head), status, extra);
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

static void route_request(ls_sess_t *ss, const tb_http_request_t *r)
{
	tb_http_span_t query;

	if (r->target.len == 1 && r->target.p[0] == '/') {
		http_reply(ss, 200, "text/plain; charset=utf-8",
			   "LinkSocks " LS_VERSION_TEXT " is running but API is not enabled.\n");
		return;
	}
	if (path_is_socket(&r->target, &query)) {
		upgrade(ss, r);
		return;
	}
	http_reply(ss, 404, "text/plain; charset=utf-8", "404 page not found\n");
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
	route_request(ss, &r);
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
	rt->pool.c.ops = &pool_ops;
	rt->pool.tok = rt;
	rt->waitq.pick = pick_provider;
	rt->waitq.ctx = rt;
	rt->waitq.wait_ms = 10000; /* §5, §11: then REP 3 */
	rt->waitq.fast_open = srv->fast_open;
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
	if (!srv->tokens) {
		tb_conf_set_err(err, t, "a linksocks listener needs `tokens` or [[listener.reverse]]");
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
	char name[64];
	int rc;

	/* Each reverse token's SOCKS5 port. The reference opens it when the
	 * first provider arrives; opening it now lets a client that comes
	 * first wait for a provider (§11) instead of being refused. */
	for (ls_token_t *t = srv->tokens; t; t = t->next) {
		/* §4.5: an autonomy token has no SOCKS port (-1): its providers'
		 * connectors reach them. */
		if (t->kind != TOK_REVERSE || t->autonomy)
			continue;
		t->pool.c.env = tb_gw_env(tb_gw_of(l));
		t->waitq.loop = tb_gw_loop(l);
		snprintf(name, sizeof(name), "%s/reverse-%.4s", tb_gw_listener_name(l), t->token);
		if (!(t->pool_name = strdup(name)))
			return TB_ENOMEM;
		t->pool.c.name = t->pool_name;
		rc = tb_gw_listener_add(tb_gw_of(l), name, "socks5", &t->socks, t->auth.user ? &t->auth : NULL,
					&t->pool.c, &t->socks_l);
		if (rc < 0)
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
		tb_ls_waitq_clear(&t->waitq);
		free(t->pool_name);
		free(t->token);
		free(t->user);
		free(t->pass);
		free(t);
	}
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
