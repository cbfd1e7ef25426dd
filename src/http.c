/* http.c: HTTP/1.1 forward-proxy codec (RFC 9110, RFC 9112) and listener.
 *
 * The codec half is pure and is what the fuzzer builds alone (with
 * -DTB_FUZZ_CODEC_ONLY); the listener half below it talks to the rest of
 * the system only through gateway.h. */
#include "tb/http.h"

#include <stdio.h>
#include <string.h>

/* ---- codec ---- */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool mem_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

bool tb_http_span_eq(const tb_http_span_t *s, const char *str)
{
	size_t n = strlen(str);

	return s->len == n && mem_ieq(s->p, str, n);
}

/* RFC 9110 §5.6.2: tchar. */
static bool is_tchar(int c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)p[i]))
			return false;
	return true;
}

/* RFC 9110 §5.5: field-vchar, SP and HTAB; no other control characters. */
static bool is_field_char(int c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* The next line of p[off..lim): returns the offset past its LF and sets
 * *len to its length without the line end, or returns 0 when no LF has
 * arrived. RFC 9112 §2.2 lets a recipient accept a bare LF as a line end. */
static size_t next_line(const uint8_t *p, size_t off, size_t lim, size_t *len)
{
	const uint8_t *lf = memchr(p + off, '\n', lim - off);
	size_t end;

	if (!lf)
		return 0;
	end = (size_t)(lf - p);
	*len = end - off;
	if (*len && p[end - 1] == '\r')
		(*len)--;
	return end + 1;
}

/* RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
 * The target is checked for visible ASCII only (§3.2); its form is for the
 * caller to judge. */
static int parse_request_line(const char *l, size_t n, tb_http_request_t *r)
{
	const char *sp1 = memchr(l, ' ', n), *sp2, *v;

	if (!sp1)
		return TB_EPROTO;
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l));
	if (!sp2)
		return TB_EPROTO;
	r->method.p = l;
	r->method.len = (size_t)(sp1 - l);
	r->target.p = sp1 + 1;
	r->target.len = (size_t)(sp2 - sp1 - 1);
	if (!is_token(r->method.p, r->method.len) || r->target.len == 0)
		return TB_EPROTO;
	for (size_t i = 0; i < r->target.len; i++)
		if ((unsigned char)r->target.p[i] <= 0x20 || (unsigned char)r->target.p[i] >= 0x7f)
			return TB_EPROTO;
	/* §2.3: HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive. */
	v = sp2 + 1;
	if (n - (size_t)(v - l) != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.')
		return TB_EPROTO;
	if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return TB_EPROTO;
	if (v[5] != '1')
		return TB_ENOTSUP;
	r->minor = v[7] - '0';
	return 0;
}

/* RFC 9112 §5: field-name ":" OWS field-value OWS. */
static int parse_field(const char *l, size_t n, tb_http_header_t *h)
{
	const char *colon;
	size_t vs, ve;

	/* §5.2: obs-fold is rejected (a server MAY reject it with 400). */
	if (is_blank(l[0]))
		return TB_EPROTO;
	colon = memchr(l, ':', n);
	/* §5.1: no whitespace between the name and the colon. */
	if (!colon || !is_token(l, (size_t)(colon - l)))
		return TB_EPROTO;
	for (size_t i = (size_t)(colon - l) + 1; i < n; i++)
		if (!is_field_char((unsigned char)l[i]))
			return TB_EPROTO;
	vs = (size_t)(colon - l) + 1;
	ve = n;
	while (vs < ve && is_blank(l[vs]))
		vs++;
	while (ve > vs && is_blank(l[ve - 1]))
		ve--;
	h->name.p = l;
	h->name.len = (size_t)(colon - l);
	h->value.p = l + vs;
	h->value.len = ve - vs;
	return 0;
}

/* Checks one complete line; TB_EAGAIN-free. Returns 1 at the empty line
 * that ends the head (after the request line), else 0 or an error. */
static int parse_line(const uint8_t *p, size_t off, size_t len, tb_http_request_t *r, bool *seen_rl)
{
	const char *l = (const char *)p + off;

	/* NUL and bare CR are never valid inside a line (§2.2). */
	if (memchr(l, '\0', len) || memchr(l, '\r', len))
		return TB_EPROTO;
	if (!*seen_rl) {
		/* §2.2: ignore empty lines before the request line. */
		if (len == 0)
			return 0;
		*seen_rl = true;
		return parse_request_line(l, len, r);
	}
	if (len == 0)
		return 1;
	if (r->nheaders == TB_HTTP_HEADERS_MAX)
		return TB_ERANGE;
	return parse_field(l, len, &r->headers[r->nheaders++]);
}

