/* test_http.c: the HTTP proxy codec (RFC 9110, RFC 9112). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/http.h"

static int parse(const char *s, tb_http_request_t *r)
{
	return tb_http_request_parse((const uint8_t *)s, strlen(s), r);
}

static void assert_span(const tb_http_span_t *s, const char *want)
{
	assert_int_equal(s->len, strlen(want));
	assert_memory_equal(s->p, want, s->len);
}

static void test_connect(void **state)
{
	static const char req[] = "CONNECT example.com:443 HTTP/1.1\r\n"
				  "Host: example.com:443\r\n"
				  "User-Agent: curl/8.5.0\r\n"
				  "Proxy-Connection: Keep-Alive\r\n"
				  "\r\n";
	tb_http_request_t r;
	tb_target_t t;

	(void)state;
	assert_int_equal(parse(req, &r), (int)strlen(req));
	assert_int_equal(r.head_len, strlen(req));
	assert_span(&r.method, "CONNECT");
	assert_span(&r.target, "example.com:443");
	assert_int_equal(r.minor, 1);
	assert_int_equal(r.nheaders, 3);
	assert_span(&r.headers[0].name, "Host");
	assert_span(&r.headers[0].value, "example.com:443");
	assert_span(&r.headers[2].value, "Keep-Alive");
	assert_non_null(tb_http_header_get(&r, "proxy-connection"));
	assert_span(tb_http_header_get(&r, "USER-AGENT"), "curl/8.5.0");
	assert_null(tb_http_header_get(&r, "Proxy-Authorization"));

	assert_int_equal(tb_http_authority_parse(r.target.p, r.target.len, 0, &t), 0);
	assert_string_equal(t.host, "example.com");
	assert_int_equal(t.port, 443);
	assert_false(t.is_ip);
}

static void test_incomplete(void **state)
{
	static const char req[] = "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n";
	tb_http_request_t r;

	(void)state;
	/* Every prefix asks for more; the body that follows is not counted. */
	for (size_t k = 0; k < strlen(req); k++)
		assert_int_equal(tb_http_request_parse((const uint8_t *)req, k, &r), TB_EAGAIN);
	char body[sizeof(req) + 5];
	snprintf(body, sizeof(body), "%sbody", req);
	assert_int_equal(parse(body, &r), (int)strlen(req));
}

static void test_lf_only(void **state)
{
	static const char req[] = "GET http://h:8080/x HTTP/1.0\nHost: h\nAccept: */*\n\n";
	tb_http_request_t r;

	(void)state;
	assert_int_equal(parse(req, &r), (int)strlen(req));
	assert_int_equal(r.minor, 0);
	assert_int_equal(r.nheaders, 2);
	assert_span(&r.headers[1].value, "*/*");
	/* Mixed line ends, and empty lines before the request line. */
	assert_int_equal(parse("\r\n\nGET http://h/ HTTP/1.1\nA: b\r\n\n", &r), 33);
	assert_span(&r.method, "GET");
}

static void test_values_trimmed(void **state)
{
	tb_http_request_t r;

	(void)state;
	assert_true(parse("GET http://h/ HTTP/1.1\r\nA:b\r\nB: \t x y \t\r\nC:\r\n\r\n", &r) > 0);
	assert_int_equal(r.nheaders, 3);
	assert_span(&r.headers[0].value, "b");
	assert_span(&r.headers[1].value, "x y");
	assert_span(&r.headers[2].value, "");
	/* obs-text is allowed in values. */
	assert_true(parse("GET http://h/ HTTP/1.1\r\nA: caf\xc3\xa9\r\n\r\n", &r) > 0);
}

