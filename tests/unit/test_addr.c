/* test_addr.c: address and target parsing, formatting, prefixes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tb/addr.h"

static void test_parse_v4(void **state)
{
	static const uint8_t ip[4] = {192, 168, 1, 254};
	tb_addr_t a;

	(void)state;
	assert_int_equal(tb_addr_parse("192.168.1.254:8080", &a, false), 0);
	assert_int_equal(a.family, TB_AF_INET);
	assert_int_equal(a.port, 8080);
	assert_memory_equal(a.ip, ip, 4);

	assert_int_equal(tb_addr_parse("0.0.0.0:0", &a, false), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(tb_addr_parse("255.255.255.255:65535", &a, false), 0);
	assert_int_equal(a.port, 65535);

	/* A bare address only when the port is optional. */
	assert_int_equal(tb_addr_parse("10.0.0.1", &a, false), TB_EINVAL);
	assert_int_equal(tb_addr_parse("10.0.0.1", &a, true), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(a.ip[0], 10);
	assert_int_equal(a.ip[3], 1);
}

static void test_parse_v6(void **state)
{
	static const uint8_t loop6[16] = {[15] = 1};
	static const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8, [14] = 0x12, [15] = 0x34};
	tb_addr_t a;

	(void)state;
	assert_int_equal(tb_addr_parse("[::1]:443", &a, false), 0);
	assert_int_equal(a.family, TB_AF_INET6);
	assert_int_equal(a.port, 443);
	assert_memory_equal(a.ip, loop6, 16);

	assert_int_equal(tb_addr_parse("[2001:db8::1234]:1", &a, false), 0);
	assert_memory_equal(a.ip, doc, 16);

	/* Brackets without a port, and a bare v6 (no port possible then). */
	assert_int_equal(tb_addr_parse("[::1]", &a, false), TB_EINVAL);
	assert_int_equal(tb_addr_parse("[::1]", &a, true), 0);
	assert_int_equal(a.port, 0);
	assert_int_equal(tb_addr_parse("2001:db8::1234", &a, true), 0);
	assert_memory_equal(a.ip, doc, 16);
	assert_int_equal(tb_addr_parse("2001:db8::1234", &a, false), TB_EINVAL);

	/* v4-mapped stays IPv6: no silent family change. */
	assert_int_equal(tb_addr_parse("[::ffff:1.2.3.4]:80", &a, false), 0);
	assert_int_equal(a.family, TB_AF_INET6);
	assert_int_equal(a.ip[10], 0xff);
	assert_int_equal(a.ip[15], 4);
}

