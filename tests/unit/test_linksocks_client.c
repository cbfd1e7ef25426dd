/* test_linksocks_client.c: the client's dial, its pure parts
 * (spec/linksocks.md §2.2): URL normalisation, redirect resolution
 * (RFC 3986 §5.2, as Go's url.ResolveReference), the proxy URL and Go's
 * NO_PROXY rules. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks_client.h"

/* "ws[s]://hosthdr/path[?query]", for comparisons. */
static const char *url_str(const tb_ls_url_t *u)
{
	static char buf[2048];

	snprintf(buf, sizeof(buf), "%s://%s%s%s%s", u->tls ? "wss" : "ws", u->hosthdr, u->path,
		 u->query[0] ? "?" : "", u->query);
	return buf;
}

static void test_url_parse(void **state)
{
	static const struct {
		const char *in, *want, *host;
		uint16_t port;
	} ok[] = {
		{"example.org", "wss://example.org/socket", "example.org", 443},
		{"ws://h:8765", "ws://h:8765/socket", "h", 8765},
		{"http://h", "ws://h/socket", "h", 80},
		{"HTTPS://h/", "wss://h/socket", "h", 443},
		{"ws://h/socket/", "ws://h/socket/", "h", 80},
		{"ws://h/x/../y?a=1#frag", "ws://h/x/../y?a=1", "h", 80}, /* sent as written */
		{"ws://h?a=b", "ws://h/socket?a=b", "h", 80},
		{"ws://[::1]:9/p", "ws://[::1]:9/p", "::1", 9},
		{"ws://h/a b", "ws://h/a%20b", "h", 80},
	};
	static const char *const bad[] = {"",	      "ftp://h",  "ws://",    "ws:///x",
					  "ws://h:0", "ws://h:x", "ws://a@b/"};
	tb_ls_url_t u;
	char longpath[400];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(tb_ls_url_parse(ok[i].in, &u), 0);
		assert_string_equal(url_str(&u), ok[i].want);
		assert_string_equal(u.host, ok[i].host);
		assert_int_equal(u.port, ok[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tb_ls_url_parse(bad[i], &u), TB_EINVAL);
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "ws://h/", 7);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(tb_ls_url_parse(longpath, &u), TB_ERANGE);
}

static void test_url_resolve(void **state)
{
	static const struct {
		const char *loc, *want;
	} cases[] = {
		/* absolute, with the scheme mapped (§2.2) */
		{"ws://other:1/socket", "ws://other:1/socket"},
		{"https://other/x?y", "wss://other/x?y"},
		{"HTTP://other", "ws://other/"},
		{"wss://[::1]:8443/socket#f", "wss://[::1]:8443/socket"},
		/* network-path: the base's scheme */
		{"//n2:7/z", "ws://n2:7/z"},
		/* absolute-path, query-only, relative, dot segments (RFC 3986 §5.4.1) */
		{"/socket", "ws://base:80/socket"},
		{"/g?y", "ws://base:80/g?y"},
		{"?y", "ws://base:80/b/c/d;p?y"},
		{"#s", "ws://base:80/b/c/d;p?q"},
		{"g", "ws://base:80/b/c/g"},
		{"./g", "ws://base:80/b/c/g"},
		{"g/", "ws://base:80/b/c/g/"},
		{"..", "ws://base:80/b/"},
		{"../g", "ws://base:80/b/g"},
		{"../..", "ws://base:80/"},
		{"../../g", "ws://base:80/g"},
		{"../../../g", "ws://base:80/g"},
		{"/./g", "ws://base:80/g"},
		{"/../g", "ws://base:80/g"},
		{"g.", "ws://base:80/b/c/g."},
		{"./../g", "ws://base:80/b/g"},
		{"g/./h", "ws://base:80/b/c/g/h"},
		{"g/../h", "ws://base:80/b/c/h"},
		{"g?y/./x", "ws://base:80/b/c/g?y/./x"},
		{"/a b", "ws://base:80/a%20b"},
	};
	static const char *const bad[] = {"",	     "ftp://x/", "mailto:a@b",	 "http:g",
					  "http://", "//",	 "ws://h:99999/"};
	tb_ls_url_t base, out;

	assert_int_equal(tb_ls_url_parse("ws://base:80/b/c/d;p?q", &base), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = tb_ls_url_resolve(&base, cases[i].loc, &out);
		if (rc != 0 || strcmp(url_str(&out), cases[i].want) != 0)
			fail_msg("'%s': rc %d, got %s, want %s", cases[i].loc, rc, rc ? "-" : url_str(&out),
				 cases[i].want);
	}
	assert_int_equal(tb_ls_url_resolve(&base, "https://h2:9/", &out), 0);
	assert_true(out.tls);
	assert_string_equal(out.host, "h2");
	assert_int_equal(out.port, 9);
	assert_int_equal(tb_ls_url_resolve(&base, "wss://h3", &out), 0);
	assert_int_equal(out.port, 443);
	assert_string_equal(out.hosthdr, "h3");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(tb_ls_url_resolve(&base, bad[i], &out) < 0);
	assert_int_equal(tb_ls_url_resolve(&base, "ftp://x/", &out), TB_ENOTSUP);
	assert_true(tb_ls_is_redirect(301) && tb_ls_is_redirect(302) && tb_ls_is_redirect(303) &&
		    tb_ls_is_redirect(307) && tb_ls_is_redirect(308));
	assert_false(tb_ls_is_redirect(300) || tb_ls_is_redirect(304) || tb_ls_is_redirect(305) ||
		     tb_ls_is_redirect(306) || tb_ls_is_redirect(101) || tb_ls_is_redirect(200));
}

