/* test_router.c: [[router]] and [[data]] matching (spec/rogv2.md §6). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tb/log.h"
#include "tb/router.h"

/* The fixtures sit beside this file (TB_UNIT_DIR is tests/unit). */
#define UNIT_DIR TB_UNIT_DIR
#define FIXTURES UNIT_DIR "/router"

static int parse_as(const char *file, const char *toml, tb_conf_t **c)
{
	tb_conf_err_t err;
	int rc = tb_conf_parse(toml, strlen(toml), file, c, &err);

	if (rc)
		fail_msg("TOML: %d:%d: %s: %s", err.line, err.col, err.key, err.msg);
	return rc;
}

/* Loads a config that must be valid. The conf tree is freed at once: the
 * routing must not keep pointers into it. */
static tb_routing_t *load_as(const char *file, const char *toml)
{
	tb_conf_t *c;
	tb_routing_t *r = NULL;
	tb_conf_err_t err;
	int rc;

	parse_as(file, toml, &c);
	rc = tb_routing_load(c, &r, &err);
	tb_conf_free(c);
	if (rc)
		fail_msg("routing: %d:%d: %s: %s", err.line, err.col, err.key, err.msg);
	return r;
}

static tb_routing_t *load(const char *toml)
{
	return load_as("test.toml", toml);
}

/* A config that must be refused; err gets the position. */
static int load_err(const char *toml, tb_conf_err_t *err)
{
	tb_conf_t *c;
	tb_routing_t *r = NULL;
	int rc;

	parse_as("test.toml", toml, &c);
	rc = tb_routing_load(c, &r, err);
	tb_conf_free(c);
	assert_null(r);
	return rc;
}

static const tb_router_t *router(const tb_routing_t *r, const char *name)
{
	const tb_router_t *rt = tb_routing_find(r, name);

	assert_non_null(rt);
	return rt;
}

static void target(tb_target_t *t, const char *host)
{
	assert_int_equal(tb_target_set(t, host, strlen(host), 443), 0);
}

static const char *sel(const tb_routing_t *r, const char *host)
{
	tb_target_t t;

	target(&t, host);
	return tb_router_select(router(r, "main"), &t, NULL, 0);
}

static const char *sel_ips(const tb_routing_t *r, const char *host, const char *const *ips, size_t n)
{
	tb_addr_t a[8];
	tb_target_t t;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tb_addr_parse_ip(ips[i], &a[i]), 0);
	target(&t, host);
	return tb_router_select(router(r, "main"), &t, a, n);
}

/* One router "main" with default "direct" and one rule selecting "proxy"
 * by the data set "set" of the given format and inline lines. */
#define ONE_RULE(format, lines, exclude)                                                \
	"[[data]]\nname = \"set\"\nformat = \"" format "\"\ndata = '''\n" lines "'''\n" \
	"[[router]]\nname = \"main\"\ndefault = \"direct\"\n"                           \
	"[[router.route_rules]]\nname = \"set\"\nselect = \"proxy\"\nexclude = " exclude "\n"

static void test_default_only(void **state)
{
	tb_routing_t *r = load("[[router]]\nname = \"main\"\ndefault = \"direct\"\n");

	assert_string_equal(tb_router_name(router(r, "main")), "main");
	assert_null(tb_routing_find(r, "other"));
	assert_string_equal(sel(r, "example.com"), "direct");
	assert_string_equal(sel(r, "10.0.0.1"), "direct");
	assert_string_equal(sel(r, "::1"), "direct");
	tb_routing_free(r);
}

static void test_no_routers(void **state)
{
	tb_routing_t *r = load("x = 1\n");

	assert_null(tb_routing_find(r, "main"));
	tb_routing_free(r);
}