static void test_parse_bad(void **state)
{
	/* clang-format off */
	static const char *const bad[] = {
		"", ":", ":80", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:99999", "1.2.3.4:-1",
		"1.2.3.4:+80", "1.2.3.4: 80", "1.2.3.4:80 ", " 1.2.3.4:80", "1.2.3.4:8a",
		"1.2.3.4:000080", "1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:80", "1.2.3.4:80:80",
		"localhost:80", "example.com:443", "[::1]:", "[::1]80", "[::1", "::1]:80",
		"[1.2.3.4]:80", "[::1]:65536", "[]:80", "[:::]:80", "[::1%eth0]:80",
		"[::1]:80x", "[[::1]]:80", "01.2.3.4:80", "1.2.3.4/24",
	};
	/* clang-format on */
	tb_addr_t a = {.family = 99, .port = 7};
	size_t i;

	(void)state;
	for (i = 0; i < TB_ARRAY_SIZE(bad); i++) {
		if (tb_addr_parse(bad[i], &a, false) != TB_EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		if (strcmp(bad[i], "[::1]") && tb_addr_parse(bad[i], &a, true) != TB_EINVAL)
			fail_msg("accepted \"%s\" (port optional)", bad[i]);
	}
	/* A failed parse leaves the output alone. */
	assert_int_equal(a.family, 99);
	assert_int_equal(a.port, 7);
}

static void test_parse_ip(void **state)
{
	tb_addr_t a;

	(void)state;
	assert_int_equal(tb_addr_parse_ip("8.8.4.4", &a), 0);
	assert_int_equal(a.family, TB_AF_INET);
	assert_int_equal(a.port, 0);
	assert_int_equal(a.ip[2], 4);
	assert_int_equal(tb_addr_parse_ip("fe80::1", &a), 0);
	assert_int_equal(a.family, TB_AF_INET6);
	assert_int_equal(a.ip[0], 0xfe);
	assert_int_equal(tb_addr_parse_ip("8.8.4.4:53", &a), TB_EINVAL);
	assert_int_equal(tb_addr_parse_ip("[::1]", &a), TB_EINVAL);
	assert_int_equal(tb_addr_parse_ip("", &a), TB_EINVAL);
	assert_int_equal(tb_addr_parse_ip("dns.google", &a), TB_EINVAL);
}

static void check_roundtrip(const char *in, const char *want)
{
	char buf[TB_ADDR_STRLEN];
	tb_addr_t a, b;

	assert_int_equal(tb_addr_parse(in, &a, false), 0);
	assert_string_equal(tb_addr_str(&a, buf, sizeof(buf)), want);
	assert_int_equal(tb_addr_parse(buf, &b, false), 0);
	assert_true(tb_addr_equal(&a, &b));
}

static void test_format(void **state)
{
	char buf[TB_ADDR_STRLEN], small[8];
	tb_addr_t a = {0};

	(void)state;
	check_roundtrip("127.0.0.1:1080", "127.0.0.1:1080");
	check_roundtrip("[::1]:80", "[::1]:80");
	check_roundtrip("[2001:0db8:0000:0000:0000:0000:0000:0001]:53", "[2001:db8::1]:53");
	check_roundtrip("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
			"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	assert_true(strlen("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535") < TB_ADDR_STRLEN);

	assert_int_equal(tb_addr_parse("[2001:db8::2]:9", &a, false), 0);
	assert_string_equal(tb_addr_ip_str(&a, buf, sizeof(buf)), "2001:db8::2");
	assert_int_equal(tb_addr_parse("10.1.2.3:9", &a, false), 0);
	assert_string_equal(tb_addr_ip_str(&a, buf, sizeof(buf)), "10.1.2.3");

	/* Truncation stays NUL-terminated; an unset address still prints. */
	assert_int_equal(strlen(tb_addr_str(&a, small, sizeof(small))), sizeof(small) - 1);
	memset(&a, 0, sizeof(a));
	assert_true(strlen(tb_addr_str(&a, buf, sizeof(buf))) > 0);
}

static void test_equal(void **state)
{
	tb_addr_t a, b;

	(void)state;
	tb_addr_parse("1.2.3.4:80", &a, false);
	tb_addr_parse("1.2.3.4:81", &b, false);
	assert_false(tb_addr_equal(&a, &b));
	assert_true(tb_addr_ip_equal(&a, &b));
	b.port = 80;
	assert_true(tb_addr_equal(&a, &b));
	/* Bytes past the family's length do not matter. */
	b.ip[10] = 0x55;
	assert_true(tb_addr_equal(&a, &b));
	tb_addr_parse("[::ffff:1.2.3.4]:80", &b, false);
	assert_false(tb_addr_ip_equal(&a, &b));
	tb_addr_parse("[::1]:80", &a, false);
	tb_addr_parse("[::2]:80", &b, false);
	assert_false(tb_addr_ip_equal(&a, &b));
}

static bool in(const char *ip, const char *prefix, unsigned bits)
{
	tb_addr_t a, p;

	assert_int_equal(tb_addr_parse_ip(ip, &a), 0);
	assert_int_equal(tb_addr_parse_ip(prefix, &p), 0);
	return tb_addr_in_prefix(&a, &p, bits);
}

static void test_prefix(void **state)
{
	(void)state;
	assert_true(in("10.1.2.3", "10.0.0.0", 8));
	assert_false(in("11.1.2.3", "10.0.0.0", 8));
	assert_true(in("192.168.1.77", "192.168.1.0", 24));
	assert_false(in("192.168.2.77", "192.168.1.0", 24));
	/* Partial bytes: 172.16.0.0/12 is 172.16.0.0 - 172.31.255.255. */
	assert_true(in("172.31.255.255", "172.16.0.0", 12));
	assert_false(in("172.32.0.0", "172.16.0.0", 12));
	assert_false(in("172.15.255.255", "172.16.0.0", 12));
	assert_true(in("1.2.3.4", "1.2.3.4", 32));
	assert_false(in("1.2.3.5", "1.2.3.4", 32));
	assert_true(in("1.2.3.5", "1.2.3.4", 31));
	assert_true(in("200.1.1.1", "0.0.0.0", 0));
	assert_false(in("1.2.3.4", "1.2.3.4", 33)); /* bad length */

	assert_true(in("fd00::1", "fc00::", 7));
	assert_false(in("fe00::1", "fc00::", 7));
	assert_true(in("2001:db8:1:2::5", "2001:db8::", 32));
	assert_false(in("2001:db9::5", "2001:db8::", 32));
	assert_true(in("::1", "::1", 128));
	assert_false(in("::1", "::1", 129));
	assert_true(in("::ffff", "::", 0));
	/* Families never mix, not even 0/0. */
	assert_false(in("1.2.3.4", "::", 0));
	assert_false(in("::ffff:1.2.3.4", "1.2.3.0", 24));
}

static void test_target(void **state)
{
	char buf[TB_HOST_MAX + 16], name[TB_HOST_MAX + 2];
	tb_target_t t;

	(void)state;
	assert_int_equal(tb_target_set(&t, "example.com", 11, 443), 0);
	assert_string_equal(t.host, "example.com");
	assert_int_equal(t.port, 443);
	assert_false(t.is_ip);
	assert_string_equal(tb_target_str(&t, buf, sizeof(buf)), "example.com:443");

	/* The length counts, not a NUL: wire hosts are not terminated. */
	assert_int_equal(tb_target_set(&t, "example.comXYZ", 7, 80), 0);
	assert_string_equal(t.host, "example");

	assert_int_equal(tb_target_set(&t, "10.9.8.7", 8, 22), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.addr.family, TB_AF_INET);
	assert_int_equal(t.addr.port, 22);
	assert_int_equal(t.addr.ip[0], 10);
	assert_string_equal(tb_target_str(&t, buf, sizeof(buf)), "10.9.8.7:22");

	assert_int_equal(tb_target_set(&t, "::1", 3, 53), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.addr.family, TB_AF_INET6);
	assert_string_equal(tb_target_str(&t, buf, sizeof(buf)), "[::1]:53");
	assert_int_equal(tb_target_set(&t, "[::1]", 5, 53), 0);
	assert_true(t.is_ip);
	assert_string_equal(t.host, "::1");
	assert_int_equal(tb_target_set(&t, "[example.com]", 13, 53), TB_EINVAL);
	assert_int_equal(tb_target_set(&t, "[1.2.3.4]", 9, 53), TB_EINVAL);

	assert_int_equal(tb_target_set(&t, "", 0, 80), TB_EINVAL);
	assert_int_equal(tb_target_set(&t, "[]", 2, 80), TB_EINVAL);
	assert_int_equal(tb_target_set(&t, "a\0b", 3, 80), TB_EINVAL);

	memset(name, 'a', sizeof(name));
	assert_int_equal(tb_target_set(&t, name, TB_HOST_MAX, 80), 0);
	assert_int_equal(strlen(t.host), TB_HOST_MAX);
	assert_int_equal(tb_target_set(&t, name, TB_HOST_MAX + 1, 80), TB_ERANGE);
}

static void test_target_from_addr(void **state)
{
	char buf[64];
	tb_target_t t;
	tb_addr_t a;

	(void)state;
	tb_addr_parse("[2001:db8::7]:8443", &a, false);
	tb_target_from_addr(&t, &a);
	assert_true(t.is_ip);
	assert_int_equal(t.port, 8443);
	assert_true(tb_addr_equal(&t.addr, &a));
	assert_string_equal(t.host, "2001:db8::7");
	assert_string_equal(tb_target_str(&t, buf, sizeof(buf)), "[2001:db8::7]:8443");

	tb_addr_parse("4.3.2.1:1", &a, false);
	tb_target_from_addr(&t, &a);
	assert_string_equal(tb_target_str(&t, buf, sizeof(buf)), "4.3.2.1:1");
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4),
		cmocka_unit_test(test_parse_v6),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_ip),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_target),
		cmocka_unit_test(test_target_from_addr),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
