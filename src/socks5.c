/* socks5.c: SOCKS5 codec (RFC 1928, RFC 1929) and the SOCKS5 listener.
 *
 * The codec half is pure and is what the fuzzer builds alone (with
 * -DTB_FUZZ_CODEC_ONLY); the listener half below it talks to the rest of
 * the system only through gateway.h. */
#include "tb/socks5.h"

#include <string.h>

/* ---- codec ---- */

/* Parses ATYP, ADDR and PORT (RFC 1928 §4, §5, §7: the same layout in the
 * request, the reply and the UDP header). */
int tb_socks5_addr_parse(const uint8_t *p, size_t n, tb_target_t *t)
{
	tb_addr_t a;
	size_t need, alen;

	if (n < 1)
		return TB_EAGAIN;
	switch (p[0]) {
	case TB_SOCKS5_ATYP_IPV4:
		alen = 4;
		break;
	case TB_SOCKS5_ATYP_IPV6:
		alen = 16;
		break;
	case TB_SOCKS5_ATYP_DOMAIN:
		if (n < 2)
			return TB_EAGAIN;
		/* §5: the first octet is the name's length; an empty name is
		 * no name at all. */
		if (p[1] == 0)
			return TB_ERANGE;
		need = 2 + (size_t)p[1] + 2;
		if (n < need)
			return TB_EAGAIN;
		if (memchr(p + 2, 0, p[1]))
			return TB_EPROTO;
		if (tb_target_set(t, (const char *)p + 2, p[1], tb_be16(p + 2 + p[1])) < 0)
			return TB_EPROTO;
		return (int)need;
	default:
		return TB_EAFNOSUPPORT;
	}
	need = 1 + alen + 2;
	if (n < need)
		return TB_EAGAIN;
	memset(&a, 0, sizeof(a));
	a.family = alen == 4 ? TB_AF_INET : TB_AF_INET6;
	memcpy(a.ip, p + 1, alen);
	a.port = tb_be16(p + 1 + alen);
	tb_target_from_addr(t, &a);
	return (int)need;
}

static int put_ip(uint8_t *out, size_t cap, const tb_addr_t *a)
{
	size_t alen = a->family == TB_AF_INET6 ? 16 : 4;

	if (cap < 1 + alen + 2)
		return TB_ERANGE;
	out[0] = alen == 4 ? TB_SOCKS5_ATYP_IPV4 : TB_SOCKS5_ATYP_IPV6;
	memcpy(out + 1, a->ip, alen);
	tb_put_be16(out + 1 + alen, a->port);
	return (int)(1 + alen + 2);
}

int tb_socks5_addr_build(uint8_t *out, size_t cap, const tb_target_t *t)
{
	tb_addr_t a;
	size_t hlen;

	if (t->is_ip) {
		a = t->addr;
		a.port = t->port;
		return put_ip(out, cap, &a);
	}
	hlen = strlen(t->host);
	if (hlen == 0 || hlen > TB_HOST_MAX)
		return TB_ERANGE;
	if (cap < 2 + hlen + 2)
		return TB_ERANGE;
	out[0] = TB_SOCKS5_ATYP_DOMAIN;
	out[1] = (uint8_t)hlen;
	memcpy(out + 2, t->host, hlen);
	tb_put_be16(out + 2 + hlen, t->port);
	return (int)(2 + hlen + 2);
}

/* RFC 1928 §3: VER, NMETHODS, METHODS (NMETHODS is 1 to 255). */
int tb_socks5_greeting_parse(const uint8_t *p, size_t n, const uint8_t **methods, size_t *nmethods)
{
	if (n < 1)
		return TB_EAGAIN;
	if (p[0] != TB_SOCKS5_VER)
		return TB_EPROTO;
	if (n < 2)
		return TB_EAGAIN;
	if (p[1] == 0)
		return TB_ERANGE;
	if (n < 2 + (size_t)p[1])
		return TB_EAGAIN;
	*methods = p + 2;
	*nmethods = p[1];
	return 2 + p[1];
}

uint8_t tb_socks5_method_select(const uint8_t *methods, size_t nmethods, bool need_auth)
{
	uint8_t want = need_auth ? TB_SOCKS5_M_USERPASS : TB_SOCKS5_M_NOAUTH;

	if (memchr(methods, want, nmethods))
		return want;
	return TB_SOCKS5_M_NONE;
}