int tb_http_request_parse(const uint8_t *p, size_t n, tb_http_request_t *r)
{
	size_t lim = TB_MIN(n, (size_t)TB_HTTP_HEAD_MAX), off = 0, next, len;
	bool seen_rl = false;
	int rc;

	memset(r, 0, offsetof(tb_http_request_t, headers));
	while ((next = next_line(p, off, lim, &len)) != 0) {
		rc = parse_line(p, off, len, r, &seen_rl);
		if (rc < 0)
			return rc;
		off = next;
		if (rc == 1) {
			r->head_len = off;
			return (int)off;
		}
	}
	/* A partial line may already show it is not HTTP. */
	if (memchr(p + off, '\0', lim - off))
		return TB_EPROTO;
	return n >= TB_HTTP_HEAD_MAX ? TB_ERANGE : TB_EAGAIN;
}

/* RFC 9112 §4: HTTP-version SP 3DIGIT SP [ reason-phrase ]; a missing
 * SP before an empty reason is tolerated, as clients do. */
static int parse_status_line(const char *l, size_t n, tb_http_request_t *r, int *status)
{
	if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' || l[7] > '9' || l[8] != ' ')
		return TB_EPROTO;
	for (int i = 9; i < 12; i++)
		if (l[i] < '0' || l[i] > '9')
			return TB_EPROTO;
	if (n > 12 && l[12] != ' ')
		return TB_EPROTO;
	for (size_t i = 12; i < n; i++)
		if (!is_field_char((unsigned char)l[i]))
			return TB_EPROTO;
	r->minor = l[7] - '0';
	*status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	r->method.p = l;
	r->method.len = 8;
	r->target.p = l + TB_MIN(n, (size_t)13);
	r->target.len = n - TB_MIN(n, (size_t)13);
	return 0;
}

int tb_http_response_parse(const uint8_t *p, size_t n, tb_http_request_t *r, int *status)
{
	size_t lim = TB_MIN(n, (size_t)TB_HTTP_RESP_HEAD_MAX), off = 0, next, len;
	int rc;

	memset(r, 0, offsetof(tb_http_request_t, headers));
	while ((next = next_line(p, off, lim, &len)) != 0) {
		const char *l = (const char *)p + off;

		if (memchr(l, '\0', len) || memchr(l, '\r', len))
			return TB_EPROTO;
		if (off == 0)
			rc = parse_status_line(l, len, r, status);
		else if (len == 0)
			break;
		else if (r->nheaders == TB_HTTP_HEADERS_MAX)
			rc = TB_ERANGE;
		else
			rc = parse_field(l, len, &r->headers[r->nheaders++]);
		if (rc < 0)
			return rc;
		off = next;
	}
	if (!next)
		return n >= TB_HTTP_RESP_HEAD_MAX ? TB_ERANGE : TB_EAGAIN;
	r->head_len = next;
	return (int)next;
}

const tb_http_span_t *tb_http_header_get(const tb_http_request_t *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (tb_http_span_eq(&r->headers[i].name, name))
			return &r->headers[i].value;
	return NULL;
}

/* reg-name restricted to what DNS names and IPv4 literals use; userinfo
 * ('@'), percent-encoding and sub-delims are refused. */
static bool is_host_char(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

/* RFC 3986 §3.2.3: port = *DIGIT; 0 and values past 65535 are refused. */
static int parse_port(const char *p, size_t n, uint16_t *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return TB_EPROTO;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return TB_EPROTO;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return TB_EPROTO;
	*port = (uint16_t)v;
	return 0;
}

/* Splits host and ":port"; *hlen includes the brackets of an IPv6 literal. */
static int split_authority(const char *p, size_t n, size_t *hlen)
{
	const char *rb;

	if (n == 0)
		return TB_EPROTO;
	if (p[0] == '[') {
		rb = memchr(p, ']', n);
		if (!rb)
			return TB_EPROTO;
		*hlen = (size_t)(rb - p) + 1;
	} else {
		for (*hlen = 0; *hlen < n && p[*hlen] != ':'; (*hlen)++)
			if (!is_host_char((unsigned char)p[*hlen]))
				return TB_EPROTO;
	}
	if (*hlen == 0 || (*hlen < n && p[*hlen] != ':'))
		return TB_EPROTO;
	return 0;
}

int tb_http_authority_parse(const char *p, size_t n, uint16_t default_port, tb_target_t *t)
{
	uint16_t port = default_port;
	size_t hlen;
	int rc = split_authority(p, n, &hlen);

	if (rc < 0)
		return rc;
	if (hlen > TB_HOST_MAX + 2 || (p[0] != '[' && hlen > TB_HOST_MAX))
		return TB_ERANGE;
	/* RFC 3986 §3.2.3: an empty port after the colon means the default. */
	if (hlen + 1 < n && parse_port(p + hlen + 1, n - hlen - 1, &port) < 0)
		return TB_EPROTO;
	if (port == 0)
		return TB_EPROTO;
	rc = tb_target_set(t, p, hlen, port);
	if (rc == TB_ERANGE)
		return rc;
	return rc < 0 ? TB_EPROTO : 0;
}

static bool is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1). */
static size_t scheme_len(const char *p, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_alpha((unsigned char)p[0]))
		return 0;
	while (i < n && (is_alpha((unsigned char)p[i]) || (p[i] >= '0' && p[i] <= '9') || p[i] == '+' ||
			 p[i] == '-' || p[i] == '.'))
		i++;
	return i;
}

