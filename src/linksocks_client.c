/* linksocks_client.c: the LinkSocks client roles.
 *
 *   [[connector]] proto = "linksocks"            forward client: flows routed to this
 *                                                connector open channels on the server
 *   [[listener]]  proto = "linksocks-provider"   provider (`client -r`): the server's
 *                                                Connects become flows through `router`
 *   url = "ws://host:8765", token = "...", threads = 1, fast_open = false,
 *   reconnect = true, retry_auth = false, ca_file = "...", insecure = false,
 *   connector_token = "..." (provider: registered after every auth, §4.5),
 *   proxy = "http://[user:pass@]host[:port]" or "socks5://..." (the WebSocket
 *   dial goes through it; "" or absent: direct)
 *
 * Each of `threads` WebSockets (§2.6) dials (directly, or through the proxy
 * with CONNECT), upgrades, follows up to 5 redirects (§2.2), authenticates
 * (URL query on exactly /socket, else a binary Auth: §2.3, decided by the
 * final path) and then carries a mux. A lost WebSocket fails its channels at
 * once and is redialled from the configured URL with exponential backoff and
 * full jitter (§11).
 *
 * The pure parts (URL, redirects, the proxy choice: linksocks_client.h)
 * come first and build alone (-DTB_FUZZ_CODEC_ONLY); the roles follow. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tb/linksocks.h"
#include "tb/linksocks_client.h"
#include "tb/log.h"
#include "tb/ws.h"
#if ENABLE_TLS
#include "tb/tls.h"
#endif
#if ENABLE_CONN_UPSTREAM
#include "tb/upstream.h"
#endif

/* ---- the URL (§2.2), redirects ---- */

static bool is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 3986 §3.1: the length of a "scheme:" prefix, 0 when there is none. */
static size_t scheme_len(const char *p)
{
	size_t i = 0;

	if (!is_alpha((unsigned char)p[0]))
		return 0;
	while (is_alpha((unsigned char)p[i]) || (p[i] >= '0' && p[i] <= '9') || p[i] == '+' || p[i] == '-' ||
	       p[i] == '.')
		i++;
	return p[i] == ':' ? i : 0;
}

static bool word_is(const char *p, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(p, w, n) == 0;
}

/* §2.2: http(s) is ws(s). */
static int set_scheme(tb_ls_url_t *u, const char *p, size_t n)
{
	if (word_is(p, n, "ws") || word_is(p, n, "http"))
		u->tls = false;
	else if (word_is(p, n, "wss") || word_is(p, n, "https"))
		u->tls = true;
	else
		return TB_ENOTSUP;
	return 0;
}

/* The authority at p, up to "/?#" or the end; *rest: what follows it. */
static int set_authority(tb_ls_url_t *u, const char *p, const char **rest)
{
	size_t n = strcspn(p, "/?#");
	tb_target_t t;
	int rc;

	if (n == 0)
		return TB_EINVAL;
	if (n >= sizeof(u->hosthdr))
		return TB_ERANGE;
	if ((rc = tb_http_authority_parse(p, n, u->tls ? 443 : 80, &t)) < 0)
		return rc == TB_ERANGE ? rc : TB_EINVAL;
	memcpy(u->hosthdr, p, n);
	u->hosthdr[n] = '\0';
	memcpy(u->host, t.host, strlen(t.host) + 1);
	u->port = t.port;
	*rest = p + n;
	return 0;
}

/* Copies p[0..n) into out, %-encoding the bytes a request line cannot
 * carry (Go escapes them the same way). */
static int put_encoded(char *out, size_t cap, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch > 0x20 && ch < 0x7f) {
			if (o + 1 >= cap)
				return TB_ERANGE;
			out[o++] = (char)ch;
			continue;
		}
		if (o + 3 >= cap)
			return TB_ERANGE;
		out[o++] = '%';
		out[o++] = hex[ch >> 4];
		out[o++] = hex[ch & 15];
	}
	out[o] = '\0';
	return 0;
}

/* RFC 3986 §5.2.4 remove_dot_segments, in place: the result is never
 * longer than the input. */