static int put2(uint8_t *out, size_t cap, uint8_t a, uint8_t b)
{
	if (cap < 2)
		return TB_ERANGE;
	out[0] = a;
	out[1] = b;
	return 2;
}

int tb_socks5_method_build(uint8_t *out, size_t cap, uint8_t method)
{
	return put2(out, cap, TB_SOCKS5_VER, method);
}

/* RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD; lengths 1 to 255. */
int tb_socks5_userpass_parse(const uint8_t *p, size_t n, tb_socks5_userpass_t *up)
{
	size_t ulen, plen;

	if (n < 1)
		return TB_EAGAIN;
	if (p[0] != TB_SOCKS5_AUTH_VER)
		return TB_EPROTO;
	if (n < 2)
		return TB_EAGAIN;
	ulen = p[1];
	if (ulen == 0)
		return TB_ERANGE;
	if (n < 2 + ulen + 1)
		return TB_EAGAIN;
	plen = p[2 + ulen];
	if (plen == 0)
		return TB_ERANGE;
	if (n < 3 + ulen + plen)
		return TB_EAGAIN;
	up->user = p + 2;
	up->ulen = ulen;
	up->pass = p + 3 + ulen;
	up->plen = plen;
	return (int)(3 + ulen + plen);
}

int tb_socks5_userpass_reply_build(uint8_t *out, size_t cap, uint8_t status)
{
	return put2(out, cap, TB_SOCKS5_AUTH_VER, status);
}

/* RFC 1928 §4: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT. RSV is not checked:
 * it carries no meaning and being strict there only breaks odd clients. */
int tb_socks5_request_parse(const uint8_t *p, size_t n, tb_socks5_request_t *r)
{
	int rc;

	r->cmd = 0;
	r->atyp = 0;
	if (n < 1)
		return TB_EAGAIN;
	if (p[0] != TB_SOCKS5_VER)
		return TB_EPROTO;
	if (n < 2)
		return TB_EAGAIN;
	r->cmd = p[1];
	if (r->cmd < TB_SOCKS5_CMD_CONNECT || r->cmd > TB_SOCKS5_CMD_UDP)
		return TB_ENOTSUP;
	if (n < 4)
		return TB_EAGAIN;
	r->atyp = p[3];
	rc = tb_socks5_addr_parse(p + 3, n - 3, &r->dst);
	return rc < 0 ? rc : 3 + rc;
}

/* RFC 1928 §6: VER, REP, RSV, ATYP, BND.ADDR, BND.PORT. */
int tb_socks5_reply_build(uint8_t *out, size_t cap, uint8_t rep, const tb_addr_t *bnd)
{
	tb_addr_t zero;
	int rc;

	if (!bnd || (bnd->family != TB_AF_INET && bnd->family != TB_AF_INET6)) {
		memset(&zero, 0, sizeof(zero));
		zero.family = TB_AF_INET;
		bnd = &zero;
	}
	if (cap < 3)
		return TB_ERANGE;
	rc = put_ip(out + 3, cap - 3, bnd);
	if (rc < 0)
		return rc;
	out[0] = TB_SOCKS5_VER;
	out[1] = rep;
	out[2] = 0;
	return 3 + rc;
}

uint8_t tb_socks5_rep_from_err(int err)
{
	switch (err) {
	case 0:
		return TB_SOCKS5_REP_OK;
	case TB_ECONNREFUSED:
		return TB_SOCKS5_REP_REFUSED;
	case TB_ENETUNREACH:
		return TB_SOCKS5_REP_NET_UNREACH;
	case TB_EHOSTUNREACH:
		return TB_SOCKS5_REP_HOST_UNREACH;
	case TB_ETIMEDOUT:
		return TB_SOCKS5_REP_TTL_EXPIRED;
	case TB_EDENIED:
		return TB_SOCKS5_REP_NOT_ALLOWED;
	case TB_ENOTSUP:
		return TB_SOCKS5_REP_CMD_UNSUPPORTED;
	case TB_EAFNOSUPPORT:
		return TB_SOCKS5_REP_ATYP_UNSUPPORTED;
	default:
		return TB_SOCKS5_REP_FAILURE;
	}
}

