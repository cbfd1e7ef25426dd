/* test_socks5.c: the SOCKS5 codec (RFC 1928, RFC 1929) with exact bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tb/socks5.h"

/* Every strict prefix of a valid message must ask for more input. */
#define ASSERT_PREFIXES_EAGAIN(call_with_len, full)                   \
	do {                                                          \
		for (size_t k_ = 0; k_ < (full); k_++) {              \
			size_t len_ = k_;                             \
			assert_int_equal((call_with_len), TB_EAGAIN); \
		}                                                     \
	} while (0)

static const uint8_t v4_req[] = {5, 1, 0, 1, 192, 168, 1, 2, 0x1f, 0x90};
static const uint8_t v6_req[] = {5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0,    0,
				 0, 0, 0, 0, 0,	   0,	 0,    0,    1, 0x01, 0xbb};
static const uint8_t dom_req[] = {5,   1,   0,	 3,   11,  'e', 'x', 'a', 'm',
				  'p', 'l', 'e', '.', 'c', 'o', 'm', 0,	  80};

static void test_greeting(void **state)
{
	static const uint8_t g1[] = {5, 1, 0};
	static const uint8_t g2[] = {5, 3, 0, 1, 2, 0xaa}; /* one pipelined byte */
	const uint8_t *m;
	size_t nm;

	(void)state;
	assert_int_equal(tb_socks5_greeting_parse(g1, sizeof(g1), &m, &nm), 3);
	assert_int_equal(nm, 1);
	assert_int_equal(m[0], 0);
	assert_int_equal(tb_socks5_greeting_parse(g2, sizeof(g2), &m, &nm), 5);
	assert_int_equal(nm, 3);
	assert_ptr_equal(m, g2 + 2);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_greeting_parse(g2, len_, &m, &nm), 5);
}

static void test_greeting_bad(void **state)
{
	static const uint8_t v4[] = {4, 1, 0, 80, 127, 0, 0, 1, 0};
	static const uint8_t zero[] = {5, 0};
	static const uint8_t http[] = "GET / HTTP/1.1\r\n";
	const uint8_t *m;
	size_t nm;

	(void)state;
	assert_int_equal(tb_socks5_greeting_parse(v4, sizeof(v4), &m, &nm), TB_EPROTO);
	assert_int_equal(tb_socks5_greeting_parse(v4, 1, &m, &nm), TB_EPROTO);
	assert_int_equal(tb_socks5_greeting_parse(zero, sizeof(zero), &m, &nm), TB_ERANGE);
	assert_int_equal(tb_socks5_greeting_parse(http, sizeof(http) - 1, &m, &nm), TB_EPROTO);
}

static void test_method_select(void **state)
{
	static const uint8_t both[] = {0, 2};
	static const uint8_t noauth[] = {0};
	static const uint8_t up[] = {2};
	static const uint8_t gssapi[] = {1, 0x80};
	uint8_t out[2];

	(void)state;
	assert_int_equal(tb_socks5_method_select(both, 2, false), 0x00);
	assert_int_equal(tb_socks5_method_select(both, 2, true), 0x02);
	assert_int_equal(tb_socks5_method_select(noauth, 1, true), 0xff);
	assert_int_equal(tb_socks5_method_select(up, 1, false), 0xff);
	assert_int_equal(tb_socks5_method_select(up, 1, true), 0x02);
	assert_int_equal(tb_socks5_method_select(gssapi, 2, false), 0xff);

	assert_int_equal(tb_socks5_method_build(out, sizeof(out), 0xff), 2);
	assert_int_equal(out[0], 5);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(tb_socks5_method_build(out, 1, 0), TB_ERANGE);
}

static void test_userpass(void **state)
{
	static const uint8_t msg[] = {1, 4, 'u', 's', 'e', 'r', 6, 's', 'e', 'c', 'r', 'e', 't'};
	tb_socks5_userpass_t up;
	uint8_t out[2];

	(void)state;
	assert_int_equal(tb_socks5_userpass_parse(msg, sizeof(msg), &up), (int)sizeof(msg));
	assert_int_equal(up.ulen, 4);
	assert_memory_equal(up.user, "user", 4);
	assert_int_equal(up.plen, 6);
	assert_memory_equal(up.pass, "secret", 6);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_userpass_parse(msg, len_, &up), sizeof(msg));

	assert_int_equal(tb_socks5_userpass_reply_build(out, sizeof(out), 0), 2);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 0);
}