static void test_cidr(void **state)
{
	tb_routing_t *r = load(ONE_RULE("cidr",
					"10.0.0.0/8\n"
					"  172.20.1.9/16  \n" /* host bits set, spaces */
					"\n"
					"2001:db8::/32\n"
					"1.2.3.4\n"
					"2001:db8:ffff::1:2/128\n"
					"fe80::1\n"
					"0.0.0.0/1\n"
					"192.0.2.0/33\n" /* not a CIDR: an exact host */
					"example.com\n",
					"[]"));

	assert_string_equal(sel(r, "10.0.0.0"), "proxy");
	assert_string_equal(sel(r, "10.255.255.255"), "proxy");
	assert_string_equal(sel(r, "172.20.200.1"), "proxy");
	assert_string_equal(sel(r, "172.21.0.1"), "direct");
	assert_string_equal(sel(r, "1.2.3.4"), "proxy");
	assert_string_equal(sel(r, "127.0.0.1"), "proxy"); /* 0.0.0.0/1 */
	assert_string_equal(sel(r, "128.0.0.1"), "direct");
	assert_string_equal(sel(r, "192.0.2.1"), "direct");
	assert_string_equal(sel(r, "192.0.2.0/33"), "proxy");
	assert_string_equal(sel(r, "2001:db8::1"), "proxy");
	assert_string_equal(sel(r, "2001:db8:ffff:ffff::"), "proxy");
	assert_string_equal(sel(r, "2001:db9::1"), "direct");
	assert_string_equal(sel(r, "fe80::1"), "proxy");
	assert_string_equal(sel(r, "fe80::2"), "direct");
	/* An IPv4 prefix never matches IPv6, even mapped. */
	assert_string_equal(sel(r, "::ffff:10.0.0.1"), "direct");
	/* Other lines are exact, case-sensitive host names. */
	assert_string_equal(sel(r, "example.com"), "proxy");
	assert_string_equal(sel(r, "Example.com"), "direct");
	assert_string_equal(sel(r, "a.example.com"), "direct");
	assert_string_equal(sel(r, "example.co"), "direct");
	tb_routing_free(r);
}

static void test_cidr_overlaps(void **state)
{
	/* Nested and overlapping prefixes, in any order. */
	tb_routing_t *r = load(ONE_RULE("cidr",
					"10.1.0.0/16\n10.0.0.0/8\n10.1.2.0/24\n"
					"192.168.1.0/24\n192.168.0.0/23\n192.168.1.128/25\n"
					"2001:db8:1::/48\n2001:db8::/32\n",
					"[]"));

	assert_string_equal(sel(r, "10.2.0.0"), "proxy");
	assert_string_equal(sel(r, "10.1.2.3"), "proxy");
	assert_string_equal(sel(r, "11.0.0.0"), "direct");
	assert_string_equal(sel(r, "192.168.0.5"), "proxy");
	assert_string_equal(sel(r, "192.168.1.200"), "proxy");
	assert_string_equal(sel(r, "192.168.2.0"), "direct");
	assert_string_equal(sel(r, "2001:db8:2::1"), "proxy");
	tb_routing_free(r);
}

static void test_regex(void **state)
{
	tb_routing_t *r;

	if (!ENABLE_ROUTER_REGEX) {
		/* Without regex support every non-IP line is an exact host. */
		r = load(ONE_RULE("regex", "goo+gle\n10.0.0.0/8\n", "[]"));
		assert_string_equal(sel(r, "goo+gle"), "proxy");
		assert_string_equal(sel(r, "google"), "direct");
		assert_string_equal(sel(r, "10.1.1.1"), "proxy");
		tb_routing_free(r);
		return;
	}
	r = load(ONE_RULE("regex",
			  "goo+gle\n"
			  "^ads\\.\n"
			  "\\.cn$\n"
			  "0\\.0\n" /* a regex, never tried against IP hosts */
			  "bad[\n"  /* does not compile: an exact host */
			  "198.51.100.0/24\n"
			  "2001:db8::7\n",
			  "[]"));

	assert_string_equal(sel(r, "www.google.com"), "proxy"); /* unanchored */
	assert_string_equal(sel(r, "gooooogle"), "proxy");
	assert_string_equal(sel(r, "gogle.com"), "direct");
	assert_string_equal(sel(r, "ads.example.com"), "proxy");
	assert_string_equal(sel(r, "x.ads.example.com"), "direct");
	assert_string_equal(sel(r, "baidu.cn"), "proxy");
	assert_string_equal(sel(r, "baidu.cn.com"), "direct");
	assert_string_equal(sel(r, "GOOGLE.com"), "direct"); /* case-sensitive */
	assert_string_equal(sel(r, "bad["), "proxy");
	assert_string_equal(sel(r, "xbad["), "direct");
	assert_string_equal(sel(r, "host0.0x"), "proxy");
	assert_string_equal(sel(r, "host0x0"), "direct");
	assert_string_equal(sel(r, "10.0.0.1"), "direct");
	assert_string_equal(sel(r, "198.51.100.77"), "proxy");
	assert_string_equal(sel(r, "2001:db8::7"), "proxy");
	assert_string_equal(sel(r, "2001:db8::8"), "direct");
	tb_routing_free(r);
}