int tb_socks5_err_from_rep(uint8_t rep)
{
	switch (rep) {
	case TB_SOCKS5_REP_OK:
		return 0;
	case TB_SOCKS5_REP_NOT_ALLOWED:
		return TB_EDENIED;
	case TB_SOCKS5_REP_NET_UNREACH:
		return TB_ENETUNREACH;
	case TB_SOCKS5_REP_HOST_UNREACH:
		return TB_EHOSTUNREACH;
	case TB_SOCKS5_REP_REFUSED:
		return TB_ECONNREFUSED;
	case TB_SOCKS5_REP_TTL_EXPIRED:
		return TB_ETIMEDOUT;
	case TB_SOCKS5_REP_CMD_UNSUPPORTED:
		return TB_ENOTSUP;
	case TB_SOCKS5_REP_ATYP_UNSUPPORTED:
		return TB_EAFNOSUPPORT;
	default:
		return TB_EIO;
	}
}

/* RFC 1928 §7: RSV (2), FRAG, ATYP, DST.ADDR, DST.PORT, DATA. */
int tb_socks5_udp_parse(const uint8_t *p, size_t n, uint8_t *frag, tb_target_t *t)
{
	int rc;

	if (n < 3)
		return TB_EAGAIN;
	*frag = p[2];
	rc = tb_socks5_addr_parse(p + 3, n - 3, t);
	return rc < 0 ? rc : 3 + rc;
}

int tb_socks5_udp_build(uint8_t *out, size_t cap, const tb_target_t *t)
{
	int rc;

	if (cap < 3)
		return TB_ERANGE;
	rc = tb_socks5_addr_build(out + 3, cap - 3, t);
	if (rc < 0)
		return rc;
	out[0] = 0;
	out[1] = 0;
	out[2] = 0;
	return 3 + rc;
}

int tb_socks5_client_greeting_build(uint8_t *out, size_t cap, bool userpass)
{
	if (!userpass) {
		if (cap < 3)
			return TB_ERANGE;
		out[0] = TB_SOCKS5_VER;
		out[1] = 1;
		out[2] = TB_SOCKS5_M_NOAUTH;
		return 3;
	}
	/* Offer both: a server without accounts may still pick no-auth. */
	if (cap < 4)
		return TB_ERANGE;
	out[0] = TB_SOCKS5_VER;
	out[1] = 2;
	out[2] = TB_SOCKS5_M_NOAUTH;
	out[3] = TB_SOCKS5_M_USERPASS;
	return 4;
}

static int parse2(const uint8_t *p, size_t n, uint8_t ver, uint8_t *second)
{
	if (n < 1)
		return TB_EAGAIN;
	if (p[0] != ver)
		return TB_EPROTO;
	if (n < 2)
		return TB_EAGAIN;
	*second = p[1];
	return 2;
}

int tb_socks5_client_method_parse(const uint8_t *p, size_t n, uint8_t *method)
{
	return parse2(p, n, TB_SOCKS5_VER, method);
}

int tb_socks5_client_userpass_build(uint8_t *out, size_t cap, const char *user, size_t ulen, const char *pass,
				    size_t plen)
{
	if (ulen == 0 || ulen > 255 || plen == 0 || plen > 255)
		return TB_ERANGE;
	if (cap < 3 + ulen + plen)
		return TB_ERANGE;
	out[0] = TB_SOCKS5_AUTH_VER;
	out[1] = (uint8_t)ulen;
	memcpy(out + 2, user, ulen);
	out[2 + ulen] = (uint8_t)plen;
	memcpy(out + 3 + ulen, pass, plen);
	return (int)(3 + ulen + plen);
}

int tb_socks5_client_userpass_reply_parse(const uint8_t *p, size_t n, uint8_t *status)
{
	return parse2(p, n, TB_SOCKS5_AUTH_VER, status);
}

int tb_socks5_client_request_build(uint8_t *out, size_t cap, uint8_t cmd, const tb_target_t *t)
{
	int rc;

	if (cap < 3)
		return TB_ERANGE;
	rc = tb_socks5_addr_build(out + 3, cap - 3, t);
	if (rc < 0)
		return rc;
	out[0] = TB_SOCKS5_VER;
	out[1] = cmd;
	out[2] = 0;
	return 3 + rc;
}