static void test_userpass_bad(void **state)
{
	static const uint8_t ver5[] = {5, 1, 'u', 1, 'p'};
	static const uint8_t ulen0[] = {1, 0, 1, 'p'};
	static const uint8_t plen0[] = {1, 1, 'u', 0};
	tb_socks5_userpass_t up;
	uint8_t big[3 + 255 + 255];

	(void)state;
	assert_int_equal(tb_socks5_userpass_parse(ver5, sizeof(ver5), &up), TB_EPROTO);
	assert_int_equal(tb_socks5_userpass_parse(ulen0, sizeof(ulen0), &up), TB_ERANGE);
	assert_int_equal(tb_socks5_userpass_parse(plen0, sizeof(plen0), &up), TB_ERANGE);

	/* The longest legal message. */
	memset(big, 'x', sizeof(big));
	big[0] = 1;
	big[1] = 255;
	big[2 + 255] = 255;
	assert_int_equal(tb_socks5_userpass_parse(big, sizeof(big), &up), (int)sizeof(big));
	assert_int_equal(up.ulen, 255);
	assert_int_equal(up.plen, 255);
}

static void test_request_v4(void **state)
{
	tb_socks5_request_t r;

	(void)state;
	assert_int_equal(tb_socks5_request_parse(v4_req, sizeof(v4_req), &r), (int)sizeof(v4_req));
	assert_int_equal(r.cmd, TB_SOCKS5_CMD_CONNECT);
	assert_int_equal(r.atyp, TB_SOCKS5_ATYP_IPV4);
	assert_true(r.dst.is_ip);
	assert_int_equal(r.dst.addr.family, TB_AF_INET);
	assert_string_equal(r.dst.host, "192.168.1.2");
	assert_int_equal(r.dst.port, 8080);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_request_parse(v4_req, len_, &r), sizeof(v4_req));
}

static void test_request_v6(void **state)
{
	tb_socks5_request_t r;

	(void)state;
	assert_int_equal(tb_socks5_request_parse(v6_req, sizeof(v6_req), &r), (int)sizeof(v6_req));
	assert_int_equal(r.atyp, TB_SOCKS5_ATYP_IPV6);
	assert_true(r.dst.is_ip);
	assert_int_equal(r.dst.addr.family, TB_AF_INET6);
	assert_memory_equal(r.dst.addr.ip, v6_req + 4, 16);
	assert_string_equal(r.dst.host, "2001:db8::1");
	assert_int_equal(r.dst.port, 443);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_request_parse(v6_req, len_, &r), sizeof(v6_req));
}

static void test_request_domain(void **state)
{
	uint8_t buf[sizeof(dom_req) + 4];
	tb_socks5_request_t r;

	(void)state;
	assert_int_equal(tb_socks5_request_parse(dom_req, sizeof(dom_req), &r), (int)sizeof(dom_req));
	assert_int_equal(r.atyp, TB_SOCKS5_ATYP_DOMAIN);
	assert_false(r.dst.is_ip);
	assert_string_equal(r.dst.host, "example.com");
	assert_int_equal(r.dst.port, 80);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_request_parse(dom_req, len_, &r), sizeof(dom_req));

	/* Pipelined payload after the request is not consumed. */
	memcpy(buf, dom_req, sizeof(dom_req));
	memcpy(buf + sizeof(dom_req), "GET ", 4);
	assert_int_equal(tb_socks5_request_parse(buf, sizeof(buf), &r), (int)sizeof(dom_req));

	/* A name that is an IP literal is an IP target. */
	static const uint8_t lit[] = {5, 1, 0, 3, 7, '1', '.', '2', '.', '3', '.', '4', 0, 53};
	assert_int_equal(tb_socks5_request_parse(lit, sizeof(lit), &r), (int)sizeof(lit));
	assert_true(r.dst.is_ip);
	assert_int_equal(r.dst.addr.ip[3], 4);
	assert_int_equal(r.dst.port, 53);
}

static void test_request_domain_255(void **state)
{
	uint8_t req[4 + 1 + 255 + 2];
	tb_socks5_request_t r;

	(void)state;
	memcpy(req, "\x05\x01\x00\x03", 4);
	req[4] = 255;
	memset(req + 5, 'a', 255);
	req[5 + 255] = 0x12;
	req[5 + 256] = 0x34;
	assert_int_equal(tb_socks5_request_parse(req, sizeof(req), &r), (int)sizeof(req));
	assert_int_equal(strlen(r.dst.host), 255);
	assert_int_equal(r.dst.port, 0x1234);
	assert_int_equal(sizeof(req), TB_SOCKS5_REQUEST_MAX);
}

