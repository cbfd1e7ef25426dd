/* test_buf.c: the chunked byte queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tb/buf.h"

/* Byte i of every test stream is pattern(i): any misordering shows. */
static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 8) * 7);
}

static void fill(uint8_t *p, size_t start, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = pattern(start + i);
}

/* Appends n pattern bytes continuing from *pos. */
static void append_pattern(tb_buf_t *b, size_t *pos, size_t n)
{
	uint8_t *tmp = malloc(n ? n : 1);

	assert_non_null(tmp);
	fill(tmp, *pos, n);
	assert_int_equal(tb_buf_append(b, tmp, n), 0);
	*pos += n;
	free(tmp);
}

/* Checks that the queue holds exactly pattern bytes [from, from + len). */
static void check_contents(const tb_buf_t *b, size_t from)
{
	size_t len = tb_buf_len(b), i;
	uint8_t *tmp = malloc(len ? len : 1);

	assert_non_null(tmp);
	assert_int_equal(tb_buf_copyout(b, 0, tmp, len + 10), len);
	for (i = 0; i < len; i++)
		if (tmp[i] != pattern(from + i))
			fail_msg("byte %zu of %zu differs", i, len);
	free(tmp);
}

static void test_empty(void **state)
{
	tb_buf_t b = TB_BUF_INIT;
	uint8_t x;
	size_t n = 99;

	(void)state;
	assert_int_equal(tb_buf_len(&b), 0);
	assert_null(tb_buf_peek(&b, &n));
	assert_int_equal(n, 0);
	assert_int_equal(tb_buf_copyout(&b, 0, &x, 1), 0);
	assert_null(tb_buf_pullup(&b, 0));
	assert_null(tb_buf_pullup(&b, 1));
	tb_buf_consume(&b, 0);
	assert_int_equal(tb_buf_append(&b, "x", 0), 0);
	assert_null(b.head);
	tb_buf_free(&b);
	assert_null(b.head);
}

static void test_append_peek_consume(void **state)
{
	tb_buf_t b;
	const uint8_t *p;
	size_t n;

	(void)state;
	tb_buf_init(&b);
	assert_int_equal(tb_buf_append(&b, "hello ", 6), 0);
	assert_int_equal(tb_buf_append(&b, "world", 5), 0);
	assert_int_equal(tb_buf_len(&b), 11);
	p = tb_buf_peek(&b, &n);
	assert_int_equal(n, 11); /* small appends share a chunk */
	assert_memory_equal(p, "hello world", 11);
	tb_buf_consume(&b, 6);
	p = tb_buf_peek(&b, &n);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "world", 5);
	tb_buf_consume(&b, 5);
	assert_int_equal(tb_buf_len(&b), 0);
	assert_null(b.head);
	assert_null(b.tail);
	tb_buf_free(&b);
}

/* The empty buffer owns no memory, however it got empty. */
static void test_empty_frees(void **state)
{
	tb_buf_t b = TB_BUF_INIT;
	size_t pos = 0, n;

	(void)state;
	append_pattern(&b, &pos, 100000);
	assert_non_null(b.head);
	while (tb_buf_len(&b) > 0) {
		tb_buf_peek(&b, &n);
		assert_true(n > 0);
		tb_buf_consume(&b, n > 1000 ? n - 999 : n); /* odd steps */
	}
	assert_null(b.head);
	assert_null(b.tail);
	append_pattern(&b, &pos, 10);
	tb_buf_consume(&b, 10);
	assert_null(b.head);
	/* Consuming more than queued is clamped, not a crash. */
	append_pattern(&b, &pos, 10);
	tb_buf_consume(&b, 50);
	assert_int_equal(tb_buf_len(&b), 0);
	assert_null(b.head);
}

static void test_large_append(void **state)
{
	tb_buf_t b = TB_BUF_INIT;
	size_t pos = 0, n, total = 0, spans = 0;

	(void)state;
	append_pattern(&b, &pos, 1 << 20);
	assert_int_equal(tb_buf_len(&b), 1 << 20);
	check_contents(&b, 0);
	/* Big appends are split into bounded chunks, not one huge block. */
	while (tb_buf_len(&b) > 0) {
		tb_buf_peek(&b, &n);
		assert_true(n <= 16384);
		total += n;
		spans++;
		tb_buf_consume(&b, n);
	}
	assert_int_equal(total, 1 << 20);
	assert_true(spans >= (1 << 20) / 16384);
	assert_null(b.head);
}