static void test_domain(void **state)
{
	tb_routing_t *r = load(ONE_RULE("domain",
					"example.com\n"
					"*.Test.ORG\n"
					".net.cn\n"
					"trailing.dot.\n"
					"10.0.0.0/8\n",
					"[]"));

	assert_string_equal(sel(r, "example.com"), "proxy");
	assert_string_equal(sel(r, "a.example.com"), "proxy");
	assert_string_equal(sel(r, "a.b.c.example.com"), "proxy");
	assert_string_equal(sel(r, "A.EXAMPLE.COM"), "proxy");
	assert_string_equal(sel(r, "example.com."), "proxy");
	assert_string_equal(sel(r, "badexample.com"), "direct");
	assert_string_equal(sel(r, "example.com.evil"), "direct");
	assert_string_equal(sel(r, "com"), "direct");
	assert_string_equal(sel(r, "test.org"), "proxy");
	assert_string_equal(sel(r, "x.TEST.org"), "proxy");
	assert_string_equal(sel(r, "net.cn"), "proxy");
	assert_string_equal(sel(r, "www.net.cn"), "proxy");
	assert_string_equal(sel(r, "cn"), "direct");
	assert_string_equal(sel(r, "trailing.dot"), "proxy");
	assert_string_equal(sel(r, "10.9.8.7"), "proxy");
	assert_string_equal(sel(r, "11.9.8.7"), "direct");
	tb_routing_free(r);
}