static void test_request_bad(void **state)
{
	static const uint8_t ver4[] = {4, 1, 0, 1, 1, 2, 3, 4, 0, 80};
	static const uint8_t cmd0[] = {5, 0, 0, 1, 1, 2, 3, 4, 0, 80};
	static const uint8_t cmd9[] = {5, 9};
	static const uint8_t atyp2[] = {5, 1, 0, 2, 1, 2, 3, 4, 0, 80};
	static const uint8_t atyp5[] = {5, 3, 0, 5};
	static const uint8_t dom0[] = {5, 1, 0, 3, 0, 0, 80};
	static const uint8_t nul[] = {5, 1, 0, 3, 3, 'a', 0, 'b', 0, 80};
	tb_socks5_request_t r;

	(void)state;
	assert_int_equal(tb_socks5_request_parse(ver4, sizeof(ver4), &r), TB_EPROTO);
	assert_int_equal(tb_socks5_request_parse(ver4, 1, &r), TB_EPROTO);
	assert_int_equal(tb_socks5_request_parse(cmd0, sizeof(cmd0), &r), TB_ENOTSUP);
	assert_int_equal(tb_socks5_request_parse(cmd9, sizeof(cmd9), &r), TB_ENOTSUP);
	assert_int_equal(r.cmd, 9);
	assert_int_equal(tb_socks5_rep_from_err(TB_ENOTSUP), 0x07);
	assert_int_equal(tb_socks5_request_parse(atyp2, sizeof(atyp2), &r), TB_EAFNOSUPPORT);
	assert_int_equal(r.cmd, 1);
	assert_int_equal(r.atyp, 2);
	assert_int_equal(tb_socks5_rep_from_err(TB_EAFNOSUPPORT), 0x08);
	assert_int_equal(tb_socks5_request_parse(atyp5, sizeof(atyp5), &r), TB_EAFNOSUPPORT);
	assert_int_equal(tb_socks5_request_parse(dom0, sizeof(dom0), &r), TB_ERANGE);
	assert_int_equal(tb_socks5_request_parse(dom0, 5, &r), TB_ERANGE);
	assert_int_equal(tb_socks5_request_parse(nul, sizeof(nul), &r), TB_EPROTO);
}

static void test_request_bind_udp(void **state)
{
	uint8_t req[sizeof(v4_req)];
	tb_socks5_request_t r;

	(void)state;
	memcpy(req, v4_req, sizeof(req));
	req[1] = TB_SOCKS5_CMD_BIND;
	assert_int_equal(tb_socks5_request_parse(req, sizeof(req), &r), (int)sizeof(req));
	assert_int_equal(r.cmd, TB_SOCKS5_CMD_BIND);
	req[1] = TB_SOCKS5_CMD_UDP;
	memset(req + 4, 0, 6); /* 0.0.0.0:0: the client does not know yet */
	assert_int_equal(tb_socks5_request_parse(req, sizeof(req), &r), (int)sizeof(req));
	assert_int_equal(r.cmd, TB_SOCKS5_CMD_UDP);
	assert_int_equal(r.dst.port, 0);
}

static void test_reply_build(void **state)
{
	static const uint8_t want4[] = {5, 0, 0, 1, 10, 0, 0, 1, 0x04, 0x38};
	static const uint8_t want6[] = {5, 0, 0, 4, 0xfe, 0x80, 0, 0, 0, 0,    0,
					0, 0, 0, 0, 0,	  0,	0, 0, 9, 0xff, 0xff};
	static const uint8_t wantz[] = {5, 5, 0, 1, 0, 0, 0, 0, 0, 0};
	uint8_t out[TB_SOCKS5_REQUEST_MAX];
	tb_addr_t a;

	(void)state;
	assert_int_equal(tb_addr_parse("10.0.0.1:1080", &a, false), 0);
	assert_int_equal(tb_socks5_reply_build(out, sizeof(out), 0, &a), (int)sizeof(want4));
	assert_memory_equal(out, want4, sizeof(want4));
	assert_int_equal(tb_addr_parse("[fe80::9]:65535", &a, false), 0);
	assert_int_equal(tb_socks5_reply_build(out, sizeof(out), 0, &a), (int)sizeof(want6));
	assert_memory_equal(out, want6, sizeof(want6));
	assert_int_equal(tb_socks5_reply_build(out, sizeof(out), 5, NULL), (int)sizeof(wantz));
	assert_memory_equal(out, wantz, sizeof(wantz));
	memset(&a, 0, sizeof(a)); /* unset family: 0.0.0.0:0 too */
	assert_int_equal(tb_socks5_reply_build(out, sizeof(out), 5, &a), (int)sizeof(wantz));
	assert_memory_equal(out, wantz, sizeof(wantz));
	assert_int_equal(tb_socks5_reply_build(out, 9, 0, NULL), TB_ERANGE);
	assert_int_equal(tb_socks5_reply_build(out, 2, 0, NULL), TB_ERANGE);
}