static void test_bad_requests(void **state)
{
	static const char *const bad[] = {
		"GET http://h/ HTTP/1.1\r\nA: b\r\n c\r\n\r\n", /* obs-fold */
		"GET http://h/ HTTP/1.1\r\nA : b\r\n\r\n",	/* space before colon */
		"GET http://h/ HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\n: b\r\n\r\n", /* empty name */
		"GET http://h/ HTTP/1.1\r\nA\x01: b\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nA: b\x7f\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nA: b\rc\r\n\r\n", /* bare CR */
		"GET  http://h/ HTTP/1.1\r\n\r\n",	     /* double space */
		"GET http://h/  HTTP/1.1\r\n\r\n",
		"GET http://h/\r\n\r\n", /* HTTP/0.9 */
		"GET http://h/ HTTP/1.1 \r\n\r\n",
		"GET http://h/ http/1.1\r\n\r\n",
		"GET http://h/ HTTP/1.10\r\n\r\n",
		"GET http://h/ HTTP/x.1\r\n\r\n",
		"G(T http://h/ HTTP/1.1\r\n\r\n", /* not a token */
		" GET http://h/ HTTP/1.1\r\n\r\n",
		"GET http://h/\x80 HTTP/1.1\r\n\r\n",
		"GET http://h/\t HTTP/1.1\r\n\r\n",
		"\x05\x01\x02\n\n",
	};
	tb_http_request_t r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(parse(bad[i], &r), TB_EPROTO);
	}
	/* NUL, even before the line ends. */
	assert_int_equal(tb_http_request_parse((const uint8_t *)"GET \0", 5, &r), TB_EPROTO);
	assert_int_equal(tb_http_request_parse((const uint8_t *)"GET / HTTP/1.1\r\nA: \0\r\n\r\n", 22, &r),
			 TB_EPROTO);
	assert_int_equal(tb_http_status_from_parse(TB_EPROTO), 400);
}

static void test_version(void **state)
{
	tb_http_request_t r;

	(void)state;
	assert_int_equal(parse("GET http://h/ HTTP/2.0\r\n\r\n", &r), TB_ENOTSUP);
	assert_int_equal(parse("GET http://h/ HTTP/0.9\r\n\r\n", &r), TB_ENOTSUP);
	assert_int_equal(tb_http_status_from_parse(TB_ENOTSUP), 505);
	assert_true(parse("GET http://h/ HTTP/1.9\r\n\r\n", &r) > 0);
	assert_int_equal(r.minor, 9);
}