int tb_http_absolute_parse(const char *p, size_t n, tb_target_t *t, tb_http_span_t *authority,
			   tb_http_span_t *path)
{
	size_t sl = scheme_len(p, n), a, e;

	if (sl == 0 || n - sl < 3 || memcmp(p + sl, "://", 3) != 0)
		return TB_EPROTO;
	if (sl != 4 || !mem_ieq(p, "http", 4))
		return TB_ENOTSUP;
	a = sl + 3;
	for (e = a; e < n && p[e] != '/' && p[e] != '?' && p[e] != '#'; e++)
		;
	authority->p = p + a;
	authority->len = e - a;
	if (tb_http_authority_parse(authority->p, authority->len, 80, t) < 0)
		return TB_EPROTO;
	/* The fragment is the client's own business (RFC 9110 §4.2.5). */
	path->p = p + e;
	path->len = n - e;
	for (size_t i = 0; i < path->len; i++) {
		if (path->p[i] == '#') {
			path->len = i;
			break;
		}
	}
	return 0;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int tb_http_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0, need;

	/* RFC 4648 §3.2: padding only completes the last quantum. */
	if (n % 4 == 0 && n >= 2 && in[n - 1] == '=')
		n -= in[n - 2] == '=' ? 2 : 1;
	if (n % 4 == 1)
		return TB_EPROTO;
	need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (need > cap)
		return TB_ERANGE;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)in[i]);

		if (v < 0)
			return TB_EPROTO;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (int)o;
}

int tb_http_basic_parse(const char *v, size_t n, uint8_t *buf, size_t cap, tb_http_span_t *user,
			tb_http_span_t *pass)
{
	const uint8_t *colon;
	size_t i = 5;
	int dl;

	/* RFC 9110 §11.4: auth-scheme 1*SP token68; the scheme is
	 * case-insensitive (RFC 7617 §2). */
	if (n < 6 || !mem_ieq(v, "Basic", 5) || v[5] != ' ')
		return TB_EPROTO;
	while (i < n && v[i] == ' ')
		i++;
	dl = tb_http_base64_decode(v + i, n - i, buf, cap);
	if (dl < 0)
		return TB_EPROTO;
	/* RFC 7617 §2: user-id and password split at the first colon. */
	colon = memchr(buf, ':', (size_t)dl);
	if (!colon)
		return TB_EPROTO;
	user->p = (const char *)buf;
	user->len = (size_t)(colon - buf);
	pass->p = (const char *)colon + 1;
	pass->len = (size_t)dl - user->len - 1;
	return 0;
}

const char *tb_http_reason(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 426:
		return "Upgrade Required";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 508:
		return "Loop Detected";
	default:
		return "Unknown";
	}
}

int tb_http_response_build(char *out, size_t cap, int status, const char *headers)
{
	int n;

	if (status < 100 || status > 999)
		return TB_ERANGE;
	n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%s\r\n", status, tb_http_reason(status),
		     headers ? headers : "");
	if (n < 0 || (size_t)n >= cap)
		return TB_ERANGE;
	return n;
}

int tb_http_status_from_err(int err)
{
	switch (err) {
	case TB_ETIMEDOUT:
		return 504;
	case TB_EDENIED:
		return 403;
	default:
		return 502;
	}
}

int tb_http_status_from_parse(int err)
{
	switch (err) {
	case TB_ERANGE:
		return 431;
	case TB_ENOTSUP:
		return 505;
	default:
		return 400;
	}
}

#ifndef TB_FUZZ_CODEC_ONLY
/* ---- the listener ---- */

#include <stdlib.h>

#include "tb/buf.h"
#include "tb/gateway.h"
#include "tb/log.h"

/* As in socks5.c: after a refusal, flush with a half-close and read until
 * the client's EOF, so unread input does not turn the close into a RST. */
#define LINGER_MS 2000
#define CREDS_MAX 768 /* decoded Basic credentials; longer ones fail */

static const char connect_ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

/* A comma-separated list element (RFC 9110 §5.6.1), blanks trimmed, empty
 * elements skipped. Returns false at the end of the list. */
static bool list_next(const char **cur, const char *end, tb_http_span_t *e)
{
	const char *p = *cur, *q;

	while (p < end && (*p == ',' || is_blank(*p)))
		p++;
	if (p == end)
		return false;
	q = memchr(p, ',', (size_t)(end - p));
	if (!q)
		q = end;
	*cur = q;
	while (q > p && is_blank(q[-1]))
		q--;
	e->p = p;
	e->len = (size_t)(q - p);
	return true;
}