static void test_rep_mapping(void **state)
{
	static const struct {
		int err;
		uint8_t rep;
	} map[] = {
		{0, 0x00},
		{TB_ECONNREFUSED, 0x05},
		{TB_ENETUNREACH, 0x03},
		{TB_EHOSTUNREACH, 0x04},
		{TB_ETIMEDOUT, 0x06},
		{TB_EDENIED, 0x02},
		{TB_ENOTSUP, 0x07},
		{TB_EAFNOSUPPORT, 0x08},
		{TB_ECONNRESET, 0x01},
		{TB_ENOMEM, 0x01},
		{TB_EPROTO, 0x01},
		{TB_ENOENT, 0x01},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		assert_int_equal(tb_socks5_rep_from_err(map[i].err), map[i].rep);
	/* The inverse, for connectors. */
	for (size_t i = 0; i < 9; i++)
		assert_int_equal(tb_socks5_rep_from_err(tb_socks5_err_from_rep((uint8_t)i)), i);
	assert_int_equal(tb_socks5_err_from_rep(0x09), TB_EIO);
	assert_int_equal(tb_socks5_err_from_rep(0xff), TB_EIO);
}

static void test_udp_header(void **state)
{
	static const uint8_t want[] = {0, 0, 0, 1, 8, 8, 4, 4, 0, 53, 'h', 'i'};
	static const uint8_t want_dom[] = {0, 0, 0, 3, 3, 'a', '.', 'b', 0x30, 0x39};
	uint8_t out[TB_SOCKS5_UDP_HDR_MAX];
	tb_target_t t, back;
	tb_addr_t a;
	uint8_t frag = 0xee;

	(void)state;
	assert_int_equal(tb_addr_parse("8.8.4.4:53", &a, false), 0);
	tb_target_from_addr(&t, &a);
	assert_int_equal(tb_socks5_udp_build(out, sizeof(out), &t), 10);
	memcpy(out + 10, "hi", 2);
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(tb_socks5_udp_parse(out, 12, &frag, &back), 10);
	assert_int_equal(frag, 0);
	assert_true(back.is_ip);
	assert_true(tb_addr_equal(&back.addr, &a));
	assert_int_equal(back.port, 53);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_udp_parse(want, len_, &frag, &back), 10);

	assert_int_equal(tb_target_set(&t, "a.b", 3, 12345), 0);
	assert_int_equal(tb_socks5_udp_build(out, sizeof(out), &t), (int)sizeof(want_dom));
	assert_memory_equal(out, want_dom, sizeof(want_dom));
	assert_int_equal(tb_socks5_udp_parse(out, sizeof(want_dom), &frag, &back), (int)sizeof(want_dom));
	assert_string_equal(back.host, "a.b");
	assert_int_equal(back.port, 12345);
	assert_int_equal(tb_socks5_udp_build(out, sizeof(want_dom) - 1, &t), TB_ERANGE);

	/* IPv6 round trip. */
	assert_int_equal(tb_addr_parse("[2001:db8::53]:5353", &a, false), 0);
	tb_target_from_addr(&t, &a);
	assert_int_equal(tb_socks5_udp_build(out, sizeof(out), &t), 22);
	assert_int_equal(out[3], 4);
	assert_int_equal(tb_socks5_udp_parse(out, 22, &frag, &back), 22);
	assert_true(tb_addr_equal(&back.addr, &a));

	/* FRAG is reported for the caller to drop. */
	out[2] = 1;
	assert_int_equal(tb_socks5_udp_parse(out, 22, &frag, &back), 22);
	assert_int_equal(frag, 1);
	out[3] = 7;
	assert_int_equal(tb_socks5_udp_parse(out, 22, &frag, &back), TB_EAFNOSUPPORT);
}