static void test_oversize(void **state)
{
	char *big = malloc(TB_HTTP_HEAD_MAX + 64);
	tb_http_request_t r;
	size_t n;

	(void)state;
	assert_non_null(big);
	/* A head of exactly the limit is fine ... */
	n = (size_t)snprintf(big, 64, "GET http://h/ HTTP/1.1\r\nX: ");
	memset(big + n, 'a', TB_HTTP_HEAD_MAX - n - 4);
	memcpy(big + TB_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(tb_http_request_parse((uint8_t *)big, TB_HTTP_HEAD_MAX, &r), TB_HTTP_HEAD_MAX);
	/* ... one byte more is not, wherever the end would be. */
	memset(big + n, 'a', TB_HTTP_HEAD_MAX - n - 3);
	memcpy(big + TB_HTTP_HEAD_MAX - 3, "\r\n\r\n", 4);
	assert_int_equal(tb_http_request_parse((uint8_t *)big, TB_HTTP_HEAD_MAX + 1, &r), TB_ERANGE);
	assert_int_equal(tb_http_request_parse((uint8_t *)big, TB_HTTP_HEAD_MAX, &r), TB_ERANGE);
	assert_int_equal(tb_http_request_parse((uint8_t *)big, TB_HTTP_HEAD_MAX - 1, &r), TB_EAGAIN);
	assert_int_equal(tb_http_status_from_parse(TB_ERANGE), 431);
	free(big);
}

static void test_too_many_headers(void **state)
{
	char buf[2048];
	tb_http_request_t r;
	size_t n = (size_t)snprintf(buf, sizeof(buf), "GET http://h/ HTTP/1.1\r\n");

	(void)state;
	for (int i = 0; i < TB_HTTP_HEADERS_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "H%d: v\r\n", i);
	snprintf(buf + n, sizeof(buf) - n, "\r\n");
	assert_true(parse(buf, &r) > 0);
	assert_int_equal(r.nheaders, TB_HTTP_HEADERS_MAX);
	snprintf(buf + n, sizeof(buf) - n, "One: more\r\n\r\n");
	assert_int_equal(parse(buf, &r), TB_ERANGE);
}

static void test_authority(void **state)
{
	tb_target_t t;

	(void)state;
	assert_int_equal(tb_http_authority_parse("10.1.2.3:22", 11, 0, &t), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.port, 22);
	assert_int_equal(tb_http_authority_parse("[2001:db8::1]:8443", 18, 0, &t), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.addr.family, TB_AF_INET6);
	assert_string_equal(t.host, "2001:db8::1");
	assert_int_equal(t.port, 8443);
	assert_int_equal(tb_http_authority_parse("[::1]", 5, 80, &t), 0);
	assert_int_equal(t.port, 80);
	assert_int_equal(tb_http_authority_parse("h:", 2, 80, &t), 0);
	assert_int_equal(t.port, 80);
	assert_int_equal(tb_http_authority_parse("a-b.c_d:65535", 13, 0, &t), 0);
	assert_int_equal(t.port, 65535);

	static const char *const bad[] = {
		"example.com", /* CONNECT needs a port */
		"example.com:",
		"example.com:0",
		"example.com:65536",
		"example.com:99999999",
		"example.com:+80",
		"example.com:8a",
		":80",
		"::1:80", /* IPv6 without brackets */
		"[::1:80",
		"[::1]x:80",
		"[not-v6]:80",
		"[1.2.3.4]:80",
		"user@host:80",
		"ho st:80",
		"h%41:80",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %s\n", bad[i]);
		assert_int_equal(tb_http_authority_parse(bad[i], strlen(bad[i]), 0, &t), TB_EPROTO);
	}
	char longhost[300];
	memset(longhost, 'a', 256);
	memcpy(longhost + 256, ":80", 4);
	assert_int_equal(tb_http_authority_parse(longhost, strlen(longhost), 0, &t), TB_ERANGE);
	assert_int_equal(tb_http_authority_parse(longhost + 1, strlen(longhost + 1), 0, &t), 0);
}

static void test_absolute(void **state)
{
	tb_http_span_t auth, path;
	tb_target_t t;
	const char *u;

	(void)state;
	u = "http://example.com:8080/a/b?q=1#frag";
	assert_int_equal(tb_http_absolute_parse(u, strlen(u), &t, &auth, &path), 0);
	assert_string_equal(t.host, "example.com");
	assert_int_equal(t.port, 8080);
	assert_span(&auth, "example.com:8080");
	assert_span(&path, "/a/b?q=1");

	u = "HTTP://Example.com";
	assert_int_equal(tb_http_absolute_parse(u, strlen(u), &t, &auth, &path), 0);
	assert_int_equal(t.port, 80);
	assert_span(&auth, "Example.com");
	assert_int_equal(path.len, 0);

	u = "http://h?x=y";
	assert_int_equal(tb_http_absolute_parse(u, strlen(u), &t, &auth, &path), 0);
	assert_span(&path, "?x=y");

	u = "http://[::1]:81/";
	assert_int_equal(tb_http_absolute_parse(u, strlen(u), &t, &auth, &path), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.port, 81);
	assert_span(&auth, "[::1]:81");
	assert_span(&path, "/");

	u = "https://example.com/";
	assert_int_equal(tb_http_absolute_parse(u, strlen(u), &t, &auth, &path), TB_ENOTSUP);
	u = "ftp://example.com/";
	assert_int_equal(tb_http_absolute_parse(u, strlen(u), &t, &auth, &path), TB_ENOTSUP);
	static const char *const bad[] = {"/index.html",   "*",		  "example.com:80",
					  "http:/x/",	   "http://",	  "http:///p",
					  "http://u:p@h/", "http://h:0/", "1http://h/"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %s\n", bad[i]);
		assert_int_equal(tb_http_absolute_parse(bad[i], strlen(bad[i]), &t, &auth, &path), TB_EPROTO);
	}
}

static void test_base64(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"", ""},
		{"Zg==", "f"},
		{"Zm8=", "fo"},
		{"Zm9v", "foo"},
		{"Zm9vYg==", "foob"},
		{"Zm9vYmE=", "fooba"},
		{"Zm9vYmFy", "foobar"},
		{"Zg", "f"},
		{"Zm8", "fo"},
		{"+/+/", "\xfb\xff\xbf"},
	};
	static const char *const bad[] = {
		"Z", "Zg=", "Z===", "====", "Zm9v!A==", "Zm 9v", "Zg==Zg==", "Zm9vY"};
	uint8_t out[16];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int n = tb_http_base64_decode(ok[i].in, strlen(ok[i].in), out, sizeof(out));

		assert_int_equal(n, strlen(ok[i].out));
		assert_memory_equal(out, ok[i].out, (size_t)n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("case %s\n", bad[i]);
		assert_int_equal(tb_http_base64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), TB_EPROTO);
	}
	assert_int_equal(tb_http_base64_decode("Zm9vYmFy", 8, out, 5), TB_ERANGE);
	assert_int_equal(tb_http_base64_decode("Zm9vYmFy", 8, out, 6), 6);
}