/* Is name one of the options of a Connection field (RFC 9110 §7.6.1)? */
static bool conn_listed(const tb_http_request_t *r, const tb_http_span_t *name)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		const tb_http_header_t *h = &r->headers[i];
		const char *cur = h->value.p, *end = h->value.p + h->value.len;
		tb_http_span_t e;

		if (!tb_http_span_eq(&h->name, "Connection"))
			continue;
		while (list_next(&cur, end, &e))
			if (e.len == name->len && mem_ieq(e.p, name->p, e.len))
				return true;
	}
	return false;
}

/* Fields that do not cross the proxy: RFC 9110 §7.6.1 and the
 * Proxy-* ones meant for us. Host is rebuilt from the URI (RFC 9112
 * §3.2.2). Framing fields stay even when a Connection field lists them:
 * dropping them would let a client desynchronise the origin. */
static bool hop_by_hop(const tb_http_request_t *r, const tb_http_span_t *name)
{
	static const char *const drop[] = {"Connection", "Proxy-Connection",
					   "Keep-Alive", "Proxy-Authorization",
					   "TE",	 "Upgrade",
					   "Host"};

	for (size_t i = 0; i < TB_ARRAY_SIZE(drop); i++)
		if (tb_http_span_eq(name, drop[i]))
			return true;
	if (tb_http_span_eq(name, "Content-Length") || tb_http_span_eq(name, "Transfer-Encoding"))
		return false;
	return conn_listed(r, name);
}

/* Rog's loop guard: does some Via element name us as received-by
 * (RFC 9110 §7.6.3: received-protocol RWS received-by [RWS comment])? */
static bool via_has(const tb_http_request_t *r, const char *id)
{
	size_t idlen = strlen(id);

	for (size_t i = 0; i < r->nheaders; i++) {
		const tb_http_header_t *h = &r->headers[i];
		const char *cur = h->value.p, *end = h->value.p + h->value.len;
		tb_http_span_t e;

		if (!tb_http_span_eq(&h->name, "Via"))
			continue;
		while (list_next(&cur, end, &e)) {
			const char *sp = memchr(e.p, ' ', e.len), *by, *stop;

			if (!sp)
				continue;
			for (by = sp; by < e.p + e.len && is_blank(*by); by++)
				;
			for (stop = by; stop < e.p + e.len && !is_blank(*stop); stop++)
				;
			if ((size_t)(stop - by) == idlen && memcmp(by, id, idlen) == 0)
				return true;
		}
	}
	return false;
}

/* Heads are written twice: once with p NULL to measure, then for real. */
typedef struct out {
	char *p;
	size_t len;
} out_t;

static void out_put(out_t *o, const char *s, size_t n)
{
	if (o->p)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void out_str(out_t *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void out_span(out_t *o, const tb_http_span_t *s)
{
	out_put(o, s->p, s->len);
}

static void out_fields(out_t *o, const tb_http_request_t *r, const char *id)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		const tb_http_header_t *h = &r->headers[i];

		if (hop_by_hop(r, &h->name))
			continue;
		out_span(o, &h->name);
		out_str(o, ": ");
		out_span(o, &h->value);
		out_str(o, "\r\n");
	}
	out_str(o, "Via: 1.1 ");
	out_str(o, id);
	/* One request per client connection in forwarding mode: the origin
	 * closes after its response, and so do we. */
	out_str(o, "\r\nConnection: close\r\n\r\n");
}

/* RFC 9112 §3.2.2: absolute form in, origin form and a fresh Host out. */
static void out_request(out_t *o, const tb_http_request_t *r, const tb_http_span_t *auth,
			const tb_http_span_t *path, const char *id)
{
	bool options = r->method.len == 7 && memcmp(r->method.p, "OPTIONS", 7) == 0;

	out_span(o, &r->method);
	out_str(o, " ");
	/* §3.2.4: an empty path is "/", or "*" for OPTIONS. */
	if (path->len == 0 && options)
		out_str(o, "*");
	else if (path->len == 0 || path->p[0] != '/')
		out_str(o, "/");
	out_span(o, path);
	out_str(o, " HTTP/1.1\r\nHost: ");
	out_span(o, auth);
	out_str(o, "\r\n");
	out_fields(o, r, id);
}

static void out_response(out_t *o, const tb_http_request_t *r, int status, const char *id)
{
	char line[16];

	snprintf(line, sizeof(line), "HTTP/1.1 %03d ", status);
	out_str(o, line);
	out_span(o, &r->target);
	out_str(o, "\r\n");
	out_fields(o, r, id);
}