static void remove_dots(char *path)
{
	char out[TB_LS_PATH_MAX];
	const char *in = path;
	size_t o = 0;

	while (*in) {
		if (strncmp(in, "../", 3) == 0) {
			in += 3;
		} else if (strncmp(in, "./", 2) == 0 || strncmp(in, "/./", 3) == 0) {
			in += 2;
		} else if (strcmp(in, "/.") == 0) {
			out[o++] = '/';
			break;
		} else if (strncmp(in, "/../", 4) == 0 || strcmp(in, "/..") == 0) {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			if (in[3] == '\0') {
				out[o++] = '/';
				break;
			}
			in += 3;
		} else if (strcmp(in, ".") == 0 || strcmp(in, "..") == 0) {
			break;
		} else {
			do
				out[o++] = *in++;
			while (*in && *in != '/');
		}
	}
	memcpy(path, out, o);
	path[o] = '\0';
}

/* The path: dir[0..dlen) followed by p[0..n), dot segments removed for a
 * reference (a configured URL's path is sent as written, as Go does). */
static int set_path(tb_ls_url_t *u, const char *dir, size_t dlen, const char *p, size_t n, bool dots)
{
	char raw[TB_LS_PATH_MAX];
	int rc;

	if (dlen >= sizeof(raw))
		return TB_ERANGE;
	memcpy(raw, dir, dlen);
	if ((rc = put_encoded(raw + dlen, sizeof(raw) - dlen, p, n)) < 0)
		return rc;
	if (dots)
		remove_dots(raw);
	if (raw[0] != '/')
		return TB_EINVAL;
	memcpy(u->path, raw, strlen(raw) + 1);
	return 0;
}

/* Splits [path][?query][#fragment]: the path's length, and the query
 * (*q NULL when there is no '?'). */
static size_t split_ref(const char *p, const char **q, size_t *qlen)
{
	size_t end = strcspn(p, "#"), plen = strcspn(p, "?#");

	*q = p[plen] == '?' ? p + plen + 1 : NULL;
	*qlen = *q ? end - plen - 1 : 0;
	return plen;
}

int tb_ls_url_parse(const char *url, tb_ls_url_t *u)
{
	const char *sep = strstr(url, "://"), *rest, *q;
	size_t plen, qlen;
	int rc;

	memset(u, 0, sizeof(*u));
	/* §2.2: no scheme means wss://. */
	rc = sep ? set_scheme(u, url, (size_t)(sep - url)) : set_scheme(u, "wss", 3);
	if (rc == 0)
		rc = set_authority(u, sep ? sep + 3 : url, &rest);
	if (rc < 0)
		return rc == TB_ERANGE ? rc : TB_EINVAL;
	plen = split_ref(rest, &q, &qlen);
	if (plen == 0 || (plen == 1 && rest[0] == '/'))
		rc = set_path(u, "/socket", 7, "", 0, false); /* §2.2 */
	else
		rc = set_path(u, "", 0, rest, plen, false);
	if (rc == 0)
		rc = put_encoded(u->query, sizeof(u->query), q ? q : "", qlen);
	return rc;
}

int tb_ls_url_resolve(const tb_ls_url_t *base, const char *loc, tb_ls_url_t *out)
{
	size_t slen = scheme_len(loc), plen, qlen;
	const char *rest = loc, *q, *slash;
	bool authority = false;
	int rc = 0;

	if (!*loc)
		return TB_EINVAL; /* Go follows no redirect without a Location */
	*out = *base;
	if (slen) {
		if (strncmp(loc + slen, "://", 3) != 0)
			return TB_EINVAL;
		if ((rc = set_scheme(out, loc, slen)) < 0)
			return rc;
		rc = set_authority(out, loc + slen + 3, &rest);
		authority = true;
	} else if (loc[0] == '/' && loc[1] == '/') {
		rc = set_authority(out, loc + 2, &rest); /* network-path: the base's scheme */
		authority = true;
	}
	if (rc < 0)
		return rc;
	plen = split_ref(rest, &q, &qlen);
	/* RFC 3986 §5.2.2: a reference without path keeps the base's path, and
	 * its query too unless it has one. */
	if (authority && plen == 0)
		rc = set_path(out, "/", 1, "", 0, false);
	else if (!authority && plen == 0)
		return q ? put_encoded(out->query, sizeof(out->query), q, qlen) : 0;
	else if (rest[0] == '/')
		rc = set_path(out, "", 0, rest, plen, true);
	else if ((slash = strrchr(base->path, '/')) != NULL) /* §5.2.3 merge */
		rc = set_path(out, base->path, (size_t)(slash - base->path) + 1, rest, plen, true);
	else
		rc = TB_EINVAL;
	if (rc == 0)
		rc = put_encoded(out->query, sizeof(out->query), q ? q : "", qlen);
	return rc;
}