/* A redirect's path or query too long for the request is refused. */
static void test_url_resolve_limits(void **state)
{
	tb_ls_url_t base, out;
	char loc[3000];

	assert_int_equal(tb_ls_url_parse("ws://h/", &base), 0);
	memset(loc, 'x', sizeof(loc));
	loc[0] = '/';
	loc[TB_LS_PATH_MAX - 1] = '\0'; /* 255 bytes of path: fits with its NUL */
	assert_int_equal(tb_ls_url_resolve(&base, loc, &out), 0);
	loc[TB_LS_PATH_MAX - 1] = 'x';
	loc[TB_LS_PATH_MAX] = '\0';
	assert_int_equal(tb_ls_url_resolve(&base, loc, &out), TB_ERANGE);
	memset(loc, 'x', sizeof(loc));
	memcpy(loc, "/p?", 3);
	loc[sizeof(loc) - 1] = '\0'; /* a query past TB_LS_QUERY_MAX */
	assert_int_equal(tb_ls_url_resolve(&base, loc, &out), TB_ERANGE);
	/* a byte to %-encode near the end of the room */
	memset(loc, 'x', sizeof(loc));
	loc[0] = '/';
	loc[TB_LS_PATH_MAX - 3] = ' ';
	loc[TB_LS_PATH_MAX - 2] = '\0';
	assert_int_equal(tb_ls_url_resolve(&base, loc, &out), TB_ERANGE);
}

static void test_proxy_url(void **state)
{
	static const struct {
		const char *in, *want;
		int kind;
	} ok[] = {
		{"http://p:3128", "http://p:3128", TB_LS_PROXY_HTTP},
		{"http://p", "http://p:80", TB_LS_PROXY_HTTP}, /* Go's default port, not 8080 */
		{"p.example:8080", "http://p.example:8080", TB_LS_PROXY_HTTP},
		{"HTTP://u:p%40ss@p/ignored/path", "http://u:p%40ss@p:80", TB_LS_PROXY_HTTP},
		{"socks5://[::1]", "socks5://[::1]:1080", TB_LS_PROXY_SOCKS5},
		{"socks5h://a:b@10.0.0.1:9050", "socks5://a:b@10.0.0.1:9050", TB_LS_PROXY_SOCKS5},
	};
	static const char *const bad[] = {"ftp://p",	   "http://",	     "http://p:0",  "http://p q",
					  "http://a\"b@p", "http://p:99999", "gopher://x:1"};
	char out[TB_LS_PROXY_URL_MAX];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(tb_ls_proxy_url(ok[i].in, out, sizeof(out)), ok[i].kind);
		assert_string_equal(out, ok[i].want);
	}
	assert_int_equal(tb_ls_proxy_url("", out, sizeof(out)), TB_LS_PROXY_NONE);
	assert_int_equal(tb_ls_proxy_url("https://p", out, sizeof(out)), TB_ENOTSUP);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tb_ls_proxy_url(bad[i], out, sizeof(out)), TB_EINVAL);
	assert_int_equal(tb_ls_proxy_url("http://p:1", out, 10), TB_ERANGE);
}