static void test_copyout_offsets(void **state)
{
	tb_buf_t b = TB_BUF_INIT;
	uint8_t out[5000], want[5000];
	size_t pos = 0, i;

	(void)state;
	/* Many small appends followed by big ones: several chunks of mixed size. */
	for (i = 0; i < 300; i++)
		append_pattern(&b, &pos, 37);
	append_pattern(&b, &pos, 20000);
	append_pattern(&b, &pos, 3);
	tb_buf_consume(&b, 11);
	for (i = 0; i + 100 <= tb_buf_len(&b); i += 997) {
		assert_int_equal(tb_buf_copyout(&b, i, out, 100), 100);
		fill(want, 11 + i, 100);
		assert_memory_equal(out, want, 100);
	}
	/* Spans crossing every chunk boundary at once. */
	assert_int_equal(tb_buf_copyout(&b, 2000, out, sizeof(out)), sizeof(out));
	fill(want, 2011, sizeof(out));
	assert_memory_equal(out, want, sizeof(out));
	/* Reads past the end are short; nothing is consumed. */
	assert_int_equal(tb_buf_copyout(&b, tb_buf_len(&b) - 4, out, 100), 4);
	assert_int_equal(tb_buf_copyout(&b, tb_buf_len(&b), out, 100), 0);
	assert_int_equal(tb_buf_copyout(&b, tb_buf_len(&b) + 50, out, 100), 0);
	assert_int_equal(tb_buf_len(&b), pos - 11);
	check_contents(&b, 11);
	tb_buf_free(&b);
	assert_null(b.head);
	assert_int_equal(tb_buf_len(&b), 0);
}

static void test_pullup(void **state)
{
	tb_buf_t b = TB_BUF_INIT;
	const uint8_t *p;
	uint8_t want[40000];
	size_t pos = 0, n;

	(void)state;
	/* Already contiguous: the same span. */
	append_pattern(&b, &pos, 100);
	p = tb_buf_peek(&b, &n);
	assert_ptr_equal(tb_buf_pullup(&b, 50), p);

	/* Across a chunk boundary, where the head has room. */
	append_pattern(&b, &pos, 3000); /* fills chunk one, starts chunk two */
	tb_buf_consume(&b, 30);
	tb_buf_peek(&b, &n);
	assert_true(n < tb_buf_len(&b));
	p = tb_buf_pullup(&b, n + 10);
	assert_non_null(p);
	fill(want, 30, n + 10);
	assert_memory_equal(p, want, n + 10);
	check_contents(&b, 30);

	/* Larger than any chunk: the whole queue made contiguous. */
	append_pattern(&b, &pos, 30000);
	n = tb_buf_len(&b);
	p = tb_buf_pullup(&b, n);
	assert_non_null(p);
	fill(want, 30, n);
	assert_memory_equal(p, want, n);
	assert_ptr_equal(tb_buf_peek(&b, &n), p);
	assert_int_equal(n, tb_buf_len(&b));

	/* Appending after a full pullup still works (the tail moved). */
	append_pattern(&b, &pos, 5000);
	check_contents(&b, 30);
	assert_null(tb_buf_pullup(&b, tb_buf_len(&b) + 1));
	tb_buf_consume(&b, tb_buf_len(&b));
	assert_null(b.head);
	assert_null(b.tail);
}

/* A protocol reader's pattern: pull up a header, consume, repeat. */
static void test_pullup_stream(void **state)
{
	tb_buf_t b = TB_BUF_INIT;
	const uint8_t *p;
	size_t in = 0, out = 0, step;
	uint8_t want[700];

	(void)state;
	for (step = 1; in < 200000; step = step * 7 % 691 + 1) {
		append_pattern(&b, &in, step * 3 % 1500 + 1);
		while (tb_buf_len(&b) >= step) {
			p = tb_buf_pullup(&b, step);
			assert_non_null(p);
			fill(want, out, step);
			assert_memory_equal(p, want, step);
			tb_buf_consume(&b, step);
			out += step;
		}
	}
	assert_int_equal(in - out, tb_buf_len(&b));
	check_contents(&b, out);
	tb_buf_free(&b);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_append_peek_consume),
		cmocka_unit_test(test_empty_frees),
		cmocka_unit_test(test_large_append),
		cmocka_unit_test(test_copyout_offsets),
		cmocka_unit_test(test_pullup),
		cmocka_unit_test(test_pullup_stream),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