int tb_socks5_client_reply_parse(const uint8_t *p, size_t n, uint8_t *rep, tb_target_t *bnd)
{
	int rc = parse2(p, n, TB_SOCKS5_VER, rep);

	if (rc < 0)
		return rc;
	if (n < 4)
		return TB_EAGAIN;
	rc = tb_socks5_addr_parse(p + 3, n - 3, bnd);
	return rc < 0 ? rc : 3 + rc;
}

#ifndef TB_FUZZ_CODEC_ONLY
/* ---- the listener ---- */

#include <stdlib.h>

#include "tb/buf.h"
#include "tb/gateway.h"
#include "tb/log.h"

/* After a refusal the reply is flushed with a half-close and the rest of the
 * client's bytes are read and dropped until its EOF: closing with unread
 * input would make the kernel send RST, which can destroy the reply. */
#define LINGER_MS 2000
#define UDP_PAYLOAD_MAX 65535

enum s5_state {
	S5_GREETING,
	S5_AUTH,
	S5_REQUEST,
	S5_CONNECTING,
	S5_UDP,
	S5_LINGER,
	S5_DEAD
};

typedef struct s5_sess {
	tb_gw_listener_t *l;
	tb_gw_session_t gs;
	tb_loop_t *loop;
	tb_stream_t *client;
	tb_addr_t peer;
	tb_buf_t in; /* handshake bytes, then what the client pipelines */
	tb_timer_t timer;
	tb_defer_t end;
	enum s5_state state;
	bool paused, eof;
	tb_gw_open_t *open;
	tb_target_t dst;
	/* UDP ASSOCIATE */
	tb_udp_t *udp;
	tb_dgram_t *dgram;
	tb_addr_t uip;	   /* the client's IP (IPv4-mapped unwrapped) */
	uint16_t uport;	   /* its datagrams' source port; 0 until known */
	tb_addr_t uclient; /* where replies go: set by its first datagram */
	bool uclient_set;
	uint64_t last_active;
} s5_sess_t;

/* Handlers return the bytes consumed, TB_EAGAIN, or S5_STOP when the session
 * left the handshake (it may be freed: do not touch it). */
#define S5_STOP (-1000)

static void s5_free(s5_sess_t *ss)
{
	tb_timer_stop(ss->loop, &ss->timer);
	tb_defer_cancel(ss->loop, &ss->end);
	if (ss->open)
		tb_gw_open_cancel(ss->open);
	if (ss->dgram)
		ss->dgram->ops->close(ss->dgram);
	if (ss->udp)
		tb_udp_close(ss->udp);
	if (ss->client)
		tb_stream_close(ss->client);
	tb_buf_free(&ss->in);
	tb_gw_session_release(ss->l, &ss->gs);
	free(ss);
}

static void s5_cancel(void *arg)
{
	s5_free(arg);
}

/* UDP and datagram callbacks end the session from a deferred call, so no
 * object is freed inside its own callback. */
static void s5_end_cb(tb_loop_t *loop, void *arg)
{
	s5_free(arg);
}

static void s5_end_later(s5_sess_t *ss)
{
	ss->state = S5_DEAD;
	tb_defer(ss->loop, &ss->end);
}

static const char *s5_peer(const s5_sess_t *ss, char *buf)
{
	return tb_addr_str(&ss->peer, buf, TB_ADDR_STRLEN);
}

/* Sends a final message and half-closes; the session ends on the client's
 * EOF or after LINGER_MS. */
static int s5_refuse(s5_sess_t *ss, const uint8_t *msg, size_t len)
{
	int rc = tb_stream_write(ss->client, msg, len);

	if (rc < 0 && rc != TB_ENOBUFS) {
		s5_free(ss);
		return S5_STOP;
	}
	tb_stream_shutdown(ss->client);
	ss->state = S5_LINGER;
	tb_buf_free(&ss->in);
	if (ss->paused) {
		ss->paused = false;
		tb_stream_resume(ss->client);
	}
	tb_timer_start(ss->loop, &ss->timer, LINGER_MS);
	return S5_STOP;
}

static int s5_refuse_rep(s5_sess_t *ss, uint8_t rep)
{
	uint8_t msg[TB_SOCKS5_REQUEST_MAX];
	int n = tb_socks5_reply_build(msg, sizeof(msg), rep, NULL);

	return s5_refuse(ss, msg, (size_t)n);
}