/* ---- the origin's side in forwarding mode: a filter stream ----
 *
 * The relay sees this stream in place of the origin's. It rewrites the
 * origin's response head (hop-by-hop fields out, Via and Connection: close
 * in) and then passes bytes through. An unparsable head is passed as is. */

typedef struct hfilt {
	tb_stream_t s;
	tb_stream_t *inner;
	tb_loop_t *loop;
	tb_buf_t pending; /* the head being read; later bytes held while paused */
	tb_defer_t flush;
	char *id;
	bool passthrough, paused, eof_pending, closed;
	int depth; /* callbacks into the relay in progress */
} hfilt_t;

static void hf_free(hfilt_t *f)
{
	tb_defer_cancel(f->loop, &f->flush);
	tb_buf_free(&f->pending);
	free(f->id);
	free(f);
}

/* The relay may close the filter from inside any callback we make: free it
 * only once the outermost one has returned. */
static bool hf_leave(hfilt_t *f)
{
	f->depth--;
	if (!f->closed)
		return true;
	if (f->depth == 0)
		hf_free(f);
	return false;
}

static bool hf_emit(hfilt_t *f, const uint8_t *d, size_t n)
{
	f->depth++;
	tb_stream_emit_data(&f->s, d, n);
	return hf_leave(f);
}

static void hf_flush(hfilt_t *f)
{
	while (tb_buf_len(&f->pending) && !f->paused) {
		size_t n;
		const uint8_t *p = tb_buf_peek(&f->pending, &n);

		if (!hf_emit(f, p, n))
			return;
		tb_buf_consume(&f->pending, n);
	}
	if (f->eof_pending && !f->paused && !tb_buf_len(&f->pending)) {
		f->eof_pending = false;
		f->depth++;
		tb_stream_emit_eof(&f->s);
		hf_leave(f);
	}
}

static void hf_flush_cb(tb_loop_t *loop, void *arg)
{
	hfilt_t *f = arg;

	f->depth++;
	hf_flush(f);
	hf_leave(f);
}

/* Emits the head p[0..hlen) at the front of pending (rewritten when final)
 * and consumes it. Returns false when the filter was closed meanwhile.
 * Runs inside a callback (depth > 0), so pending outlives the emit. */
static bool hf_emit_head(hfilt_t *f, const uint8_t *p, const tb_http_request_t *r, int status, size_t hlen)
{
	out_t o = {NULL, 0};
	bool alive;

	/* 1xx interim responses go as they are (RFC 9110 §15.2). */
	if (status < 200 && status != 101) {
		if (!hf_emit(f, p, hlen))
			return false;
		tb_buf_consume(&f->pending, hlen);
		return true;
	}
	out_response(&o, r, status, f->id);
	o.p = malloc(o.len);
	if (!o.p) {
		f->passthrough = true; /* the head goes out unmodified */
		return true;
	}
	o.len = 0;
	out_response(&o, r, status, f->id);
	/* r points into pending: consume only after the rewrite. */
	tb_buf_consume(&f->pending, hlen);
	f->passthrough = true;
	alive = hf_emit(f, (const uint8_t *)o.p, o.len);
	free(o.p);
	return alive;
}

static void hf_head(hfilt_t *f)
{
	tb_http_request_t *r = malloc(sizeof(*r));
	int status, rc;

	if (!r)
		goto raw;
	while (!f->passthrough && tb_buf_len(&f->pending)) {
		size_t n = TB_MIN(tb_buf_len(&f->pending), (size_t)TB_HTTP_RESP_HEAD_MAX);
		const uint8_t *p = tb_buf_pullup(&f->pending, n);

		rc = tb_http_response_parse(p, n, r, &status);
		if (rc == TB_EAGAIN) {
			free(r);
			return;
		}
		if (rc < 0)
			break;
		if (!hf_emit_head(f, p, r, status, (size_t)rc)) {
			free(r);
			return; /* closed by the relay */
		}
	}
	free(r);
raw:
	f->passthrough = true;
	hf_flush(f);
}

static void hf_on_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	hfilt_t *f = ctx;

	if (f->passthrough && !tb_buf_len(&f->pending)) {
		hf_emit(f, d, n);
		return;
	}
	f->depth++;
	if (tb_buf_append(&f->pending, d, n) < 0)
		tb_stream_emit_close(&f->s, TB_ENOMEM); /* never drop bytes silently */
	else if (f->passthrough)
		hf_flush(f);
	else
		hf_head(f);
	hf_leave(f);
}

static void hf_on_drain(void *ctx, tb_stream_t *s)
{
	hfilt_t *f = ctx;

	f->depth++;
	tb_stream_emit_drain(&f->s);
	hf_leave(f);
}

static void hf_on_eof(void *ctx, tb_stream_t *s)
{
	hfilt_t *f = ctx;

	f->passthrough = true; /* a partial head goes out as it came */
	f->eof_pending = true;
	f->depth++;
	hf_flush(f);
	hf_leave(f);
}