static void test_client_side(void **state)
{
	static const uint8_t g_noauth[] = {5, 1, 0};
	static const uint8_t g_up[] = {5, 2, 0, 2};
	static const uint8_t up_msg[] = {1, 2, 'm', 'e', 3, 'p', 'w', 'd'};
	uint8_t out[TB_SOCKS5_USERPASS_MAX], m, st, rep;
	tb_socks5_request_t r;
	tb_target_t t, bnd;
	char big[256];

	(void)state;
	assert_int_equal(tb_socks5_client_greeting_build(out, sizeof(out), false), 3);
	assert_memory_equal(out, g_noauth, 3);
	assert_int_equal(tb_socks5_client_greeting_build(out, sizeof(out), true), 4);
	assert_memory_equal(out, g_up, 4);
	assert_int_equal(tb_socks5_client_greeting_build(out, 3, true), TB_ERANGE);

	assert_int_equal(tb_socks5_client_method_parse((const uint8_t *)"\x05\x02", 2, &m), 2);
	assert_int_equal(m, 2);
	assert_int_equal(tb_socks5_client_method_parse((const uint8_t *)"\x05", 1, &m), TB_EAGAIN);
	assert_int_equal(tb_socks5_client_method_parse((const uint8_t *)"\x04\x00", 2, &m), TB_EPROTO);

	assert_int_equal(tb_socks5_client_userpass_build(out, sizeof(out), "me", 2, "pwd", 3), 8);
	assert_memory_equal(out, up_msg, sizeof(up_msg));
	assert_int_equal(tb_socks5_client_userpass_build(out, sizeof(out), "", 0, "pwd", 3), TB_ERANGE);
	memset(big, 'x', sizeof(big));
	assert_int_equal(tb_socks5_client_userpass_build(out, sizeof(out), "u", 1, big, 256), TB_ERANGE);
	assert_int_equal(tb_socks5_client_userpass_reply_parse((const uint8_t *)"\x01\x01", 2, &st), 2);
	assert_int_equal(st, 1);

	/* The client's request is what the server parses. */
	assert_int_equal(tb_target_set(&t, "example.com", 11, 80), 0);
	assert_int_equal(tb_socks5_client_request_build(out, sizeof(out), 1, &t), (int)sizeof(dom_req));
	assert_memory_equal(out, dom_req, sizeof(dom_req));
	assert_int_equal(tb_socks5_request_parse(out, sizeof(dom_req), &r), (int)sizeof(dom_req));
	assert_string_equal(r.dst.host, "example.com");

	/* Reply parsing, every prefix incomplete. */
	static const uint8_t reply[] = {5, 4, 0, 1, 127, 0, 0, 1, 0x04, 0x38};
	assert_int_equal(tb_socks5_client_reply_parse(reply, sizeof(reply), &rep, &bnd), 10);
	assert_int_equal(rep, 4);
	assert_int_equal(tb_socks5_err_from_rep(rep), TB_EHOSTUNREACH);
	assert_string_equal(bnd.host, "127.0.0.1");
	assert_int_equal(bnd.port, 1080);
	ASSERT_PREFIXES_EAGAIN(tb_socks5_client_reply_parse(reply, len_, &rep, &bnd), sizeof(reply));
}

static void test_addr_build_bad(void **state)
{
	uint8_t out[TB_SOCKS5_ADDR_MAX];
	tb_target_t t;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(tb_socks5_addr_build(out, sizeof(out), &t), TB_ERANGE); /* empty name */
	assert_int_equal(tb_target_set(&t, "x", 1, 1), 0);
	assert_int_equal(tb_socks5_addr_build(out, 4, &t), TB_ERANGE);
	assert_int_equal(tb_socks5_addr_build(out, 5, &t), 5);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_greeting_bad),
		cmocka_unit_test(test_method_select),
		cmocka_unit_test(test_userpass),
		cmocka_unit_test(test_userpass_bad),
		cmocka_unit_test(test_request_v4),
		cmocka_unit_test(test_request_v6),
		cmocka_unit_test(test_request_domain),
		cmocka_unit_test(test_request_domain_255),
		cmocka_unit_test(test_request_bad),
		cmocka_unit_test(test_request_bind_udp),
		cmocka_unit_test(test_reply_build),
		cmocka_unit_test(test_rep_mapping),
		cmocka_unit_test(test_udp_header),
		cmocka_unit_test(test_client_side),
		cmocka_unit_test(test_addr_build_bad),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