static int s5_send(s5_sess_t *ss, const uint8_t *msg, size_t len)
{
	int rc = tb_stream_write(ss->client, msg, len);

	if (rc < 0 && rc != TB_ENOBUFS) {
		s5_free(ss);
		return S5_STOP;
	}
	return 0;
}

static bool s5_need_auth(const s5_sess_t *ss)
{
	const tb_gw_auth_t *a = tb_gw_listener_auth(ss->l);

	return a && a->user;
}

static int s5_on_greeting(s5_sess_t *ss, const uint8_t *p, size_t n)
{
	char pb[TB_ADDR_STRLEN];
	const uint8_t *methods;
	size_t nm;
	uint8_t msg[2], m;
	int rc = tb_socks5_greeting_parse(p, n, &methods, &nm);

	if (rc == TB_EAGAIN)
		return rc;
	if (rc < 0) {
		tb_debug("socks5 %s: bad greeting: %s", s5_peer(ss, pb), tb_strerror(rc));
		tb_socks5_method_build(msg, sizeof(msg), TB_SOCKS5_M_NONE);
		return s5_refuse(ss, msg, sizeof(msg));
	}
	m = tb_socks5_method_select(methods, nm, s5_need_auth(ss));
	tb_socks5_method_build(msg, sizeof(msg), m);
	if (m == TB_SOCKS5_M_NONE) {
		tb_debug("socks5 %s: no acceptable method", s5_peer(ss, pb));
		return s5_refuse(ss, msg, sizeof(msg));
	}
	if (s5_send(ss, msg, sizeof(msg)) < 0)
		return S5_STOP;
	ss->state = m == TB_SOCKS5_M_USERPASS ? S5_AUTH : S5_REQUEST;
	return rc;
}

static bool s5_creds_ok(const s5_sess_t *ss, const tb_socks5_userpass_t *up)
{
	const tb_gw_auth_t *a = tb_gw_listener_auth(ss->l);
	const char *pass = a->pass ? a->pass : "";
	bool u = tb_ct_equal(up->user, up->ulen, a->user, strlen(a->user));
	bool p = tb_ct_equal(up->pass, up->plen, pass, strlen(pass));

	return u & p; /* both compared, always */
}

static int s5_on_auth(s5_sess_t *ss, const uint8_t *p, size_t n)
{
	char pb[TB_ADDR_STRLEN];
	tb_socks5_userpass_t up;
	uint8_t msg[2];
	int rc = tb_socks5_userpass_parse(p, n, &up);

	if (rc == TB_EAGAIN)
		return rc;
	if (rc < 0 || !s5_creds_ok(ss, &up)) {
		tb_info("socks5 %s: authentication failed", s5_peer(ss, pb));
		tb_socks5_userpass_reply_build(msg, sizeof(msg), 1);
		return s5_refuse(ss, msg, sizeof(msg));
	}
	tb_socks5_userpass_reply_build(msg, sizeof(msg), 0);
	if (s5_send(ss, msg, sizeof(msg)) < 0)
		return S5_STOP;
	ss->state = S5_REQUEST;
	return rc;
}

static void s5_on_open(void *arg, tb_stream_t *remote, int err);
static int s5_udp_start(s5_sess_t *ss);

static int s5_connect(s5_sess_t *ss)
{
	int rc;

	ss->state = S5_CONNECTING;
	/* From here the connector's own timeouts apply. */
	tb_timer_stop(ss->loop, &ss->timer);
	rc = tb_gw_open(ss->l, &ss->dst, s5_on_open, ss, &ss->open);
	if (rc < 0) {
		ss->open = NULL;
		return s5_refuse_rep(ss, tb_socks5_rep_from_err(rc));
	}
	return 0;
}