bool tb_ls_is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* ---- the proxy (§2.2), decided as Go's http.ProxyFromEnvironment ---- */

/* An IPv4-mapped IPv6 address as IPv4: Go's net.IP compares them equal. */
static void unmap_v4(tb_addr_t *a)
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (a->family == TB_AF_INET6 && memcmp(a->ip, pfx, sizeof(pfx)) == 0) {
		memmove(a->ip, a->ip + 12, 4);
		memset(a->ip + 4, 0, 12);
		a->family = TB_AF_INET;
	}
}

static bool is_loopback(const tb_addr_t *a)
{
	static const uint8_t v6[16] = {[15] = 1};

	return a->family == TB_AF_INET ? a->ip[0] == 127 : memcmp(a->ip, v6, 16) == 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	return rest == 0 || ((a[whole] ^ b[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* "a.b.c.d/n" or "v6/n" against the target's IP. */
static bool cidr_match(char *e, char *slash, const tb_addr_t *ip)
{
	tb_addr_t a;
	unsigned bits = 0;
	const char *p = slash + 1;

	*slash = '\0';
	if (!*p || strlen(p) > 3 || tb_addr_parse_ip(e, &a) < 0)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		bits = bits * 10 + (unsigned)(*p - '0');
	}
	if (bits > (a.family == TB_AF_INET ? 32u : 128u))
		return false;
	if (a.family == TB_AF_INET6 && bits >= 96) {
		tb_addr_t m = a;
		unmap_v4(&m);
		if (m.family == TB_AF_INET) {
			a = m;
			bits -= 96;
		}
	}
	return ip && a.family == ip->family && prefix_equal(a.ip, ip->ip, bits);
}

/* One NO_PROXY entry, trimmed and lower case (and cut up here). */
static bool no_proxy_match(char *e, const char *host, const tb_addr_t *ip, const char *port)
{
	char *h = e, *pp = NULL, *colon, *rb, *slash;
	size_t hl, n = strlen(host);
	tb_addr_t a;

	if (strcmp(e, "*") == 0)
		return true;
	if ((slash = strchr(e, '/')) != NULL)
		return cidr_match(e, slash, ip);
	/* net.SplitHostPort: "[v6]:port", "host:port"; else the whole entry. */
	if (e[0] == '[' && (rb = strchr(e, ']')) != NULL && rb[1] == ':') {
		*rb = '\0';
		h = e + 1;
		pp = rb + 2;
	} else if (e[0] != '[' && (colon = strchr(e, ':')) != NULL && !strchr(colon + 1, ':')) {
		*colon = '\0';
		pp = colon + 1;
	}
	if (!*h)
		return false;
	if (pp && *pp && strcmp(pp, port) != 0)
		return false;
	if (tb_addr_parse_ip(h, &a) == 0) {
		unmap_v4(&a);
		return ip && a.family == ip->family &&
		       memcmp(a.ip, ip->ip, a.family == TB_AF_INET ? 4 : 16) == 0;
	}
	/* "d" matches d and its subdomains, ".d" and "*.d" subdomains only. */
	if (h[0] == '*' && h[1] == '.')
		h++;
	hl = strlen(h);
	if (h[0] != '.' && n == hl && strcmp(host, h) == 0)
		return true;
	if (h[0] != '.')
		return n > hl && host[n - hl - 1] == '.' && strcmp(host + n - hl, h) == 0;
	return n >= hl && strcmp(host + n - hl, h) == 0;
}

bool tb_ls_proxy_bypass(const char *no_proxy, const char *host, uint16_t port)
{
	char h[TB_HOST_MAX + 1], e[TB_HOST_MAX + 16], ps[8];
	const char *p = no_proxy;
	tb_addr_t a;
	bool is_ip;
	size_t n = strlen(host);

	if (n >= sizeof(h))
		return false;
	for (size_t i = 0; i <= n; i++)
		h[i] = (char)tolower((unsigned char)host[i]);
	/* Go's rule: never through a proxy to localhost or a loopback address
	 * (Go compares "localhost" case-sensitively; any case is loopback). */
	if (strcmp(h, "localhost") == 0)
		return true;
	is_ip = tb_addr_parse_ip(h, &a) == 0;
	if (is_ip) {
		unmap_v4(&a);
		if (is_loopback(&a))
			return true;
	}
	snprintf(ps, sizeof(ps), "%u", port);
	while (p && *p) {
		size_t len = strcspn(p, ",");
		const char *s = p, *end = p + len;

		p = *end ? end + 1 : end;
		while (s < end && isspace((unsigned char)*s))
			s++;
		while (end > s && isspace((unsigned char)end[-1]))
			end--;
		if (s == end || (size_t)(end - s) >= sizeof(e))
			continue;
		for (size_t i = 0; s + i < end; i++)
			e[i] = (char)tolower((unsigned char)s[i]);
		e[end - s] = '\0';
		if (no_proxy_match(e, h, is_ip ? &a : NULL, ps))
			return true;
	}
	return false;
}

int tb_ls_proxy_url(const char *in, char *out, size_t cap)
{
	const char *sep = strstr(in, "://"), *auth = in, *end, *at = NULL, *hp;
	int kind = TB_LS_PROXY_HTTP, n;
	size_t hl = 0;
	tb_target_t t;

	if (!*in)
		return TB_LS_PROXY_NONE;
	if (sep) {
		size_t sl = (size_t)(sep - in);
		if (word_is(in, sl, "https"))
			return TB_ENOTSUP;
		if (word_is(in, sl, "socks5") || word_is(in, sl, "socks5h"))
			kind = TB_LS_PROXY_SOCKS5;
		else if (!word_is(in, sl, "http"))
			return TB_EINVAL;
		auth = sep + 3;
	}
	/* Go ignores a proxy URL's path. */
	end = auth + strcspn(auth, "/?#");
	for (const char *p = auth; p < end; p++) {
		/* Go's url.Parse refuses these too; what stays can be quoted. */
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
			return TB_EINVAL;
		if (*p == '@')
			at = p;
	}
	hp = at ? at + 1 : auth;
	if (tb_http_authority_parse(hp, (size_t)(end - hp), kind == TB_LS_PROXY_HTTP ? 80 : 1080, &t) < 0)
		return TB_EINVAL;
	if (hp[0] == '[')
		hl = (size_t)((const char *)memchr(hp, ']', (size_t)(end - hp)) - hp) + 1;
	else
		while (hp + hl < end && hp[hl] != ':')
			hl++;
	n = snprintf(out, cap, "%s://%.*s%s%.*s:%u", kind == TB_LS_PROXY_HTTP ? "http" : "socks5",
		     at ? (int)(at - auth) : 0, auth, at ? "@" : "", (int)hl, hp, t.port);
	if (n < 0 || (size_t)n >= cap)
		return TB_ERANGE;
	return kind;
}

int tb_ls_proxy_for(const tb_ls_url_t *u, const char *http_proxy, const char *https_proxy,
		    const char *no_proxy, char *out, size_t cap)
{
	const char *v = u->tls ? https_proxy : http_proxy;

	if (!v || !*v || tb_ls_proxy_bypass(no_proxy, u->host, u->port))
		return TB_LS_PROXY_NONE;
	return tb_ls_proxy_url(v, out, cap);
}

#ifndef TB_FUZZ_CODEC_ONLY /* the fuzzer drives the parsers above alone */

#define HANDSHAKE_MS 45000u /* §2.2, the whole dial with its redirects */
#define KEEPALIVE_MS 25000u /* §11: provider pong 25 s, client ping 30 s */
#define READ_DEADLINE_MS 90000u
#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_CAP_MS 60000u /* §11: 60 s on routers */
#define STABLE_MS 30000u      /* authenticated this long: the backoff resets */
#define MAX_THREADS 64

typedef struct ls_client ls_client_t;

enum conn_state {
	C_IDLE,
	C_DIAL,
	C_WS,
	C_AUTH,
	C_UP
};

typedef struct ls_conn {
	ls_client_t *cl;
	enum conn_state state;
	tb_dns_query_t *dq;
	tb_tcp_connect_t *tc;
	tb_connect_req_t *pq; /* the dial through the proxy */
	tb_ws_t *ws;
	tb_ls_mux_t *mux;
	tb_ls_url_t *redir; /* where a redirect pointed (NULL: the configured URL) */
	unsigned redirects; /* followed in this attempt */
	tb_timer_t timer;   /* handshake, keepalive, or the next dial */
	tb_timer_t reg;	    /* autonomy: (re)send Connector{add} */
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
	tb_ls_url_t url;       /* as configured; every attempt starts here */
	bool fast_open, reconnect, retry_auth, stopped, insecure;
	uint8_t instance[TB_LS_UUID_LEN];
	unsigned nconns, rr;
	ls_conn_t *conns;
	tb_ls_waitq_t waitq;
	tb_defer_t start;
	tb_connector_t *proxy; /* the WebSocket dial's proxy, or NULL */
	char proxy_desc[TB_HOST_MAX + 32];
	char *ca_file;
#if ENABLE_TLS
	tb_tls_config_t *tlscfg; /* made on the first wss dial (or at start for wss) */
#endif
};

static void conn_dial(ls_conn_t *k);

/* ---- one WebSocket ---- */

static const tb_ls_url_t *conn_url(const ls_conn_t *k)
{
	return k->redir ? k->redir : &k->cl->url;
}

/* Drops the dial or the WebSocket in progress; the timers stay. */
static void conn_release(ls_conn_t *k)
{
	tb_dns_cancel(k->dq);
	k->dq = NULL;
	tb_tcp_connect_cancel(k->tc);
	k->tc = NULL;
	if (k->pq)
		tb_connector_cancel(k->cl->proxy, k->pq);
	k->pq = NULL;
	if (k->mux)
		tb_ls_mux_free(k->mux, TB_ENETUNREACH);
	k->mux = NULL;
	if (k->ws)
		tb_ws_free(k->ws);
	k->ws = NULL;
}

static void conn_stop(ls_conn_t *k)
{
	tb_loop_t *loop = k->cl->loop;

	tb_timer_stop(loop, &k->timer);
	tb_timer_stop(loop, &k->reg);
	conn_release(k);
	free(k->redir);
	k->redir = NULL;
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
	const tb_ls_url_t *u = conn_url(k);
	uint64_t now = tb_loop_now(cl->loop);
	uint32_t delay;

	if (k->state == C_UP && now - k->up_since >= STABLE_MS)
		k->fails = 0;
	tb_warn("linksocks: %s:%u: %s", u->host, u->port, why);
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
	if (msg->type == TB_LS_LOG && tb_ls_log_parse(msg->log.json.p, msg->log.json.len, level,
						      sizeof(level), text, sizeof(text)) == 0) {
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
	tb_info("linksocks: %s %s:%u authenticated", cl->reverse ? "provider connected to" : "connected to",
		conn_url(k)->host, conn_url(k)->port);
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
	if (strcmp(conn_url(k)->path, "/socket") == 0)
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

static void conn_connect(ls_conn_t *k);

/* §2.2: a refused upgrade that redirects is followed, up to 5 times per
 * attempt, within the one handshake timeout. */
static void follow_redirect(ls_conn_t *k, int status, const char *loc)
{
	tb_ls_url_t *next;
	char why[TB_LS_PATH_MAX + 96];
	int rc;

	if (!loc) {
		snprintf(why, sizeof(why), "upgrade refused with HTTP %d without a Location", status);
		conn_down(k, why, false);
		return;
	}
	if (k->redirects >= TB_LS_REDIRECTS_MAX) {
		snprintf(why, sizeof(why), "stopped after %u redirects (HTTP %d to %.*s)", k->redirects,
			 status, TB_LS_PATH_MAX, loc);
		conn_down(k, why, false);
		return;
	}
	if (!(next = malloc(sizeof(*next)))) {
		conn_down(k, "out of memory", false);
		return;
	}
	if ((rc = tb_ls_url_resolve(conn_url(k), loc, next)) < 0) {
		free(next);
		snprintf(why, sizeof(why), "HTTP %d redirect to '%.*s': %s", status, TB_LS_PATH_MAX, loc,
			 rc == TB_ENOTSUP ? "not an http(s) or ws(s) URL" :
			 rc == TB_ERANGE  ? "too long" :
					    "malformed");
		conn_down(k, why, false);
		return;
	}
	k->redirects++;
	tb_info("linksocks: %s:%u%s: HTTP %d redirect %u/%u to %s://%s%s%s%s", conn_url(k)->host,
		conn_url(k)->port, conn_url(k)->path, status, k->redirects, TB_LS_REDIRECTS_MAX,
		next->tls ? "wss" : "ws", next->hosthdr, next->path, next->query[0] ? "?" : "", next->query);
	conn_release(k);
	free(k->redir);
	k->redir = next;
	conn_connect(k);
}

static void on_ws_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	ls_conn_t *k = ctx;
	char why[96];
	int status;

	if (k->state == C_WS && err == TB_EDENIED) {
		status = tb_ws_http_status(ws);
		if (tb_ls_is_redirect(status)) {
			follow_redirect(k, status, tb_ws_location(ws));
			return;
		}
		snprintf(why, sizeof(why), "upgrade refused with HTTP %d", status);
	} else {
		snprintf(why, sizeof(why), "WebSocket closed (%d, %s)", code, tb_strerror(err));
	}
	conn_down(k, why, false);
}

static const tb_ws_handler_t ws_handler = {on_ws_open, on_ws_message, on_ws_pong, on_ws_drain, on_ws_close};

static void start_ws(ls_conn_t *k, tb_stream_t *s)
{
	ls_client_t *cl = k->cl;
	const tb_ls_url_t *u = conn_url(k);
	char query[TB_LS_QUERY_MAX + 256];
	tb_ws_request_t req = {
		.host = u->hosthdr,
		.path = u->path,
		.query = u->query,
		.user_agent = "Go-http-client/1.1", /* §2.4: as the reference client */
	};

	k->state = C_WS;
	/* §2.3: URL-query auth iff the path (after redirects) is exactly /socket. */
	if (strcmp(u->path, "/socket") == 0) {
		if (tb_ls_url_query_build(query, sizeof(query), u->query, strlen(u->query), cl->token,
					  strlen(cl->token), cl->reverse, cl->instance) < 0) {
			tb_stream_close(s);
			conn_down(k, "cannot build the auth query (too long)", false);
			return;
		}
		req.query = query;
	}
	if (tb_ws_client_new(cl->loop, s, &req, NULL, &ws_handler, k, &k->ws) < 0) {
		tb_stream_close(s);
		conn_down(k, "cannot start the WebSocket", false);
	}
}

#if ENABLE_TLS
/* The TLS settings, made on the first wss dial when the configured URL is
 * ws:// (a redirect may lead to wss://). */
static tb_tls_config_t *tls_config(ls_client_t *cl, char *why, size_t whylen)
{
	tb_tls_opts_t to = {.role = TB_TLS_CLIENT, .ca_file = cl->ca_file, .insecure = cl->insecure};

	if (!cl->tlscfg && tb_tls_config_new(&to, &cl->tlscfg, why, whylen) < 0)
		cl->tlscfg = NULL;
	return cl->tlscfg;
}
#endif

/* TCP is up, directly or through the proxy: TLS (SNI and the certificate
 * name are the current host), then the upgrade. */
static void on_stream(ls_conn_t *k, tb_stream_t *s, int err, const char *what)
{
	char why[TB_HOST_MAX + 96];

	if (err < 0) {
		snprintf(why, sizeof(why), "%s: %s", what, tb_strerror(err));
		conn_down(k, why, false);
		return;
	}
	if (conn_url(k)->tls) {
#if ENABLE_TLS
		tb_tls_config_t *cfg = tls_config(k->cl, why, sizeof(why));
		tb_stream_t *tls;
		if (!cfg || tb_tls_wrap(k->cl->loop, cfg, s, conn_url(k)->host, NULL, NULL, &tls) < 0) {
			tb_stream_close(s);
			conn_down(k, cfg ? "TLS setup failed" : why, false);
			return;
		}
		s = tls;
#else
		tb_stream_close(s);
		conn_down(k, "wss:// needs CONFIG_TLS", false);
		return;
#endif
	}
	start_ws(k, s);
}

static void on_tcp(void *arg, tb_stream_t *s, int err)
{
	ls_conn_t *k = arg;

	k->tc = NULL;
	on_stream(k, s, err, "connect");
}

static void on_proxied(void *arg, tb_stream_t *s, int err)
{
	ls_conn_t *k = arg;
	char what[sizeof(k->cl->proxy_desc) + 16];

	k->pq = NULL;
	snprintf(what, sizeof(what), "through the %s", k->cl->proxy_desc);
	on_stream(k, s, err, what);
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
	a.port = conn_url(k)->port;
	if (tb_tcp_connect(k->cl->loop, &a, 10000, on_tcp, k, &k->tc) < 0)
		conn_down(k, "cannot connect", false);
}

/* Dials the current URL: through the proxy, which gets the name as the
 * reference's does (CONNECT host:port), or resolve and connect. */
static void conn_connect(ls_conn_t *k)
{
	ls_client_t *cl = k->cl;
	const tb_ls_url_t *u = conn_url(k);
	tb_target_t t;

	k->state = C_DIAL;
	if (cl->proxy) {
		if (tb_target_set(&t, u->host, strlen(u->host), u->port) < 0 ||
		    tb_connector_connect(cl->proxy, &t, on_proxied, k, &k->pq) < 0)
			conn_down(k, "cannot dial the proxy", false);
		return;
	}
	if (!cl->env->dns || tb_dns_resolve(cl->env->dns, u->host, 0, on_resolved, k, &k->dq) < 0)
		conn_down(k, "no resolver", false);
}

/* A new attempt: from the configured URL (a redirect counts for one
 * attempt only, as the reference's dial). */
static void conn_dial(ls_conn_t *k)
{
	ls_client_t *cl = k->cl;

	if (cl->stopped)
		return;
	free(k->redir);
	k->redir = NULL;
	k->redirects = 0;
	k->last_rx = tb_loop_now(cl->loop);
	tb_timer_start(cl->loop, &k->timer, HANDSHAKE_MS);
	conn_connect(k);
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

	if (cl->proxy)
		tb_info("linksocks: the WebSocket dial goes through the %s", cl->proxy_desc);
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
	if (cl->proxy)
		tb_connector_free(cl->proxy);
	free(cl->ca_file);
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

static int url_conf(ls_client_t *cl, const tb_conf_val_t *t, const char *url, tb_conf_err_t *err)
{
	char q[TB_LS_QUERY_MAX + 256];
	int rc = tb_ls_url_parse(url, &cl->url);

	if (rc < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "url"), "%s'%s'",
				rc == TB_ERANGE ? "a part is too long in " :
						  "expected ws://host[:port][/path] or wss://..., got ",
				url);
		return TB_EINVAL;
	}
	/* §2.3: the auth query must fit (a redirect may still change it). */
	if (strcmp(cl->url.path, "/socket") == 0 &&
	    tb_ls_url_query_build(q, sizeof(q), cl->url.query, strlen(cl->url.query), cl->token,
				  strlen(cl->token), cl->reverse, cl->instance) < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "url"),
				"cannot build the auth query (mbedTLS missing, or too long)");
		return TB_EINVAL;
	}
	return 0;
}

/* proxy = "...": the WebSocket dial's proxy (§2.2), an upstream connector
 * made from a one-line configuration. */
static int proxy_conf(ls_client_t *cl, const tb_conf_val_t *t, tb_conf_err_t *err)
{
	const char *v = "", *host;
	char url[TB_LS_PROXY_URL_MAX];
	int kind, rc;

	if ((rc = opt_str(t, "proxy", &v, err)) < 0)
		return rc;
	kind = tb_ls_proxy_url(v, url, sizeof(url));
	if (kind == TB_LS_PROXY_NONE)
		return 0;
	if (kind < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "proxy"), "%s",
				kind == TB_ENOTSUP ?
					"an https:// proxy is not supported (no TLS to the proxy yet): "
					"use http:// or socks5://" :
					"expected http://[user:pass@]host[:port] or socks5://...");
		return TB_EINVAL;
	}
	/* For the logs: the proxy without its credentials. */
	host = strstr(url, "://") + 3;
	host = strrchr(host, '@') ? strrchr(host, '@') + 1 : host;
	snprintf(cl->proxy_desc, sizeof(cl->proxy_desc), "%s proxy %s",
		 kind == TB_LS_PROXY_HTTP ? "http" : "socks5", host);