static void test_basic(void **state)
{
	tb_http_span_t u, p;
	uint8_t buf[64];
	const char *v;

	(void)state;
	v = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="; /* RFC 7617 §2 */
	assert_int_equal(tb_http_basic_parse(v, strlen(v), buf, sizeof(buf), &u, &p), 0);
	assert_span(&u, "Aladdin");
	assert_span(&p, "open sesame");
	v = "basic  dXNlcjpwYTpzczo="; /* "user:pa:ss:" */
	assert_int_equal(tb_http_basic_parse(v, strlen(v), buf, sizeof(buf), &u, &p), 0);
	assert_span(&u, "user");
	assert_span(&p, "pa:ss:");
	v = "Basic OnB3"; /* ":pw": empty user */
	assert_int_equal(tb_http_basic_parse(v, strlen(v), buf, sizeof(buf), &u, &p), 0);
	assert_int_equal(u.len, 0);
	assert_span(&p, "pw");

	static const char *const bad[] = {"Bearer abc", "Basic",	  "Basic ",
					  "BasicQWxh",	"Basic dXNlcg==", "Basic !!!!"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tb_http_basic_parse(bad[i], strlen(bad[i]), buf, sizeof(buf), &u, &p),
				 TB_EPROTO);
	v = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";
	assert_int_equal(tb_http_basic_parse(v, strlen(v), buf, 8, &u, &p), TB_EPROTO);
}

static void test_response_build(void **state)
{
	char out[256];
	int n;

	(void)state;
	n = tb_http_response_build(out, sizeof(out), 407,
				   "Proxy-Authenticate: Basic realm=\"tunnelbox\"\r\n");

	assert_int_equal(n, (int)strlen(out));
	assert_string_equal(out, "HTTP/1.1 407 Proxy Authentication Required\r\n"
				 "Proxy-Authenticate: Basic realm=\"tunnelbox\"\r\n\r\n");
	assert_int_equal(tb_http_response_build(out, sizeof(out), 502, NULL), 28);
	assert_string_equal(out, "HTTP/1.1 502 Bad Gateway\r\n\r\n");
	assert_int_equal(tb_http_response_build(out, 28, 502, NULL), TB_ERANGE);
	assert_int_equal(tb_http_response_build(out, sizeof(out), 42, NULL), TB_ERANGE);
	assert_string_equal(tb_http_reason(508), "Loop Detected");
	assert_string_equal(tb_http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(tb_http_reason(504), "Gateway Timeout");
}

static void test_status_mapping(void **state)
{
	(void)state;
	assert_int_equal(tb_http_status_from_err(TB_ECONNREFUSED), 502);
	assert_int_equal(tb_http_status_from_err(TB_ENETUNREACH), 502);
	assert_int_equal(tb_http_status_from_err(TB_EHOSTUNREACH), 502);
	assert_int_equal(tb_http_status_from_err(TB_ETIMEDOUT), 504);
	assert_int_equal(tb_http_status_from_err(TB_EDENIED), 403);
	assert_int_equal(tb_http_status_from_err(TB_ENOENT), 502);
}

static void test_response_parse(void **state)
{
	static const char resp[] =
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
	tb_http_request_t r;
	int status = 0;

	(void)state;
	assert_int_equal(tb_http_response_parse((const uint8_t *)resp, strlen(resp), &r, &status),
			 (int)strlen(resp) - 5);
	assert_int_equal(status, 200);
	assert_span(&r.target, "OK");
	assert_int_equal(r.nheaders, 2);
	for (size_t k = 0; k < strlen(resp) - 5; k++)
		assert_int_equal(tb_http_response_parse((const uint8_t *)resp, k, &r, &status), TB_EAGAIN);
	assert_true(tb_http_response_parse((const uint8_t *)"HTTP/1.0 204\n\n", 14, &r, &status) > 0);
	assert_int_equal(status, 204);
	assert_int_equal(r.target.len, 0);
	assert_int_equal(tb_http_response_parse((const uint8_t *)"HTTP/1.1 20 OK\r\n\r\n", 18, &r, &status),
			 TB_EPROTO);
	assert_int_equal(tb_http_response_parse((const uint8_t *)"ICY 200 OK\r\n\r\n", 14, &r, &status),
			 TB_EPROTO);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_lf_only),
		cmocka_unit_test(test_values_trimmed),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_too_many_headers),
		cmocka_unit_test(test_authority),
		cmocka_unit_test(test_absolute),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_response_build),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_response_parse),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