static int s5_on_request(s5_sess_t *ss, const uint8_t *p, size_t n)
{
	char pb[TB_ADDR_STRLEN];
	tb_socks5_request_t req;
	int rc = tb_socks5_request_parse(p, n, &req);

	if (rc == TB_EAGAIN)
		return rc;
	if (rc < 0) {
		tb_debug("socks5 %s: bad request (cmd %u atyp %u): %s", s5_peer(ss, pb), req.cmd, req.atyp,
			 tb_strerror(rc));
		return s5_refuse_rep(ss, tb_socks5_rep_from_err(rc));
	}
	ss->dst = req.dst;
	switch (req.cmd) {
	case TB_SOCKS5_CMD_CONNECT:
		return s5_connect(ss) < 0 ? S5_STOP : rc;
	case TB_SOCKS5_CMD_UDP:
		s5_udp_start(ss);
		return S5_STOP;
	default: /* BIND: a gateway has no use for it */
		tb_debug("socks5 %s: BIND not supported", s5_peer(ss, pb));
		return s5_refuse_rep(ss, TB_SOCKS5_REP_CMD_UNSUPPORTED);
	}
}

static void s5_process(s5_sess_t *ss)
{
	for (;;) {
		size_t n = TB_MIN(tb_buf_len(&ss->in), (size_t)TB_SOCKS5_USERPASS_MAX);
		const uint8_t *p;
		int rc;

		if (n == 0)
			return;
		p = tb_buf_pullup(&ss->in, n);
		switch (ss->state) {
		case S5_GREETING:
			rc = s5_on_greeting(ss, p, n);
			break;
		case S5_AUTH:
			rc = s5_on_auth(ss, p, n);
			break;
		case S5_REQUEST:
			rc = s5_on_request(ss, p, n);
			break;
		default:
			return; /* connecting: the rest is pipelined payload */
		}
		if (rc < 0)
			return;
		tb_buf_consume(&ss->in, (size_t)rc);
	}
}

/* Writes the bytes the client sent before the reply ("fast open") to the
 * remote, in order, before the relay takes over. */
static int s5_flush_pipelined(s5_sess_t *ss, tb_stream_t *remote)
{
	while (tb_buf_len(&ss->in)) {
		size_t n;
		const uint8_t *p = tb_buf_peek(&ss->in, &n);
		int rc = tb_stream_write(remote, p, n);

		if (rc < 0 && rc != TB_ENOBUFS)
			return rc;
		tb_buf_consume(&ss->in, n);
	}
	return 0;
}

static void s5_on_open(void *arg, tb_stream_t *remote, int err)
{
	s5_sess_t *ss = arg;
	tb_gw_listener_t *l = ss->l;
	tb_stream_t *client = ss->client;
	uint8_t msg[TB_SOCKS5_REQUEST_MAX];
	char pb[TB_ADDR_STRLEN], tbuf[TB_HOST_MAX + 16];
	tb_addr_t bnd;
	bool eof;
	int n;

	ss->open = NULL;
	if (err < 0) {
		tb_debug("socks5 %s: connect %s: %s", s5_peer(ss, pb),
			 tb_target_str(&ss->dst, tbuf, sizeof(tbuf)), tb_strerror(err));
		s5_refuse_rep(ss, tb_socks5_rep_from_err(err));
		return;
	}
	/* §6: BND is the address the server used to reach the target; a
	 * tunnel flow has none, and then 0.0.0.0:0 is all we can say. */
	if (tb_tcp_local_addr(remote, &bnd) < 0)
		memset(&bnd, 0, sizeof(bnd));
	n = tb_socks5_reply_build(msg, sizeof(msg), TB_SOCKS5_REP_OK, &bnd);
	if (s5_send(ss, msg, (size_t)n) < 0) { /* ss is gone */
		tb_stream_close(remote);
		return;
	}
	if (s5_flush_pipelined(ss, remote) < 0) {
		tb_stream_close(remote);
		s5_free(ss);
		return;
	}
	eof = ss->eof;
	tb_stream_set_handler(client, NULL, NULL);
	if (ss->paused)
		tb_stream_resume(client);
	ss->client = NULL;
	s5_free(ss);
	/* The client's EOF came while we owned it and will not come again: the
	 * relay is told, and half-closes the remote once the pipelined bytes
	 * are sent. */
	tb_gw_relay(l, client, remote, eof);
}

/* ---- UDP ASSOCIATE, RFC 1928 §7 ---- */

static void s5_udp_touch(s5_sess_t *ss)
{
	ss->last_active = tb_loop_now(ss->loop);
}

/* Replies from the far end: wrapped in a SOCKS UDP header naming their
 * source, and sent only to the client's address. */