static void hf_on_close(void *ctx, tb_stream_t *s, int err)
{
	hfilt_t *f = ctx;

	f->depth++;
	tb_stream_emit_close(&f->s, err);
	hf_leave(f);
}

static const tb_stream_handler_t hf_inner_handler = {hf_on_data, hf_on_drain, hf_on_eof, hf_on_close};

static hfilt_t *hf_of(const tb_stream_t *s)
{
	return tb_container_of(s, hfilt_t, s);
}

static int hf_write(tb_stream_t *s, const void *d, size_t n)
{
	return tb_stream_write(hf_of(s)->inner, d, n);
}

static int hf_shutdown(tb_stream_t *s)
{
	return tb_stream_shutdown(hf_of(s)->inner);
}

static void hf_close(tb_stream_t *s)
{
	hfilt_t *f = hf_of(s);

	tb_stream_close(f->inner);
	f->closed = true;
	tb_defer_cancel(f->loop, &f->flush);
	if (f->depth == 0)
		hf_free(f);
}

static void hf_pause(tb_stream_t *s)
{
	hfilt_t *f = hf_of(s);

	f->paused = true;
	tb_stream_pause(f->inner);
}

static void hf_resume(tb_stream_t *s)
{
	hfilt_t *f = hf_of(s);

	f->paused = false;
	tb_stream_resume(f->inner);
	/* Held bytes go out from the loop, never inside resume() itself. */
	if (f->passthrough && (tb_buf_len(&f->pending) || f->eof_pending))
		tb_defer(f->loop, &f->flush);
}

static size_t hf_queued(const tb_stream_t *s)
{
	return tb_stream_queued(hf_of(s)->inner);
}

static const tb_stream_ops_t hf_ops = {hf_write, hf_shutdown, hf_close, hf_pause, hf_resume, hf_queued};

static tb_stream_t *hf_new(tb_loop_t *loop, tb_stream_t *inner, const char *id)
{
	hfilt_t *f = calloc(1, sizeof(*f));

	if (!f || !(f->id = strdup(id))) {
		free(f);
		return NULL;
	}
	f->s.ops = &hf_ops;
	f->s.hiwat = inner->hiwat;
	f->inner = inner;
	f->loop = loop;
	tb_buf_init(&f->pending);
	tb_defer_init(&f->flush, hf_flush_cb, f);
	tb_stream_set_handler(inner, &hf_inner_handler, f);
	return &f->s;
}

/* ---- the client's session until the relay takes over ---- */

enum h_state {
	H_HEAD,
	H_CONNECTING,
	H_LINGER
};

typedef struct h_sess {
	tb_gw_listener_t *l;
	tb_gw_session_t gs;
	tb_loop_t *loop;
	tb_stream_t *client;
	tb_addr_t peer;
	tb_buf_t in; /* the head, then what follows it */
	tb_timer_t timer;
	enum h_state state;
	bool paused, eof;
	tb_gw_open_t *open;
	tb_target_t dst;
	char *fwd; /* forwarding: the rewritten request head; NULL for CONNECT */
	size_t fwd_len;
} h_sess_t;

static void h_free(h_sess_t *hs)
{
	tb_timer_stop(hs->loop, &hs->timer);
	if (hs->open)
		tb_gw_open_cancel(hs->open);
	if (hs->client)
		tb_stream_close(hs->client);
	tb_buf_free(&hs->in);
	free(hs->fwd);
	tb_gw_session_release(hs->l, &hs->gs);
	free(hs);
}

static void h_cancel(void *arg)
{
	h_free(arg);
}

static const char *h_peer(const h_sess_t *hs, char *buf)
{
	return tb_addr_str(&hs->peer, buf, TB_ADDR_STRLEN);
}

/* Sends an error response and half-closes; the session ends on the
 * client's EOF or after LINGER_MS. */
static void h_refuse(h_sess_t *hs, int status, const char *extra)
{
	char msg[256], hdrs[160];
	int n, rc;

	snprintf(hdrs, sizeof(hdrs), "%sContent-Length: 0\r\nConnection: close\r\n", extra ? extra : "");
	n = tb_http_response_build(msg, sizeof(msg), status, hdrs);
	rc = n < 0 ? n : tb_stream_write(hs->client, msg, (size_t)n);
	if (rc < 0 && rc != TB_ENOBUFS) {
		h_free(hs);
		return;
	}
	tb_stream_shutdown(hs->client);
	hs->state = H_LINGER;
	tb_buf_free(&hs->in);
	if (hs->paused) {
		hs->paused = false;
		tb_stream_resume(hs->client);
	}
	tb_timer_start(hs->loop, &hs->timer, LINGER_MS);
}