static void test_no_proxy(void **state)
{
	static const struct {
		const char *list, *host;
		uint16_t port;
		bool bypass;
	} cases[] = {
		/* Go's fixed rule: localhost and loopback, whatever NO_PROXY says */
		{NULL, "localhost", 80, true},
		{NULL, "LocalHost", 80, true},
		{NULL, "127.0.0.1", 80, true},
		{NULL, "127.200.1.1", 80, true},
		{NULL, "::1", 80, true},
		{NULL, "::ffff:127.0.0.1", 80, true},
		{NULL, "foo.localhost", 80, false},
		{NULL, "example.test", 80, false},
		{"", "example.test", 80, false},
		{"*", "example.test", 80, true},
		{"a.org, *", "example.test", 80, true},
		/* domains: the name and its subdomains; a leading dot or *. subdomains only */
		{"example.test", "example.test", 80, true},
		{"example.test", "www.EXAMPLE.test", 80, true},
		{"example.test", "badexample.test", 80, false},
		{".example.test", "example.test", 80, false},
		{".example.test", "a.example.test", 80, true},
		{"*.example.test", "example.test", 80, false},
		{"*.example.test", "a.example.test", 80, true},
		{" Example.Test ", "example.test", 80, true},
		{"a.org,,b.org , example.test", "x.example.test", 80, true},
		/* ports */
		{"example.test:8765", "example.test", 8765, true},
		{"example.test:8765", "example.test", 80, false},
		{"10.1.2.3:443", "10.1.2.3", 443, true},
		{"10.1.2.3:443", "10.1.2.3", 80, false},
		{"[2001:db8::1]:80", "2001:db8::1", 80, true},
		/* IPs and CIDRs */
		{"10.1.2.3", "10.1.2.3", 80, true},
		{"10.1.2.3", "10.1.2.4", 80, false},
		{"10.0.0.0/8", "10.200.0.1", 80, true},
		{"10.0.0.0/8", "11.0.0.1", 80, false},
		{"192.168.1.0/25", "192.168.1.127", 80, true},
		{"192.168.1.0/25", "192.168.1.128", 80, false},
		{"2001:db8::/32", "2001:db8:1::5", 80, true},
		{"2001:db8::/32", "2001:db9::5", 80, false},
		{"2001:db8::1", "2001:DB8::1", 80, true},
		{"10.0.0.0/8", "example.test", 80, false},
		{"0.0.0.0/0", "203.0.113.9", 80, true},
		{"::ffff:10.0.0.0/104", "10.9.9.9", 80, true},
		{"10.1.2.3", "::ffff:10.1.2.3", 80, true},
		/* malformed entries are skipped */
		{"10.0.0.0/99, :80, [", "10.0.0.1", 80, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (tb_ls_proxy_bypass(cases[i].list, cases[i].host, cases[i].port) != cases[i].bypass)
			fail_msg("NO_PROXY '%s', %s:%u: want %s", cases[i].list ? cases[i].list : "(unset)",
				 cases[i].host, cases[i].port, cases[i].bypass ? "direct" : "proxied");
}

static void test_proxy_for(void **state)
{
	char out[TB_LS_PROXY_URL_MAX];
	tb_ls_url_t u;

	/* ws uses HTTP_PROXY, wss HTTPS_PROXY */
	assert_int_equal(tb_ls_url_parse("ws://example.test:8765", &u), 0);
	assert_int_equal(tb_ls_proxy_for(&u, "http://h:1", "http://s:2", NULL, out, sizeof(out)),
			 TB_LS_PROXY_HTTP);
	assert_string_equal(out, "http://h:1");
	assert_int_equal(tb_ls_proxy_for(&u, NULL, "http://s:2", NULL, out, sizeof(out)), TB_LS_PROXY_NONE);
	assert_int_equal(tb_ls_url_parse("example.test", &u), 0); /* wss, port 443 */
	assert_int_equal(tb_ls_proxy_for(&u, "http://h:1", "socks5://s", NULL, out, sizeof(out)),
			 TB_LS_PROXY_SOCKS5);
	assert_string_equal(out, "socks5://s:1080");
	assert_int_equal(tb_ls_proxy_for(&u, "http://h:1", "", NULL, out, sizeof(out)), TB_LS_PROXY_NONE);
	/* NO_PROXY with the scheme's default port */
	assert_int_equal(tb_ls_proxy_for(&u, NULL, "http://s:2", "example.test:443", out, sizeof(out)),
			 TB_LS_PROXY_NONE);
	assert_int_equal(tb_ls_proxy_for(&u, NULL, "http://s:2", "example.test:80", out, sizeof(out)),
			 TB_LS_PROXY_HTTP);
	/* loopback: never */
	assert_int_equal(tb_ls_url_parse("ws://127.0.0.1:8765", &u), 0);
	assert_int_equal(tb_ls_proxy_for(&u, "http://h:1", NULL, NULL, out, sizeof(out)), TB_LS_PROXY_NONE);
	assert_int_equal(tb_ls_url_parse("ws://localhost", &u), 0);
	assert_int_equal(tb_ls_proxy_for(&u, "http://h:1", NULL, NULL, out, sizeof(out)), TB_LS_PROXY_NONE);
	/* an https:// proxy is refused, not skipped */
	assert_int_equal(tb_ls_url_parse("wss://example.test", &u), 0);
	assert_int_equal(tb_ls_proxy_for(&u, NULL, "https://s", NULL, out, sizeof(out)), TB_ENOTSUP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_parse),	   cmocka_unit_test(test_url_resolve),
		cmocka_unit_test(test_url_resolve_limits), cmocka_unit_test(test_proxy_url),
		cmocka_unit_test(test_no_proxy),	   cmocka_unit_test(test_proxy_for),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
