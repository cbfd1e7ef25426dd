/* http.h: HTTP/1.1 forward proxy (RFC 9110, RFC 9112): codec and listener.
 *
 * The sans-IO half parses a bounded request head (request line and header
 * section, CRLF or bare LF line ends; NUL, bare CR and obs-fold rejected),
 * the CONNECT authority form and the http:// absolute form, decodes
 * Proxy-Authorization Basic, and builds response heads. The unit tests and
 * the fuzzer call it. tb_http_serve() is the listener: CONNECT tunnels and
 * absolute-URI forwarding, one request per client connection. */
#ifndef TB_HTTP_H
#define TB_HTTP_H

#include "tb/addr.h"

#define TB_HTTP_HEAD_MAX 8192 /* request line + headers + empty line */
#define TB_HTTP_HEADERS_MAX 64
#define TB_HTTP_RESP_HEAD_MAX 16384 /* responses carry bigger cookies */

typedef struct tb_http_span {
	const char *p; /* points into the parsed input; not NUL-terminated */
	size_t len;
} tb_http_span_t;

typedef struct tb_http_header {
	tb_http_span_t name, value; /* value without leading/trailing blanks */
} tb_http_header_t;

typedef struct tb_http_request {
	tb_http_span_t method, target;
	int minor;	 /* HTTP/1.<minor> */
	size_t head_len; /* bytes up to and including the empty line */
	size_t nheaders;
	tb_http_header_t headers[TB_HTTP_HEADERS_MAX];
} tb_http_request_t;

/* Parses the head at the start of p. Returns head_len (> 0), TB_EAGAIN when
 * the empty line has not arrived yet, TB_ERANGE when the head would exceed
 * TB_HTTP_HEAD_MAX or has more than TB_HTTP_HEADERS_MAX fields (431),
 * TB_ENOTSUP for an HTTP major version other than 1 (505), TB_EPROTO for
 * anything malformed (400). */
int tb_http_request_parse(const uint8_t *p, size_t n, tb_http_request_t *r);
/* An origin's response head, into the same structure: method spans the
 * HTTP-version, target the reason phrase, *status the status code. Same
 * returns as above, with TB_HTTP_RESP_HEAD_MAX as the bound. */
int tb_http_response_parse(const uint8_t *p, size_t n, tb_http_request_t *r, int *status);
/* The first field named name (case-insensitive), or NULL. */
const tb_http_span_t *tb_http_header_get(const tb_http_request_t *r, const char *name);
/* Case-insensitive comparison of a span with a C string. */
bool tb_http_span_eq(const tb_http_span_t *s, const char *str);

/* authority = host ":" port, host a name, an IPv4 literal or "[v6]"
 * (RFC 9112 §3.2.3). When default_port is 0 the port is required.
 * TB_EPROTO when malformed, TB_ERANGE when the host is too long. */
int tb_http_authority_parse(const char *p, size_t n, uint16_t default_port, tb_target_t *t);
/* "http://authority[/path][?query]" (scheme case-insensitive, RFC 9112
 * §3.2.2). *authority spans the authority; *path the origin form that
 * follows, empty when the URI has none (then "/" is meant). TB_ENOTSUP for
 * https:// or another scheme (a forward proxy cannot do TLS for the
 * client), TB_EPROTO when not an absolute URI or malformed. */
int tb_http_absolute_parse(const char *p, size_t n, tb_target_t *t, tb_http_span_t *authority,
			   tb_http_span_t *path);

/* Standard base64 (RFC 4648 §4), padding optional, no whitespace. Returns
 * the bytes written, TB_EPROTO on a bad character or length, TB_ERANGE
 * when out is too small (3 * ceil(n / 4) always fits). */
int tb_http_base64_decode(const char *in, size_t n, uint8_t *out, size_t cap);
/* Proxy-Authorization: "Basic" 1*SP token68 (RFC 7617). Decodes into buf
 * and splits user-id and password at the first ':'. 0 or TB_EPROTO. */
int tb_http_basic_parse(const char *v, size_t n, uint8_t *buf, size_t cap, tb_http_span_t *user,
			tb_http_span_t *pass);

/* "HTTP/1.1 <status> <reason>\r\n" + headers (already "Name: v\r\n" lines,
 * may be NULL) + "\r\n". Returns the length or TB_ERANGE. */
int tb_http_response_build(char *out, size_t cap, int status, const char *headers);
const char *tb_http_reason(int status);
/* Connect errors -> status: ETIMEDOUT 504, EDENIED 403, anything else 502. */
int tb_http_status_from_err(int err);
/* Parse errors -> status: ERANGE 431, ENOTSUP 505, anything else 400. */
int tb_http_status_from_parse(int err);

/* ---- the listener ---- */
struct tb_gw_listener;
struct tb_stream;
/* Takes ownership of s; initial/n as in tb_socks5_serve(). */
void tb_http_serve(struct tb_gw_listener *l, struct tb_stream *s, const tb_addr_t *peer,
		   const uint8_t *initial, size_t n);

#endif