static bool h_auth_ok(const h_sess_t *hs, const tb_http_request_t *r)
{
	const tb_gw_auth_t *a = tb_gw_listener_auth(hs->l);
	const tb_http_span_t *v;
	tb_http_span_t user, pass;
	uint8_t buf[CREDS_MAX];
	const char *want_pass;
	bool u, p;

	if (!a || !a->user)
		return true;
	v = tb_http_header_get(r, "Proxy-Authorization");
	if (!v || tb_http_basic_parse(v->p, v->len, buf, sizeof(buf), &user, &pass) < 0)
		return false;
	want_pass = a->pass ? a->pass : "";
	u = tb_ct_equal(user.p, user.len, a->user, strlen(a->user));
	p = tb_ct_equal(pass.p, pass.len, want_pass, strlen(want_pass));
	return u & p; /* both compared, always */
}

static int h_forward_head(h_sess_t *hs, const tb_http_request_t *r, const tb_http_span_t *auth,
			  const tb_http_span_t *path)
{
	const char *id = tb_gw_server_id(hs->l);
	out_t o = {NULL, 0};

	out_request(&o, r, auth, path, id);
	o.p = malloc(o.len);
	if (!o.p)
		return TB_ENOMEM;
	o.len = 0;
	out_request(&o, r, auth, path, id);
	hs->fwd = o.p;
	hs->fwd_len = o.len;
	return 0;
}

/* Works out the target (and the forwarded head); 0 or an HTTP status. */
static int h_target(h_sess_t *hs, const tb_http_request_t *r)
{
	tb_http_span_t auth, path;
	int rc;

	/* Methods are case-sensitive (RFC 9110 §9.1). */
	if (r->method.len == 7 && memcmp(r->method.p, "CONNECT", 7) == 0) {
		/* RFC 9110 §9.3.6: authority form, port required. */
		rc = tb_http_authority_parse(r->target.p, r->target.len, 0, &hs->dst);
		return rc < 0 ? 400 : 0;
	}
	rc = tb_http_absolute_parse(r->target.p, r->target.len, &hs->dst, &auth, &path);
	if (rc == TB_ENOTSUP)
		return 501;
	if (rc < 0)
		return 400;
	return h_forward_head(hs, r, &auth, &path) < 0 ? 500 : 0;
}

static void h_on_open(void *arg, tb_stream_t *remote, int err);

/* Returns true when connecting; false after a refusal (hs may be gone). */
static bool h_request(h_sess_t *hs, const tb_http_request_t *r)
{
	char pb[TB_ADDR_STRLEN];
	int status, rc;

	if (!h_auth_ok(hs, r)) {
		tb_info("http %s: proxy authentication failed", h_peer(hs, pb));
		h_refuse(hs, 407, "Proxy-Authenticate: Basic realm=\"tunnelbox\"\r\n");
		return false;
	}
	if (via_has(r, tb_gw_server_id(hs->l))) {
		tb_warn("http %s: request loops back to us (Via)", h_peer(hs, pb));
		h_refuse(hs, 508, NULL);
		return false;
	}
	status = h_target(hs, r);
	if (status) {
		tb_debug("http %s: bad request target: %d", h_peer(hs, pb), status);
		h_refuse(hs, status, NULL);
		return false;
	}
	hs->state = H_CONNECTING;
	/* From here the connector's own timeouts apply. */
	tb_timer_stop(hs->loop, &hs->timer);
	rc = tb_gw_open(hs->l, &hs->dst, h_on_open, hs, &hs->open);
	if (rc < 0) {
		hs->open = NULL;
		h_refuse(hs, tb_http_status_from_err(rc), NULL);
		return false;
	}
	return true;
}

static void h_parse(h_sess_t *hs)
{
	char pb[TB_ADDR_STRLEN];
	size_t n = TB_MIN(tb_buf_len(&hs->in), (size_t)TB_HTTP_HEAD_MAX);
	tb_http_request_t *r = malloc(sizeof(*r));
	int rc;

	if (!r) {
		h_free(hs);
		return;
	}
	rc = tb_http_request_parse(tb_buf_pullup(&hs->in, n), n, r);
	if (rc == TB_EAGAIN) {
		free(r);
		return;
	}
	if (rc < 0) {
		tb_debug("http %s: bad request head: %s", h_peer(hs, pb), tb_strerror(rc));
		h_refuse(hs, tb_http_status_from_parse(rc), NULL);
	} else if (h_request(hs, r)) {
		/* r points into in: drop the head only now. */
		tb_buf_consume(&hs->in, (size_t)rc);
	}
	free(r);
}

/* Writes what the client sent after the head (a request body, or the
 * start of a TLS handshake) to the remote, before the relay takes over. */
static int h_flush_pipelined(h_sess_t *hs, tb_stream_t *remote)
{
	while (tb_buf_len(&hs->in)) {
		size_t n;
		const uint8_t *p = tb_buf_peek(&hs->in, &n);
		int rc = tb_stream_write(remote, p, n);

		if (rc < 0 && rc != TB_ENOBUFS)
			return rc;
		tb_buf_consume(&hs->in, n);
	}
	return 0;
}