static void s5_dgram_recv(void *arg, tb_dgram_t *d, const tb_target_t *from, const uint8_t *data, size_t len)
{
	s5_sess_t *ss = arg;
	uint8_t *pkt;
	int h;

	if (ss->state != S5_UDP || !ss->uclient_set)
		return;
	pkt = malloc(TB_SOCKS5_UDP_HDR_MAX + len);
	if (!pkt)
		return;
	h = tb_socks5_udp_build(pkt, TB_SOCKS5_UDP_HDR_MAX, from);
	if (h >= 0 && (size_t)h + len <= UDP_PAYLOAD_MAX) {
		memcpy(pkt + h, data, len);
		tb_udp_send(ss->udp, &ss->uclient, pkt, (size_t)h + len);
		s5_udp_touch(ss);
	}
	free(pkt);
}

/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
static void s5_unmap(tb_addr_t *a)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (a->family != TB_AF_INET6 || memcmp(a->ip, prefix, sizeof(prefix)) != 0)
		return;
	memmove(a->ip, a->ip + 12, 4);
	memset(a->ip + 4, 0, 12);
	a->family = TB_AF_INET;
}

/* Only the client's IP may use the relay; its port is the one named in
 * the request, else the first valid datagram's. */
static bool s5_udp_from_client(const s5_sess_t *ss, const tb_addr_t *from)
{
	tb_addr_t a = *from;

	s5_unmap(&a);
	if (!tb_addr_ip_equal(&a, &ss->uip))
		return false;
	return ss->uport == 0 || from->port == ss->uport;
}

static void s5_udp_recv(void *arg, tb_udp_t *u, const tb_addr_t *from, const uint8_t *data, size_t len)
{
	s5_sess_t *ss = arg;
	char pb[TB_ADDR_STRLEN];
	tb_target_t t;
	uint8_t frag;
	int h, rc;

	if (ss->state != S5_UDP || !s5_udp_from_client(ss, from))
		return;
	h = tb_socks5_udp_parse(data, len, &frag, &t);
	/* §7: without reassembly, FRAG other than 0 MUST be dropped. */
	if (h < 0 || frag != 0)
		return;
	if (!ss->uclient_set) {
		ss->uclient = *from;
		ss->uport = from->port;
		ss->uclient_set = true;
	}
	s5_udp_touch(ss);
	if (!ss->dgram) {
		rc = tb_gw_udp_open(ss->l, &t, s5_dgram_recv, ss, &ss->dgram);
		if (rc < 0) {
			ss->dgram = NULL;
			tb_debug("socks5 %s: udp association refused: %s", s5_peer(ss, pb), tb_strerror(rc));
			s5_end_later(ss);
			return;
		}
	}
	ss->dgram->ops->send(ss->dgram, &t, data + h, len - (size_t)h);
}

/* The relay's address for the reply: its own port, and the IP the client
 * reached us on when the listener is bound to a wildcard address. */
static void s5_udp_bnd(s5_sess_t *ss, tb_addr_t *bnd)
{
	static const uint8_t zero[16];
	tb_addr_t ctl;

	tb_udp_local_addr(ss->udp, bnd);
	if (memcmp(bnd->ip, zero, sizeof(zero)) != 0)
		return;
	if (tb_tcp_local_addr(ss->client, &ctl) == 0 && ctl.family == bnd->family)
		memcpy(bnd->ip, ctl.ip, sizeof(bnd->ip));
}

static void s5_udp_client_init(s5_sess_t *ss)
{
	ss->uip = ss->peer;
	s5_unmap(&ss->uip);
	ss->uport = 0;
	ss->uclient_set = false;
	/* The request may name the port datagrams will come from; its IP is
	 * not trusted: replies never go anywhere but the client's own IP. */
	if (ss->dst.is_ip)
		ss->uport = ss->dst.port;
}