static void test_lan(void **state)
{
	/* §6: lan is built in and ignores any source. */
	tb_routing_t *r = load(ONE_RULE("lan", "8.8.8.8\nexample.com\n", "[]"));
	static const char *const yes[] = {
		"10.0.0.0",    "10.255.255.255",  "172.16.0.0", "172.31.255.255",
		"192.168.0.1", "192.168.255.255", "127.0.0.1",	"127.255.255.254",
	};
	static const char *const no[] = {
		"9.255.255.255", "11.0.0.0",	"172.15.255.255", "172.32.0.1", "192.167.255.255",
		"192.169.0.0",	 "128.0.0.1",	"8.8.8.8",	  "::1",	"fd00::1",
		"localhost",	 "example.com",
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_string_equal(sel(r, yes[i]), "proxy");
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_string_equal(sel(r, no[i]), "direct");
	tb_routing_free(r);
}

static void test_exclude(void **state)
{
	/* Invalid entries (and, without regex support, regexes) are ignored. */
	tb_routing_t *r =
		load(ONE_RULE("cidr", "10.0.0.0/8\n2001:db8::/32\nkeep.example\n",
			      "[\"10.1.0.0/16\", \"10.2.3.4\", \"2001:db8::1\", \"::ffff:10.5.0.0/112\","
			      " \"bad/cidr\", \"10.0.0.0/40\", \"10.6.0.0/\", \"(\"]"));

	assert_string_equal(sel(r, "10.1.5.5"), "direct"); /* CIDR */
	assert_string_equal(sel(r, "10.2.3.4"), "direct"); /* exact IP */
	assert_string_equal(sel(r, "10.2.3.5"), "proxy");
	assert_string_equal(sel(r, "10.5.0.1"), "proxy"); /* a v6 exclude never hits v4 */
	assert_string_equal(sel(r, "10.6.0.1"), "proxy");
	assert_string_equal(sel(r, "2001:db8::1"), "direct");
	assert_string_equal(sel(r, "2001:db8::2"), "proxy");
	assert_string_equal(sel(r, "keep.example"), "proxy");
	tb_routing_free(r);
}

static void test_exclude_regex(void **state)
{
	tb_routing_t *r;

	if (!ENABLE_ROUTER_REGEX)
		skip();
	r = load(ONE_RULE("cidr", "10.0.0.0/8\nskip.example\nkeep.example\n",
			  "[\"^skip\\\\.\", \"^10\\\\.3\\\\.\"]"));

	assert_string_equal(sel(r, "skip.example"), "direct");
	assert_string_equal(sel(r, "keep.example"), "proxy");
	assert_string_equal(sel(r, "10.3.0.1"), "direct"); /* regex against the IP's text */
	assert_string_equal(sel(r, "10.4.0.1"), "proxy");
	assert_string_equal(sel(r, "10.10.3.1"), "proxy"); /* anchored by ^ */
	tb_routing_free(r);
}

static void test_first_match(void **state)
{
	tb_routing_t *r =
		load("[[data]]\nname = \"a\"\nformat = \"cidr\"\ndata = \"10.0.0.0/8\"\n"
		     "[[data]]\nname = \"b\"\nformat = \"cidr\"\ndata = \"10.1.0.0/16\\n11.0.0.0/8\"\n"
		     "[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
		     "[[router.route_rules]]\nname = \"a\"\nselect = \"first\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"b\"\nselect = \"second\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"a\"\nselect = \"never\"\nexclude = []\n"
		     "[[router]]\nname = \"other\"\ndefault = \"block\"\n"
		     "[[router.route_rules]]\nname = \"b\"\nselect = \"second\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"a\"\nselect = \"first\"\nexclude = []\n");
	tb_target_t t;

	assert_string_equal(sel(r, "10.1.0.1"), "first");
	assert_string_equal(sel(r, "11.1.0.1"), "second");
	assert_string_equal(sel(r, "12.0.0.1"), "direct");
	target(&t, "10.1.0.1");
	assert_string_equal(tb_router_select(router(r, "other"), &t, NULL, 0), "second");
	target(&t, "10.2.0.1");
	assert_string_equal(tb_router_select(router(r, "other"), &t, NULL, 0), "first");
	target(&t, "12.0.0.1");
	assert_string_equal(tb_router_select(router(r, "other"), &t, NULL, 0), "block");
	tb_routing_free(r);
}

static void test_missing_and_unusable_sets(void **state)
{
	tb_routing_t *r =
		load("[[data]]\nname = \"odd\"\nformat = \"geoip\"\ndata = \"10.0.0.0/8\"\n"
		     "[[data]]\nname = \"web\"\nformat = \"cidr\"\nurl = \"https://example.com/list\"\n"
		     "[[data]]\nname = \"gone\"\nformat = \"cidr\"\nfile = \"/nonexistent/tb/list.txt\"\n"
		     "[[data]]\nname = \"all\"\nformat = \"cidr\"\ndata = \"0.0.0.0/0\"\n"
		     "[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
		     "[[router.route_rules]]\nname = \"nope\"\nselect = \"a\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"odd\"\nselect = \"b\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"web\"\nselect = \"c\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"gone\"\nselect = \"d\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"all\"\nselect = \"e\"\nexclude = []\n");

	assert_string_equal(sel(r, "10.0.0.1"), "e");
	assert_string_equal(sel(r, "example.com"), "direct");
	tb_routing_free(r);
}

static const char *const resolved[] = {"8.8.8.8", "93.184.216.34"};

static void test_domain_to_ip(void **state)
{
	tb_routing_t *r = load("[[data]]\nname = \"ips\"\nformat = \"cidr\"\ndata = \"93.184.0.0/16\"\n"
			       "[[data]]\nname = \"names\"\nformat = \"domain\"\ndata = \"local.test\"\n"
			       "[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
			       "[[router.route_rules]]\nname = \"names\"\nselect = \"lan\"\nexclude = []\n"
			       "domain_to_ip = true\n"
			       "[[router.route_rules]]\nname = \"ips\"\nselect = \"proxy\"\nexclude = []\n"
			       "domain_to_ip = true\ndns = \"1.1.1.1:53\"\n"
			       "[[router]]\nname = \"plain\"\ndefault = \"direct\"\n"
			       "[[router.route_rules]]\nname = \"ips\"\nselect = \"proxy\"\nexclude = []\n");
	const char *dns = "unset";
	tb_target_t t;

	/* The "names" rule has no IP lines, so resolving for it is pointless;
	 * the "ips" rule wants IPs, from its own server. */
	target(&t, "example.com");
	assert_true(tb_router_wants_ips(router(r, "main"), &t, &dns));
	assert_non_null(dns);
	assert_string_equal(dns, "1.1.1.1:53");
	assert_string_equal(sel_ips(r, "example.com", resolved, 2), "proxy");
	assert_string_equal(sel_ips(r, "example.com", resolved, 1), "direct");
	assert_string_equal(sel(r, "example.com"), "direct");
	/* A host decided by an earlier rule needs no lookup. */
	target(&t, "a.local.test");
	assert_false(tb_router_wants_ips(router(r, "main"), &t, &dns));
	assert_null(dns);
	assert_string_equal(sel_ips(r, "a.local.test", resolved, 2), "lan");
	/* An IP host is its own candidate. */
	target(&t, "93.184.1.1");
	assert_false(tb_router_wants_ips(router(r, "main"), &t, NULL));
	assert_string_equal(sel(r, "93.184.1.1"), "proxy");
	/* Without domain_to_ip, resolved IPs are ignored. */
	target(&t, "example.com");
	assert_false(tb_router_wants_ips(router(r, "plain"), &t, &dns));
	{
		tb_addr_t a;

		assert_int_equal(tb_addr_parse_ip("93.184.216.34", &a), 0);
		assert_string_equal(tb_router_select(router(r, "plain"), &t, &a, 1), "direct");
	}
	tb_routing_free(r);
}

static void test_domain_to_ip_exclude(void **state)
{
	tb_routing_t *r;

	if (!ENABLE_ROUTER_REGEX)
		skip();
	/* §6: each candidate is tested on its own: an excluded host does not
	 * stop its IPs, and an excluded IP is skipped while the next is tried. */
	r = load("[[data]]\nname = \"ips\"\nformat = \"cidr\"\ndata = \"93.184.0.0/16\\n8.8.8.0/24\"\n"
		 "[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
		 "[[router.route_rules]]\nname = \"ips\"\nselect = \"proxy\"\n"
		 "exclude = [\"^example\\\\.com$\", \"^93\\\\.184\\\\.216\\\\.\"]\ndomain_to_ip = true\n");
	static const char *const one[] = {"93.184.216.34"};
	static const char *const two[] = {"93.184.216.34", "8.8.8.8"};
	static const char *const other[] = {"93.184.1.1"};

	assert_string_equal(sel_ips(r, "example.com", other, 1), "proxy");
	assert_string_equal(sel_ips(r, "example.com", one, 1), "direct");
	assert_string_equal(sel_ips(r, "example.com", two, 2), "proxy");
	tb_routing_free(r);
}

static void test_file_sources(void **state)
{
	/* A relative `file` is taken from the config file's directory. */
	tb_routing_t *r =
		load_as(UNIT_DIR "/routing.toml",
			"[[data]]\nname = \"c\"\nformat = \"cidr\"\nurl = \"file://" FIXTURES "/cidr.txt\"\n"
			"[[data]]\nname = \"d\"\nformat = \"domain\"\nfile = \"router/domains.txt\"\n"
			"[[data]]\nname = \"e\"\nformat = \"domain\"\nfile = \"" FIXTURES "/domains.txt\"\n"
			"[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
			"[[router.route_rules]]\nname = \"c\"\nselect = \"by-url\"\nexclude = []\n"
			"[[router.route_rules]]\nname = \"d\"\nselect = \"by-file\"\nexclude = []\n"
			"[[router]]\nname = \"abs\"\ndefault = \"direct\"\n"
			"[[router.route_rules]]\nname = \"e\"\nselect = \"by-abs\"\nexclude = []\n");
	tb_target_t t;

	assert_string_equal(sel(r, "10.9.9.9"), "by-url");
	assert_string_equal(sel(r, "2001:db8::5"), "by-url");
	assert_string_equal(sel(r, "203.0.113.7"), "by-url");
	assert_string_equal(sel(r, "198.51.100.9"), "by-url"); /* CRLF line */
	assert_string_equal(sel(r, "files.example"), "by-url");
	assert_string_equal(sel(r, "# cidr fixture: comments, blank lines, CRLF"), "direct");
	assert_string_equal(sel(r, "www.example.org"), "by-file");
	assert_string_equal(sel(r, "example.net"), "by-file");
	assert_string_equal(sel(r, "example.com"), "direct");
	target(&t, "a.b.EXAMPLE.net");
	assert_string_equal(tb_router_select(router(r, "abs"), &t, NULL, 0), "by-abs");
	tb_routing_free(r);
}

/* xorshift32: a fixed sequence, so a failure reproduces. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* 20,000 random IPv4 prefixes against a brute-force check: the sorted and
 * merged ranges must agree with tb_addr_in_prefix on every address. */
static void test_cidr_large_random(void **state)
{
	enum {
		N = 20000,
		Q = 20000
	};
	static const char head[] = "[[data]]\nname = \"set\"\nformat = \"cidr\"\ndata = '''\n";
	static const char tail[] =
		"'''\n[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
		"[[router.route_rules]]\nname = \"set\"\nselect = \"proxy\"\nexclude = []\n";
	tb_addr_t *pfx = calloc(N, sizeof(*pfx));
	unsigned *bits = calloc(N, sizeof(*bits));
	char *toml = malloc(sizeof(head) + N * 24 + sizeof(tail));
	size_t len = sizeof(head) - 1;
	uint32_t s = 0x12345678;
	tb_routing_t *r;

	assert_non_null(pfx);
	assert_non_null(bits);
	assert_non_null(toml);
	memcpy(toml, head, len);
	for (size_t i = 0; i < N; i++) {
		uint32_t ip = rnd(&s);

		bits[i] = 12 + rnd(&s) % 21; /* /12 .. /32 */
		pfx[i].family = TB_AF_INET;
		tb_put_be32(pfx[i].ip, ip);
		len += (size_t)sprintf(toml + len, "%u.%u.%u.%u/%u\n", ip >> 24, ip >> 16 & 255,
				       ip >> 8 & 255, ip & 255, bits[i]);
	}
	memcpy(toml + len, tail, sizeof(tail));
	r = load(toml);
	for (size_t q = 0; q < Q; q++) {
		tb_target_t t;
		bool want = false;
		uint32_t ip = q % 2 ? rnd(&s) : tb_be32(pfx[rnd(&s) % N].ip) ^ (rnd(&s) & 0x3ff);

		t.is_ip = true;
		t.port = 1;
		memset(&t.addr, 0, sizeof(t.addr));
		t.addr.family = TB_AF_INET;
		tb_put_be32(t.addr.ip, ip);
		tb_addr_ip_str(&t.addr, t.host, sizeof(t.host));
		for (size_t i = 0; i < N && !want; i++)
			want = tb_addr_in_prefix(&t.addr, &pfx[i], bits[i]);
		assert_string_equal(tb_router_select(router(r, "main"), &t, NULL, 0),
				    want ? "proxy" : "direct");
	}
	tb_routing_free(r);
	free(toml);
	free(bits);
	free(pfx);
}

/* A 100k-line domain list from a data file (inline TOML is capped at 1 MiB):
 * loads and answers by suffix. */
static void test_domain_large(void **state)
{
	enum {
		N = 100000
	};
	char path[] = "/tmp/tb_router_XXXXXX";
	char toml[512];
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	tb_routing_t *r;

	assert_non_null(f);
	for (unsigned i = 0; i < N; i++)
		fprintf(f, "%sd%u.example\n", i % 2 ? "" : "*.", i * 7);
	assert_int_equal(fclose(f), 0);
	snprintf(toml, sizeof(toml),
		 "[[data]]\nname = \"set\"\nformat = \"domain\"\nfile = \"%s\"\n"
		 "[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
		 "[[router.route_rules]]\nname = \"set\"\nselect = \"proxy\"\nexclude = []\n",
		 path);
	r = load(toml);
	unlink(path);
	assert_string_equal(sel(r, "d0.example"), "proxy");
	assert_string_equal(sel(r, "www.d693.example"), "proxy");
	assert_string_equal(sel(r, "D699993.Example"), "proxy");
	assert_string_equal(sel(r, "d694.example"), "direct");
	assert_string_equal(sel(r, "xd693.example"), "direct");
	assert_string_equal(sel(r, "example"), "direct");
	tb_routing_free(r);
}

static void test_err_positions(void **state)
{
	tb_conf_err_t err;

	/* missing select: reported at the rule's table */
	assert_int_equal(load_err("[[router]]\nname = \"main\"\ndefault = \"direct\"\n\n"
				  "[[router.route_rules]]\nname = \"x\"\nexclude = []\n",
				  &err),
			 TB_EINVAL);
	assert_int_equal(err.line, 5);
	assert_int_equal(err.col, 10);
	assert_string_equal(err.key, "router[0].route_rules[0].select");

	/* missing default */
	assert_int_equal(load_err("\n[[router]]\nname = \"main\"\n", &err), TB_EINVAL);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 3);
	assert_string_equal(err.key, "router[0].default");

	/* missing exclude: rog rejects it too */
	assert_int_equal(load_err("[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
				  "[[router.route_rules]]\nname = \"x\"\nselect = \"p\"\nexclude = []\n"
				  "[[router.route_rules]]\nname = \"x\"\nselect = \"p\"\n",
				  &err),
			 TB_EINVAL);
	assert_int_equal(err.line, 8);
	assert_int_equal(err.col, 10); /* the key inside [[router.route_rules]] */
	assert_string_equal(err.key, "router[0].route_rules[1].exclude");

	/* exclude of the wrong type, and a non-string entry */
	assert_int_equal(load_err("[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
				  "[[router.route_rules]]\nname = \"x\"\nselect = \"p\"\nexclude = \"a\"\n",
				  &err),
			 TB_EINVAL);
	assert_int_equal(err.line, 7);
	assert_int_equal(
		load_err("[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
			 "[[router.route_rules]]\nname = \"x\"\nselect = \"p\"\nexclude = [\n\"a\",\n 7]\n",
			 &err),
		TB_EINVAL);
	assert_int_equal(err.line, 9);
	assert_int_equal(err.col, 2);

	/* duplicate router name: at the second name */
	assert_int_equal(load_err("[[router]]\nname = \"main\"\ndefault = \"a\"\n"
				  "[[router]]\nname = \"main\"\ndefault = \"b\"\n",
				  &err),
			 TB_EINVAL);
	assert_int_equal(err.line, 5);
	assert_int_equal(err.col, 1);
	assert_string_equal(err.key, "router[1].name");

	/* duplicate data name, data without format, select of the wrong type */
	assert_int_equal(load_err("[[data]]\nname = \"d\"\nformat = \"lan\"\n"
				  "[[data]]\nname = \"d\"\nformat = \"lan\"\n",
				  &err),
			 TB_EINVAL);
	assert_int_equal(err.line, 5);
	assert_int_equal(load_err("[[data]]\nname = \"d\"\n", &err), TB_EINVAL);
	assert_int_equal(err.line, 1);
	assert_string_equal(err.key, "data[0].format");
	assert_int_equal(load_err("[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
				  "[[router.route_rules]]\nname = \"x\"\nselect = 3\nexclude = []\n",
				  &err),
			 TB_EINVAL);
	assert_int_equal(err.line, 6);
	assert_string_equal(err.key, "router[0].route_rules[0].select");

	/* [router] as a plain table is not an array of tables */
	assert_int_equal(load_err("[router]\nname = \"main\"\ndefault = \"direct\"\n", &err), TB_EINVAL);
	assert_int_equal(err.line, 1);
}

