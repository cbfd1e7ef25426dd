/* test_base.c: byte-order helpers, constant-time compare, error strings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "tb/base.h"

/* Fixed byte arrays, so the expectations hold on any host byte order. */
static const uint8_t bytes[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

static void test_load_be(void **state)
{
	(void)state;
	assert_int_equal(tb_be16(bytes), 0x0123);
	assert_int_equal(tb_be32(bytes), 0x01234567u);
	assert_true(tb_be64(bytes) == 0x0123456789abcdefull);
	assert_int_equal(tb_be16(bytes + 6), 0xcdef); /* high bit set */
	assert_int_equal(tb_be32(bytes + 4), 0x89abcdefu);
}

static void test_load_le(void **state)
{
	(void)state;
	assert_int_equal(tb_le16(bytes), 0x2301);
	assert_int_equal(tb_le32(bytes), 0x67452301u);
	assert_true(tb_le64(bytes) == 0xefcdab8967452301ull);
	assert_int_equal(tb_le16(bytes + 6), 0xefcd);
	assert_int_equal(tb_le32(bytes + 4), 0xefcdab89u);
}

static void test_store(void **state)
{
	uint8_t b[8];

	(void)state;
	memset(b, 0, sizeof(b));
	tb_put_be16(b, 0x0123);
	assert_memory_equal(b, bytes, 2);
	tb_put_be32(b, 0x01234567u);
	assert_memory_equal(b, bytes, 4);
	tb_put_be64(b, 0x0123456789abcdefull);
	assert_memory_equal(b, bytes, 8);

	memset(b, 0, sizeof(b));
	tb_put_le16(b, 0x2301);
	assert_memory_equal(b, bytes, 2);
	tb_put_le32(b, 0x67452301u);
	assert_memory_equal(b, bytes, 4);
	tb_put_le64(b, 0xefcdab8967452301ull);
	assert_memory_equal(b, bytes, 8);
}

static void test_store_bounds(void **state)
{
	uint8_t b[10];

	(void)state;
	/* A store writes exactly its width and nothing around it. */
	memset(b, 0xaa, sizeof(b));
	tb_put_be32(b + 1, 0xffffffffu);
	assert_int_equal(b[0], 0xaa);
	assert_int_equal(b[5], 0xaa);
	memset(b, 0xaa, sizeof(b));
	tb_put_le64(b + 1, 0);
	assert_int_equal(b[0], 0xaa);
	assert_int_equal(b[9], 0xaa);
	assert_int_equal(b[1] | b[8], 0);
}

static void test_roundtrip(void **state)
{
	static const uint64_t v[] = {
		0, 1, 0x80, 0xff, 0x8000, 0xffff, 0x80000000u, 0xffffffffu, 0x8000000000000000ull, ~0ull};
	uint8_t b[8];
	size_t i;

	(void)state;
	for (i = 0; i < TB_ARRAY_SIZE(v); i++) {
		tb_put_be16(b, (uint16_t)v[i]);
		assert_int_equal(tb_be16(b), (uint16_t)v[i]);
		tb_put_le16(b, (uint16_t)v[i]);
		assert_int_equal(tb_le16(b), (uint16_t)v[i]);
		tb_put_be32(b, (uint32_t)v[i]);
		assert_int_equal(tb_be32(b), (uint32_t)v[i]);
		tb_put_le32(b, (uint32_t)v[i]);
		assert_int_equal(tb_le32(b), (uint32_t)v[i]);
		tb_put_be64(b, v[i]);
		assert_true(tb_be64(b) == v[i]);
		tb_put_le64(b, v[i]);
		assert_true(tb_le64(b) == v[i]);
	}
}

static void test_ct_equal(void **state)
{
	(void)state;
	assert_true(tb_ct_equal("secret", 6, "secret", 6));
	assert_false(tb_ct_equal("secret", 6, "secreT", 6));
	assert_false(tb_ct_equal("secret", 6, "Secret", 6));
	assert_true(tb_ct_equal("", 0, "", 0));
	assert_true(tb_ct_equal(NULL, 0, NULL, 0));
	/* Different lengths never match, not even on a common prefix. */
	assert_false(tb_ct_equal("secret", 6, "secret!", 7));
	assert_false(tb_ct_equal("secret!", 7, "secret", 6));
	assert_false(tb_ct_equal("a", 1, "", 0));
	assert_false(tb_ct_equal("", 0, "a", 1));
	/* Trailing zero bytes are bytes too. */
	assert_false(tb_ct_equal("ab\0", 3, "ab", 2));
	assert_false(tb_ct_equal("ab", 2, "ab\0", 3));
	assert_true(tb_ct_equal("a\0b", 3, "a\0b", 3));
}

static void test_strerror(void **state)
{
	const char *seen[32];
	int e, n = 0, i;

	(void)state;
	assert_string_equal(tb_strerror(TB_OK), "success");
	/* Every code has its own message, none is the fallback. */
	for (e = TB_ENOMEM; e >= TB_ELAST; e--) {
		const char *s = tb_strerror(e);

		assert_non_null(s);
		assert_true(strlen(s) > 0);
		assert_string_not_equal(s, "unknown error");
		for (i = 0; i < n; i++)
			assert_string_not_equal(s, seen[i]);
		seen[n++] = s;
	}
	assert_int_equal(n, 19);
	assert_string_equal(tb_strerror(TB_ELAST - 1), "unknown error");
	assert_string_equal(tb_strerror(1), "unknown error");
	assert_string_equal(tb_strerror(-1000), "unknown error");
	assert_string_equal(tb_strerror(-2147483647 - 1), "unknown error");
}

static void test_err_from_errno(void **state)
{
	(void)state;
	assert_int_equal(tb_err_from_errno(0), TB_OK);
	assert_int_equal(tb_err_from_errno(ENOMEM), TB_ENOMEM);
	assert_int_equal(tb_err_from_errno(EADDRINUSE), TB_EADDRINUSE);
	assert_int_equal(tb_err_from_errno(EINVAL), TB_EINVAL);
	assert_int_equal(tb_err_from_errno(EAGAIN), TB_EAGAIN);
	assert_int_equal(tb_err_from_errno(EWOULDBLOCK), TB_EAGAIN);
	assert_int_equal(tb_err_from_errno(ECONNREFUSED), TB_ECONNREFUSED);
	assert_int_equal(tb_err_from_errno(ENETUNREACH), TB_ENETUNREACH);
	assert_int_equal(tb_err_from_errno(EHOSTUNREACH), TB_EHOSTUNREACH);
	assert_int_equal(tb_err_from_errno(ETIMEDOUT), TB_ETIMEDOUT);
	assert_int_equal(tb_err_from_errno(ECONNRESET), TB_ECONNRESET);
	assert_int_equal(tb_err_from_errno(EPIPE), TB_EPIPE);
	assert_int_equal(tb_err_from_errno(EOPNOTSUPP), TB_ENOTSUP);
	assert_int_equal(tb_err_from_errno(EACCES), TB_EDENIED);
	assert_int_equal(tb_err_from_errno(ENOENT), TB_ENOENT);
	assert_int_equal(tb_err_from_errno(EAFNOSUPPORT), TB_EAFNOSUPPORT);
	assert_int_equal(tb_err_from_errno(ECANCELED), TB_ECANCELED);
	assert_int_equal(tb_err_from_errno(ENOBUFS), TB_ENOBUFS);
	assert_int_equal(tb_err_from_errno(EIO), TB_EIO);
	assert_int_equal(tb_err_from_errno(EXDEV), TB_EIO); /* anything else */
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_be),
		cmocka_unit_test(test_load_le),
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_store_bounds),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_err_from_errno),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