static int s5_udp_start(s5_sess_t *ss)
{
	char pb[TB_ADDR_STRLEN];
	uint8_t msg[TB_SOCKS5_REQUEST_MAX];
	tb_addr_t bind, bnd;
	uint32_t idle = tb_gw_udp_idle_ms(ss->l);
	int rc, n;

	tb_gw_listener_addr(ss->l, &bind);
	bind.port = 0;
	rc = tb_udp_open(ss->loop, &bind, s5_udp_recv, ss, &ss->udp);
	if (rc < 0) {
		ss->udp = NULL;
		tb_warn("socks5 %s: udp relay socket: %s", s5_peer(ss, pb), tb_strerror(rc));
		return s5_refuse_rep(ss, TB_SOCKS5_REP_FAILURE);
	}
	s5_udp_bnd(ss, &bnd);
	s5_udp_client_init(ss);
	n = tb_socks5_reply_build(msg, sizeof(msg), TB_SOCKS5_REP_OK, &bnd);
	if (s5_send(ss, msg, (size_t)n) < 0)
		return S5_STOP;
	ss->state = S5_UDP;
	tb_buf_free(&ss->in);
	s5_udp_touch(ss);
	if (idle)
		tb_timer_start(ss->loop, &ss->timer, idle);
	else
		tb_timer_stop(ss->loop, &ss->timer);
	return S5_STOP;
}

static void s5_udp_idle(s5_sess_t *ss)
{
	uint32_t idle = tb_gw_udp_idle_ms(ss->l);
	uint64_t quiet = tb_loop_now(ss->loop) - ss->last_active;
	char pb[TB_ADDR_STRLEN];

	if (quiet < idle) {
		/* Traffic only stamps last_active; the timer moves here. */
		tb_timer_start(ss->loop, &ss->timer, idle - quiet);
		return;
	}
	tb_debug("socks5 %s: udp association idle", s5_peer(ss, pb));
	s5_free(ss);
}

/* ---- the control connection ---- */

static void s5_on_data(void *ctx, tb_stream_t *s, const uint8_t *data, size_t len)
{
	s5_sess_t *ss = ctx;

	/* §7: the control connection carries nothing once associated. */
	if (ss->state == S5_LINGER || ss->state == S5_UDP || ss->state == S5_DEAD)
		return;
	if (tb_buf_append(&ss->in, data, len) < 0) {
		s5_free(ss);
		return;
	}
	if (ss->state != S5_CONNECTING) {
		s5_process(ss);
		return;
	}
	if (!ss->paused && tb_buf_len(&ss->in) >= (s->hiwat ? s->hiwat : TB_STREAM_HIWAT_DEFAULT)) {
		ss->paused = true;
		tb_stream_pause(s);
	}
}

static void s5_on_eof(void *ctx, tb_stream_t *s)
{
	s5_sess_t *ss = ctx;

	if (ss->state == S5_DEAD)
		return;
	if (ss->state == S5_CONNECTING) {
		ss->eof = true;
		return;
	}
	s5_free(ss);
}

static void s5_on_close(void *ctx, tb_stream_t *s, int err)
{
	s5_sess_t *ss = ctx;

	if (ss->state == S5_DEAD)
		return;
	s5_free(ss);
}

static void s5_on_timer(tb_loop_t *loop, void *arg)
{
	s5_sess_t *ss = arg;
	char pb[TB_ADDR_STRLEN];

	switch (ss->state) {
	case S5_UDP:
		s5_udp_idle(ss);
		return;
	case S5_LINGER:
	case S5_DEAD:
		s5_free(ss);
		return;
	default:
		tb_debug("socks5 %s: handshake timeout", s5_peer(ss, pb));
		s5_free(ss);
		return;
	}
}

static const tb_stream_handler_t s5_handler = {
	.on_data = s5_on_data,
	.on_eof = s5_on_eof,
	.on_close = s5_on_close,
};

void tb_socks5_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *initial,
		     size_t n)
{
	s5_sess_t *ss = calloc(1, sizeof(*ss));
	uint32_t hs = tb_gw_handshake_timeout_ms(l);

	if (!ss) {
		tb_stream_close(s);
		return;
	}
	ss->l = l;
	ss->loop = tb_gw_loop(l);
	ss->client = s;
	ss->peer = *peer;
	ss->state = S5_GREETING;
	tb_buf_init(&ss->in);
	tb_timer_init(&ss->timer, s5_on_timer, ss);
	tb_defer_init(&ss->end, s5_end_cb, ss);
	tb_gw_session_hold(l, &ss->gs, s5_cancel, ss);
	tb_stream_set_handler(s, &s5_handler, ss);
	if (hs)
		tb_timer_start(ss->loop, &ss->timer, hs);
	if (n)
		s5_on_data(ss, s, initial, n);
}
#endif /* TB_FUZZ_CODEC_ONLY */