typedef struct seen {
	char names[8][32];
	int lines[8];
	int n, stop_at;
} seen_t;

static int collect(void *arg, const char *name, const tb_conf_val_t *where)
{
	seen_t *s = arg;

	if (s->n >= 8)
		return -1;
	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	s->lines[s->n] = where->line;
	assert_int_equal(where->type, TB_CONF_STRING);
	assert_string_equal(where->u.str.s, name);
	return ++s->n == s->stop_at ? 42 : 0;
}

static void test_foreach_connector(void **state)
{
	tb_routing_t *r =
		load("[[data]]\nname = \"l\"\nformat = \"lan\"\n"
		     "[[router]]\nname = \"main\"\ndefault = \"direct\"\n"
		     "[[router.route_rules]]\nname = \"l\"\nselect = \"proxy\"\nexclude = []\n"
		     "[[router.route_rules]]\nname = \"missing\"\nselect = \"block\"\nexclude = []\n");
	seen_t s = {.n = 0};

	/* The conf tree is already freed: positions are the routing's own. */
	assert_int_equal(tb_router_foreach_connector(router(r, "main"), collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "direct");
	assert_int_equal(s.lines[0], 6);
	assert_string_equal(s.names[1], "proxy");
	assert_int_equal(s.lines[1], 9);
	assert_string_equal(s.names[2], "block");
	assert_int_equal(s.lines[2], 13);

	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(tb_router_foreach_connector(router(r, "main"), collect, &s), 42);
	assert_int_equal(s.n, 2);
	tb_routing_free(r);
}

/* Runs a load with stderr captured into buf. */
static void load_capturing(const char *toml, char *buf, size_t len)
{
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	assert_non_null(f);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_true(dup2(fileno(f), 2) >= 0);
	tb_routing_free(load(toml));
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void count_unused(void *arg, const tb_conf_val_t *v, const char *path)
{
	(*(int *)arg)++;
}

static void test_unknown_keys_warned(void **state)
{
	char out[4096];
	tb_conf_t *c;
	tb_routing_t *r;
	tb_conf_err_t err;
	int unused = 0;

	tb_log_set_level(TB_LOG_WARN);
	load_capturing("[[data]]\nname = \"l\"\nformat = \"lan\"\nfoo = 1\nbar = { x = 1 }\n"
		       "[[router]]\nname = \"main\"\ndefault = \"direct\"\nbaz = \"q\"\n"
		       "[[router.route_rules]]\nname = \"l\"\nselect = \"p\"\nexclude = []\nqux = true\n",
		       out, sizeof(out));
	assert_non_null(strstr(out, "test.toml:4:1:"));
	assert_non_null(strstr(out, "'foo'"));
	assert_non_null(strstr(out, "test.toml:5:1:"));
	assert_non_null(strstr(out, "'bar'"));
	assert_non_null(strstr(out, "test.toml:9:1:"));
	assert_non_null(strstr(out, "'baz'"));
	assert_non_null(strstr(out, "test.toml:14:1:"));
	assert_non_null(strstr(out, "'qux'"));

	/* Reported keys are marked used: a later sweep of the root stays quiet. */
	tb_log_set_level(TB_LOG_ERROR);
	parse_as("test.toml", "[[data]]\nname = \"l\"\nformat = \"lan\"\nfoo = { x = 1 }\n", &c);
	assert_int_equal(tb_routing_load(c, &r, &err), 0);
	tb_conf_foreach_unused(c->root, count_unused, &unused);
	assert_int_equal(unused, 0);
	tb_routing_free(r);
	tb_conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_only),
		cmocka_unit_test(test_no_routers),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_cidr_overlaps),
		cmocka_unit_test(test_regex),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_lan),
		cmocka_unit_test(test_exclude),
		cmocka_unit_test(test_exclude_regex),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_missing_and_unusable_sets),
		cmocka_unit_test(test_domain_to_ip),
		cmocka_unit_test(test_domain_to_ip_exclude),
		cmocka_unit_test(test_file_sources),
		cmocka_unit_test(test_cidr_large_random),
		cmocka_unit_test(test_domain_large),
		cmocka_unit_test(test_err_positions),
		cmocka_unit_test(test_foreach_connector),
		cmocka_unit_test(test_unknown_keys_warned),
	};

	/* Tests that expect warnings capture them; keep the rest quiet. */
	tb_log_set_level(TB_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