#if ENABLE_CONN_UPSTREAM
	char text[TB_LS_PROXY_URL_MAX + 16];
	tb_conf_err_t e2 = {0};
	tb_conf_t *c;
	/* tb_ls_proxy_url let no '"', '\\' or control byte through. */
	int n = snprintf(text, sizeof(text), "url = \"%s\"\n", url);

	if (n < 0 || (size_t)n >= sizeof(text) ||
	    (rc = tb_conf_parse(text, (size_t)n, "proxy", &c, &e2)) < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "proxy"), "%s", e2.msg);
		return TB_EINVAL;
	}
	rc = tb_upstream_connector_new(cl->env, "linksocks proxy",
				       kind == TB_LS_PROXY_HTTP ? "http" : "socks5", c->root, &cl->proxy,
				       &e2);
	tb_conf_free(c);
	if (rc < 0) {
		tb_conf_set_err(err, tb_conf_get(t, "proxy"), "%s", e2.msg);
		return rc == TB_ENOMEM ? rc : TB_EINVAL;
	}
	return 0;
#else
	tb_conf_set_err(err, tb_conf_get(t, "proxy"), "a proxy needs CONFIG_CONN_UPSTREAM");
	return TB_EINVAL;
#endif
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
	    (rc = opt_str(t, "ca_file", &ca, err)) < 0 ||
	    (rc = opt_bool(t, "insecure", &insecure, err)) < 0 ||
	    (rc = opt_bool(t, "fast_open", &cl->fast_open, err)) < 0 ||
	    (rc = opt_bool(t, "reconnect", &cl->reconnect, err)) < 0 ||
	    (rc = opt_bool(t, "retry_auth", &cl->retry_auth, err)) < 0 ||
	    (rc = opt_str(t, "connector_token", &ctok, err)) < 0 ||
	    (rc = tb_ls_mux_opts_conf(&cl->mo, t, err)) < 0)
		return rc;
	if (ctok && (!reverse || strlen(ctok) > TB_LS_STR_MAX)) {
		tb_conf_set_err(err, tb_conf_get(t, "connector_token"),
				"a provider's token of at most 255 bytes");
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
	if ((rc = url_conf(cl, t, url, err)) < 0)
		return rc;
	cl->insecure = insecure;
	if (ca && !(cl->ca_file = strdup(ca)))
		return TB_ENOMEM;
	if (cl->url.tls) {
#if ENABLE_TLS
		if (!tls_config(cl, err->msg, sizeof(err->msg))) {
			tb_conf_set_err(err, tb_conf_get(t, "url"), "TLS: %s", err->msg);
			return TB_EINVAL;
		}
#else
		tb_conf_set_err(err, tb_conf_get(t, "url"), "wss:// needs CONFIG_TLS");
		return TB_EINVAL;
#endif
	}
	if ((rc = proxy_conf(cl, t, err)) < 0)
		return rc;
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

#endif /* TB_FUZZ_CODEC_ONLY */