static int h_start_remote(h_sess_t *hs, tb_stream_t *remote)
{
	int rc;

	if (!hs->fwd) {
		rc = tb_stream_write(hs->client, connect_ok, sizeof(connect_ok) - 1);
		if (rc < 0 && rc != TB_ENOBUFS)
			return rc;
	} else {
		rc = tb_stream_write(remote, hs->fwd, hs->fwd_len);
		if (rc < 0 && rc != TB_ENOBUFS)
			return rc;
	}
	return h_flush_pipelined(hs, remote);
}

static void h_on_open(void *arg, tb_stream_t *remote, int err)
{
	h_sess_t *hs = arg;
	tb_gw_listener_t *l = hs->l;
	tb_stream_t *client = hs->client;
	char pb[TB_ADDR_STRLEN], tbuf[TB_HOST_MAX + 16];
	bool eof;

	hs->open = NULL;
	if (err < 0) {
		tb_debug("http %s: connect %s: %s", h_peer(hs, pb),
			 tb_target_str(&hs->dst, tbuf, sizeof(tbuf)), tb_strerror(err));
		h_refuse(hs, tb_http_status_from_err(err), NULL);
		return;
	}
	if (h_start_remote(hs, remote) < 0) {
		tb_stream_close(remote);
		h_free(hs);
		return;
	}
	if (hs->fwd) {
		tb_stream_t *f = hf_new(hs->loop, remote, tb_gw_server_id(l));

		if (!f) {
			tb_stream_close(remote);
			h_free(hs);
			return;
		}
		remote = f;
	}
	eof = hs->eof;
	tb_stream_set_handler(client, NULL, NULL);
	if (hs->paused)
		tb_stream_resume(client);
	hs->client = NULL;
	h_free(hs);
	/* As in socks5.c: the relay learns of the EOF we swallowed. */
	tb_gw_relay(l, client, remote, eof);
}

static void h_on_data(void *ctx, tb_stream_t *s, const uint8_t *data, size_t len)
{
	h_sess_t *hs = ctx;

	if (hs->state == H_LINGER)
		return;
	if (tb_buf_append(&hs->in, data, len) < 0) {
		h_free(hs);
		return;
	}
	if (hs->state == H_CONNECTING) {
		if (!hs->paused && tb_buf_len(&hs->in) >= (s->hiwat ? s->hiwat : TB_STREAM_HIWAT_DEFAULT)) {
			hs->paused = true;
			tb_stream_pause(s);
		}
		return;
	}
	/* Parse again only when a line may have ended. */
	if (memchr(data, '\n', len) || tb_buf_len(&hs->in) >= TB_HTTP_HEAD_MAX)
		h_parse(hs);
}

static void h_on_eof(void *ctx, tb_stream_t *s)
{
	h_sess_t *hs = ctx;

	if (hs->state == H_CONNECTING) {
		hs->eof = true;
		return;
	}
	h_free(hs);
}

static void h_on_close(void *ctx, tb_stream_t *s, int err)
{
	h_free(ctx);
}

static void h_on_timer(tb_loop_t *loop, void *arg)
{
	h_sess_t *hs = arg;
	char pb[TB_ADDR_STRLEN];

	if (hs->state == H_HEAD) {
		/* RFC 9110 §15.5.9: 408 for a request that did not arrive. */
		tb_debug("http %s: handshake timeout", h_peer(hs, pb));
		h_refuse(hs, 408, NULL);
		return;
	}
	h_free(hs);
}

static const tb_stream_handler_t h_handler = {
	.on_data = h_on_data,
	.on_eof = h_on_eof,
	.on_close = h_on_close,
};

void tb_http_serve(tb_gw_listener_t *l, tb_stream_t *s, const tb_addr_t *peer, const uint8_t *initial,
		   size_t n)
{
	h_sess_t *hs = calloc(1, sizeof(*hs));
	uint32_t hto = tb_gw_handshake_timeout_ms(l);

	if (!hs) {
		tb_stream_close(s);
		return;
	}
	hs->l = l;
	hs->loop = tb_gw_loop(l);
	hs->client = s;
	hs->peer = *peer;
	hs->state = H_HEAD;
	tb_buf_init(&hs->in);
	tb_timer_init(&hs->timer, h_on_timer, hs);
	tb_gw_session_hold(l, &hs->gs, h_cancel, hs);
	tb_stream_set_handler(s, &h_handler, hs);
	if (hto)
		tb_timer_start(hs->loop, &hs->timer, hto);
	if (n && tb_buf_append(&hs->in, initial, n) < 0) {
		h_free(hs);
		return;
	}
	if (n)
		h_parse(hs);
}
#endif /* TB_FUZZ_CODEC_ONLY */
