/* test_conf.c: the strict TOML subset parser, its lookups and its errors.
 *
 * Error cases assert the exact line:col and key, so a parser that reports a
 * neighbouring byte, or the wrong key, fails here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tb/conf.h"

#define FIXTURES TB_SRCDIR "/tests/unit/conf"

static tb_conf_t *parse_ok(const char *text)
{
	tb_conf_t *c = NULL;
	tb_conf_err_t err;
	int rc = tb_conf_parse(text, strlen(text), "t.toml", &c, &err);

	if (rc != 0)
		fail_msg("unexpected error %d:%d: %s: %s", err.line, err.col, err.key, err.msg);
	assert_non_null(c);
	return c;
}

/* Follows a path of table keys and [i] indexes: at(root, "a", "[1]", "b", NULL). */
static const tb_conf_val_t *at(const tb_conf_val_t *v, ...)
{
	const char *k;
	va_list ap;

	va_start(ap, v);
	while (v && (k = va_arg(ap, const char *))) {
		if (k[0] == '[') {
			long i = strtol(k + 1, NULL, 10);

			assert_int_equal(v->type, TB_CONF_ARRAY);
			for (v = v->u.list.first; v && i > 0; i--)
				v = v->next;
		} else {
			v = tb_conf_get(v, k);
		}
	}
	va_end(ap);
	return v;
}

static const char *str_at(const tb_conf_val_t *v)
{
	assert_non_null(v);
	assert_int_equal(v->type, TB_CONF_STRING);
	assert_int_equal(strlen(v->u.str.s), v->u.str.len);
	return v->u.str.s;
}

static int64_t int_at(const tb_conf_val_t *v)
{
	assert_non_null(v);
	assert_int_equal(v->type, TB_CONF_INT);
	return v->u.i;
}

static void assert_pos(const tb_conf_val_t *v, int line, int col)
{
	assert_non_null(v);
	assert_int_equal(v->line, line);
	assert_int_equal(v->col, col);
}

/* ---- valid documents ---- */

static void test_empty_and_comments(void **state)
{
	tb_conf_t *c;

	(void)state;
	c = parse_ok("");
	assert_int_equal(c->root->type, TB_CONF_TABLE);
	assert_int_equal(c->root->u.list.n, 0);
	assert_string_equal(c->file, "t.toml");
	tb_conf_free(c);

	c = parse_ok("# only a comment\n\n   \t\n# \xc3\xa9t\xc3\xa9 \t\"'[]\n");
	assert_int_equal(c->root->u.list.n, 0);
	tb_conf_free(c);

	/* no final newline, CRLF line ends, a BOM */
	c = parse_ok("\xEF\xBB\xBF"
		     "a = 1 # one\r\nb = 2");
	assert_int_equal(int_at(at(c->root, "a", NULL)), 1);
	assert_int_equal(int_at(at(c->root, "b", NULL)), 2);
	assert_pos(at(c->root, "a", NULL), 1, 4); /* columns count the BOM's bytes */
	assert_pos(at(c->root, "b", NULL), 2, 1);
	tb_conf_free(c);
}

static void test_keys(void **state)
{
	tb_conf_t *c;
	const tb_conf_val_t *v;

	(void)state;
	c = parse_ok("bare_key-1 = 1\n"
		     "1234 = 2\n"
		     "\"quoted key\" = 3\n"
		     "'lit\\key' = 4\n"
		     "\"\" = 5\n"
		     "\"\\u00e9\" = 6\n"
		     "site . \"google.com\" . x = 7\n"
		     "3.14 = 8\n"
		     "site.y = 9\n");
	assert_int_equal(int_at(at(c->root, "bare_key-1", NULL)), 1);
	assert_int_equal(int_at(at(c->root, "1234", NULL)), 2);
	assert_int_equal(int_at(at(c->root, "quoted key", NULL)), 3);
	assert_int_equal(int_at(at(c->root, "lit\\key", NULL)), 4);
	assert_int_equal(int_at(at(c->root, "", NULL)), 5);
	assert_int_equal(int_at(at(c->root, "\xc3\xa9", NULL)), 6);
	v = at(c->root, "site", NULL);
	assert_int_equal(v->type, TB_CONF_TABLE);
	assert_int_equal(v->u.list.n, 2);
	assert_pos(v, 7, 1);
	assert_pos(at(v, "google.com", NULL), 7, 8);
	assert_pos(at(v, "google.com", "x", NULL), 7, 23);
	assert_int_equal(int_at(at(v, "google.com", "x", NULL)), 7);
	assert_int_equal(int_at(at(c->root, "3", "14", NULL)), 8);
	assert_int_equal(int_at(at(v, "y", NULL)), 9);
	/* document order is kept */
	assert_string_equal(c->root->u.list.first->key, "bare_key-1");
	assert_string_equal(c->root->u.list.last->key, "3");
	tb_conf_free(c);
}

static void test_tables(void **state)
{
	tb_conf_t *c;
	const tb_conf_val_t *v;

	(void)state;
	c = parse_ok("top = true\n"
		     "[a.b.c]\n"
		     "x = 1\n"
		     "[ a . b ]  # defines the table [a.b.c] made implicitly\n"
		     "y = 2\n"
		     "[a]\n"
		     "z = 3\n"
		     "[\"q.k\"]\n"
		     "[fruit]\n"
		     "apple.color = \"red\"\n"
		     "apple.taste.sweet = true\n"
		     "[fruit.apple.texture]  # sub-table of a dotted-key table\n"
		     "smooth = true\n"
		     "[empty]\n");
	assert_true(at(c->root, "top", NULL)->u.b);
	assert_int_equal(int_at(at(c->root, "a", "b", "c", "x", NULL)), 1);
	assert_int_equal(int_at(at(c->root, "a", "b", "y", NULL)), 2);
	assert_int_equal(int_at(at(c->root, "a", "z", NULL)), 3);
	/* a table takes the position of the header that defines it */
	assert_pos(at(c->root, "a", NULL), 6, 2);
	assert_pos(at(c->root, "a", "b", NULL), 4, 7);
	assert_pos(at(c->root, "a", "b", "c", NULL), 2, 6);
	v = at(c->root, "q.k", NULL);
	assert_int_equal(v->type, TB_CONF_TABLE);
	assert_int_equal(v->u.list.n, 0);
	assert_string_equal(str_at(at(c->root, "fruit", "apple", "color", NULL)), "red");
	assert_true(at(c->root, "fruit", "apple", "taste", "sweet", NULL)->u.b);
	assert_true(at(c->root, "fruit", "apple", "texture", "smooth", NULL)->u.b);
	assert_int_equal(at(c->root, "empty", NULL)->u.list.n, 0);
	tb_conf_free(c);
}

static void test_arrays_of_tables(void **state)
{
	tb_conf_t *c;
	const tb_conf_val_t *a;

	(void)state;
	c = parse_ok("[[a]]\n"
		     "n = 1\n"
		     "[[a.b]]\n"
		     "x = 1\n"
		     "[[a.b]]\n"
		     "x = 2\n"
		     "[a.t]\n"
		     "k = 1\n"
		     "[[a]]\n"
		     "n = 2\n"
		     "[[a.b]]\n"
		     "x = 3\n"
		     "[a.t]  # a new element, so a new a.t\n"
		     "k = 2\n"
		     "[[a]]\n"
		     "[[ x . y ]]\n");
	a = at(c->root, "a", NULL);
	assert_int_equal(a->type, TB_CONF_ARRAY);
	assert_int_equal(a->u.list.n, 3);
	assert_pos(a, 1, 3);
	assert_null(a->u.list.first->key);
	assert_pos(at(a, "[1]", NULL), 9, 3);
	assert_int_equal(at(a, "[0]", "b", NULL)->u.list.n, 2);
	assert_int_equal(int_at(at(a, "[0]", "b", "[1]", "x", NULL)), 2);
	assert_int_equal(int_at(at(a, "[0]", "t", "k", NULL)), 1);
	assert_int_equal(at(a, "[1]", "b", NULL)->u.list.n, 1);
	assert_int_equal(int_at(at(a, "[1]", "b", "[0]", "x", NULL)), 3);
	assert_int_equal(int_at(at(a, "[1]", "t", "k", NULL)), 2);
	assert_int_equal(at(a, "[2]", NULL)->u.list.n, 0);
	assert_int_equal(at(c->root, "x", "y", NULL)->u.list.n, 1);
	tb_conf_free(c);
}

static void test_inline_tables(void **state)
{
	tb_conf_t *c;
	const tb_conf_val_t *v;

	(void)state;
	c = parse_ok("p = { x = 1, y = \"two\", z.w = true, n = { m = [1, {k = 2}] } }\n"
		     "e = {}\n"
		     "f = {\t}\n");
	v = at(c->root, "p", NULL);
	assert_int_equal(v->type, TB_CONF_TABLE);
	assert_int_equal(v->u.list.n, 4);
	assert_int_equal(int_at(at(v, "x", NULL)), 1);
	assert_pos(at(v, "x", NULL), 1, 7);
	assert_string_equal(str_at(at(v, "y", NULL)), "two");
	assert_true(at(v, "z", "w", NULL)->u.b);
	assert_int_equal(int_at(at(v, "n", "m", "[1]", "k", NULL)), 2);
	assert_pos(at(v, "n", "m", "[1]", NULL), 1, 51);
	assert_int_equal(at(c->root, "e", NULL)->u.list.n, 0);
	assert_int_equal(at(c->root, "f", NULL)->type, TB_CONF_TABLE);
	tb_conf_free(c);
}

static void test_strings(void **state)
{
	tb_conf_t *c;
	const tb_conf_val_t *v;

	(void)state;
	c = parse_ok("esc = \"\\b\\t\\n\\f\\r\\\"\\\\/ end\"\n"
		     "u = \"\\u00e9\\u20AC\\U0001F600\\u0001\"\n"
		     "raw = \"caf\xc3\xa9 \xf0\x9f\x98\x80\ttab\"\n"
		     "lit = 'C:\\path\\\"x\"'\n"
		     "empty = \"\"\n"
		     "empty_lit = ''\n"
		     "ml = \"\"\"\n"
		     "line one\n"
		     "  line \"two\"\r\n"
		     "\"\"\"\n"
		     "cont = \"\"\"\\\n"
		     "   The quick \\\n"
		     "\n"
		     "   brown \\   \n"
		     "   fox.\"\"\"\n"
		     "q = \"\"\"\"quoted\"\"\"\"\"\n"
		     "mllit = '''\n"
		     "no \\escapes\n"
		     "  'here'\n"
		     "'''\n"
		     "mllit2 = ''''one quote'''\n"
		     "after = 1\n");
	assert_string_equal(str_at(at(c->root, "esc", NULL)), "\b\t\n\f\r\"\\/ end");
	assert_string_equal(str_at(at(c->root, "u", NULL)), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x01");
	assert_string_equal(str_at(at(c->root, "raw", NULL)), "caf\xc3\xa9 \xf0\x9f\x98\x80\ttab");
	assert_string_equal(str_at(at(c->root, "lit", NULL)), "C:\\path\\\"x\"");
	assert_string_equal(str_at(at(c->root, "empty", NULL)), "");
	assert_string_equal(str_at(at(c->root, "empty_lit", NULL)), "");
	/* first newline trimmed, CRLF read as LF */
	assert_string_equal(str_at(at(c->root, "ml", NULL)), "line one\n  line \"two\"\n");
	assert_string_equal(str_at(at(c->root, "cont", NULL)), "The quick brown fox.");
	assert_string_equal(str_at(at(c->root, "q", NULL)), "\"quoted\"\"");
	assert_string_equal(str_at(at(c->root, "mllit", NULL)), "no \\escapes\n  'here'\n");
	assert_string_equal(str_at(at(c->root, "mllit2", NULL)), "'one quote");
	/* lines after multi-line strings are counted right */
	v = at(c->root, "after", NULL);
	assert_pos(v, 22, 1);
	assert_pos(at(c->root, "mllit2", NULL), 21, 1);
	tb_conf_free(c);
}

/* Strings of every size class of the arena: within a block, bigger than the
 * next block, and big enough for a block of their own. */
static void test_long_strings(void **state)
{
	static const size_t sizes[] = {1, 100, 2047, 2048, 3000, 5000, 16383, 16400, 70000, 300000};
	size_t cap = 400000, i, j, n;
	char *text = malloc(cap);
	tb_conf_t *c;
	const tb_conf_val_t *v;

	(void)state;
	assert_non_null(text);
	for (i = 0; i < TB_ARRAY_SIZE(sizes); i++) {
		n = (size_t)snprintf(text, cap, "short = 'x'\ns%zu = \"", i);
		for (j = 0; j < sizes[i]; j++)
			text[n++] = (char)('a' + j % 26);
		n += (size_t)snprintf(text + n, cap - n, "\"\nafter = 'y'\n");
		c = parse_ok(text);
		v = c->root->u.list.first->next;
		assert_int_equal(v->u.str.len, sizes[i]);
		for (j = 0; j < sizes[i]; j++)
			if (v->u.str.s[j] != (char)('a' + j % 26))
				fail_msg("size %zu: byte %zu differs", sizes[i], j);
		assert_string_equal(str_at(at(c->root, "short", NULL)), "x");
		assert_string_equal(str_at(at(c->root, "after", NULL)), "y");
		tb_conf_free(c);
	}
	free(text);
}

static void test_integers(void **state)
{
	tb_conf_t *c;

	(void)state;
	c = parse_ok("a = 0\nb = +17\nc = -42\nd = 1_000_000\ne = 0xDEAD_beef\nf = 0o755\n"
		     "g = 0b1101\nh = 9223372036854775807\ni = -9223372036854775808\nj = -0\n"
		     "k = +0\nl = 0x7fffffffffffffff\nm = 0x0001\nn = 5 # c\n");
	assert_int_equal(int_at(at(c->root, "a", NULL)), 0);
	assert_int_equal(int_at(at(c->root, "b", NULL)), 17);
	assert_int_equal(int_at(at(c->root, "c", NULL)), -42);
	assert_int_equal(int_at(at(c->root, "d", NULL)), 1000000);
	assert_int_equal(int_at(at(c->root, "e", NULL)), 0xdeadbeef);
	assert_int_equal(int_at(at(c->root, "f", NULL)), 0755);
	assert_int_equal(int_at(at(c->root, "g", NULL)), 13);
	assert_true(int_at(at(c->root, "h", NULL)) == INT64_MAX);
	assert_true(int_at(at(c->root, "i", NULL)) == INT64_MIN);
	assert_int_equal(int_at(at(c->root, "j", NULL)), 0);
	assert_int_equal(int_at(at(c->root, "k", NULL)), 0);
	assert_true(int_at(at(c->root, "l", NULL)) == INT64_MAX);
	assert_int_equal(int_at(at(c->root, "m", NULL)), 1);
	assert_int_equal(int_at(at(c->root, "n", NULL)), 5);
	tb_conf_free(c);
}

static void test_bools_and_arrays(void **state)
{
	tb_conf_t *c;
	const tb_conf_val_t *v;

	(void)state;
	c = parse_ok("t = true\nf = false\n"
		     "e = []\n"
		     "mixed = [1, \"two\", true, [3, [4]], {five = 5}]\n"
		     "multi = [  # comment after the bracket\n"
		     "\t1,\n"
		     "\n"
		     "\t# a comment line\n"
		     "\t2 , # another\n"
		     "]\n"
		     "nested = [[],[[]]]\n");
	assert_true(at(c->root, "t", NULL)->u.b);
	assert_int_equal(at(c->root, "f", NULL)->type, TB_CONF_BOOL);
	assert_false(at(c->root, "f", NULL)->u.b);
	assert_int_equal(at(c->root, "e", NULL)->u.list.n, 0);
	v = at(c->root, "mixed", NULL);
	assert_int_equal(v->u.list.n, 5);
	assert_int_equal(int_at(at(v, "[0]", NULL)), 1);
	assert_string_equal(str_at(at(v, "[1]", NULL)), "two");
	assert_int_equal(at(v, "[2]", NULL)->type, TB_CONF_BOOL);
	assert_int_equal(int_at(at(v, "[3]", "[1]", "[0]", NULL)), 4);
	assert_int_equal(int_at(at(v, "[4]", "five", NULL)), 5);
	/* elements record their own position; they have no key */
	assert_pos(at(v, "[1]", NULL), 4, 13);
	assert_null(at(v, "[1]", NULL)->key);
	v = at(c->root, "multi", NULL);
	assert_int_equal(v->u.list.n, 2);
	assert_pos(at(v, "[0]", NULL), 6, 2);
	assert_pos(at(v, "[1]", NULL), 9, 2);
	assert_int_equal(int_at(at(v, "[1]", NULL)), 2);
	assert_int_equal(at(c->root, "nested", "[1]", "[0]", NULL)->type, TB_CONF_ARRAY);
	tb_conf_free(c);
}

static void test_depth_limit_ok(void **state)
{
	char text[512];
	tb_conf_t *c;
	int i, n = 0;

	(void)state;
	/* x is at depth 1; 31 more arrays reach exactly TB_CONF_MAX_DEPTH. */
	n += snprintf(text + n, sizeof(text) - (size_t)n, "x = ");
	for (i = 0; i < TB_CONF_MAX_DEPTH; i++)
		text[n++] = '[';
	for (i = 0; i < TB_CONF_MAX_DEPTH; i++)
		text[n++] = ']';
	text[n] = '\0';
	c = parse_ok(text);
	tb_conf_free(c);
}

static void test_many_keys(void **state)
{
	size_t cap = 40000 * 16, n = 0;
	char *text = malloc(cap);
	tb_conf_err_t err;
	tb_conf_t *c = NULL;
	int i;

	(void)state;
	assert_non_null(text);
	for (i = 0; i < 40000; i++)
		n += (size_t)snprintf(text + n, cap - n, "k%d = %d\n", i, i);
	c = parse_ok(text);
	assert_int_equal(c->root->u.list.n, 40000);
	assert_int_equal(int_at(at(c->root, "k39999", NULL)), 39999);
	tb_conf_free(c);
	/* the duplicate at the end is still found */
	n += (size_t)snprintf(text + n, cap - n, "k123 = 0\n");
	assert_int_equal(tb_conf_parse(text, n, NULL, &c, &err), TB_EINVAL);
	assert_int_equal(err.line, 40001);
	assert_int_equal(err.col, 1);
	assert_string_equal(err.key, "k123");
	assert_string_equal(err.msg, "duplicate key, first defined at 124:1");
	free(text);
}

/* ---- the rog-style gateway file ---- */

static void test_rog_gateway(void **state)
{
	tb_conf_err_t err;
	tb_conf_t *c = NULL;
	const tb_conf_val_t *l, *r, *d, *o;
	int rc;

	(void)state;
	rc = tb_conf_load(FIXTURES "/rog.toml", &c, &err);
	if (rc)
		fail_msg("%d:%d: %s: %s", err.line, err.col, err.key, err.msg);
	assert_string_equal(c->file, FIXTURES "/rog.toml");
	assert_string_equal(str_at(at(c->root, "server_id", NULL)), "gw-1");
	l = at(c->root, "listener", NULL);
	assert_int_equal(l->u.list.n, 2);
	assert_pos(l, 7, 3);
	assert_string_equal(str_at(at(l, "[0]", "proto", NULL)), "htss5");
	assert_string_equal(str_at(at(l, "[1]", "pw", NULL)), "p@ss\\word");
	o = at(l, "[1]", "options", NULL);
	assert_pos(o, 19, 1);
	assert_true(at(o, "keep_alive", NULL)->u.b);
	assert_pos(at(o, "keep_alive", NULL), 19, 13);
	assert_int_equal(int_at(at(o, "dial_timeout_ms", NULL)), 8000);
	assert_int_equal(at(c->root, "connector", NULL)->u.list.n, 3);
	assert_string_equal(str_at(at(c->root, "connector", "[2]", "pw", NULL)), "s3cr\xc3\xa9t");
	o = at(c->root, "connector", "[2]", "options", NULL);
	assert_pos(o, 34, 12);
	assert_false(at(o, "insecure", NULL)->u.b);
	assert_int_equal(int_at(at(o, "idle_timeout_s", NULL)), 300);
	r = at(c->root, "router", NULL);
	assert_int_equal(r->u.list.n, 2);
	assert_int_equal(at(r, "[0]", "route_rules", NULL)->u.list.n, 2);
	assert_pos(at(r, "[0]", "route_rules", "[1]", NULL), 49, 10);
	assert_int_equal(at(r, "[0]", "route_rules", "[0]", "exclude", NULL)->u.list.n, 0);
	assert_string_equal(str_at(at(r, "[0]", "route_rules", "[1]", "exclude", "[1]", NULL)),
			    "example\\.org");
	assert_pos(at(r, "[0]", "route_rules", "[1]", "exclude", "[0]", NULL), 53, 2);
	assert_true(at(r, "[0]", "route_rules", "[1]", "domain_to_ip", NULL)->u.b);
	assert_null(at(r, "[1]", "route_rules", NULL));
	d = at(c->root, "data", NULL);
	assert_int_equal(d->u.list.n, 3);
	assert_string_equal(str_at(at(d, "[1]", "data", NULL)), "ads.example.com\ntracker.example.net\n");
	assert_string_equal(str_at(at(d, "[2]", "data", NULL)), "1.0.1.0/24\n1.0.2.0/23\n");
	assert_pos(at(d, "[2]", "format", NULL), 77, 1);
	tb_conf_free(c);
}

static void test_load_errors(void **state)
{
	char path[] = "/tmp/tb_conf_XXXXXX", buf[256];
	tb_conf_err_t err;
	tb_conf_t *c = NULL;
	char *big;
	int fd;

	(void)state;
	assert_int_equal(tb_conf_load(FIXTURES "/no-such-file.toml", &c, &err), TB_ENOENT);
	assert_null(c);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "cannot open: No such file or directory");
	assert_string_equal(tb_conf_err_str(NULL, "x.toml", &err, buf, sizeof(buf)),
			    "x.toml: cannot open: No such file or directory");

	assert_int_equal(tb_conf_load(FIXTURES, &c, &err), TB_ENOENT);
	assert_string_equal(err.msg, "cannot read: Is a directory");

	assert_int_equal(tb_conf_load(FIXTURES "/bad_route_rule.toml", &c, &err), TB_EINVAL);
	assert_null(c);
	assert_int_equal(err.line, 9);
	assert_int_equal(err.col, 1);
	assert_string_equal(err.key, "router[0].route_rules[0].select");
	tb_conf_err_str(NULL, "bad.toml", &err, buf, sizeof(buf));
	assert_string_equal(buf, "bad.toml:9:1: router[0].route_rules[0].select: "
				 "duplicate key, first defined at 7:1");

	/* one byte over the limit, all of it a valid comment */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	big = malloc(TB_CONF_MAX_SIZE + 1);
	assert_non_null(big);
	memset(big, '#', TB_CONF_MAX_SIZE + 1);
	assert_int_equal(write(fd, big, TB_CONF_MAX_SIZE + 1), TB_CONF_MAX_SIZE + 1);
	close(fd);
	assert_int_equal(tb_conf_load(path, &c, &err), TB_EINVAL);
	assert_string_equal(err.msg, "file is larger than 1048576 bytes");
	assert_int_equal(tb_conf_parse(big, TB_CONF_MAX_SIZE + 1, NULL, &c, &err), TB_EINVAL);
	assert_string_equal(err.msg, "configuration is larger than 1048576 bytes");
	/* exactly at the limit is fine */
	assert_int_equal(tb_conf_parse(big, TB_CONF_MAX_SIZE, NULL, &c, &err), 0);
	tb_conf_free(c);
	unlink(path);
	free(big);
}

/* ---- lookups ---- */

static void test_getters(void **state)
{
	tb_conf_err_t err;
	tb_conf_t *c;
	const tb_conf_val_t *l;
	const char *s = "preset";
	int64_t i = 77;
	bool b = false;

	(void)state;
	c = parse_ok("[[listener]]\nname = \"a\"\nport = 1080\nudp = true\n"
		     "[listener.options]\nsni = 5\n");
	l = at(c->root, "listener", "[0]", NULL);
	assert_int_equal(tb_conf_get_str(l, "name", &s, &err), 0);
	assert_string_equal(s, "a");
	assert_int_equal(tb_conf_get_int(l, "port", &i, &err), 0);
	assert_int_equal(i, 1080);
	assert_int_equal(tb_conf_get_bool(l, "udp", &b, &err), 0);
	assert_true(b);

	/* absent: TB_ENOENT, the default survives */
	i = 77;
	assert_int_equal(tb_conf_get_int(l, "missing", &i, &err), TB_ENOENT);
	assert_int_equal(i, 77);
	assert_int_equal(tb_conf_get_str(l, "missing", &s, NULL), TB_ENOENT);
	assert_null(tb_conf_get(l, "missing"));
	assert_null(tb_conf_get(at(l, "name", NULL), "x")); /* not a table */

	/* wrong type: position and full path of the value */
	assert_int_equal(tb_conf_get_str(l, "port", &s, &err), TB_EINVAL);
	assert_string_equal(s, "a");
	assert_int_equal(err.line, 3);
	assert_int_equal(err.col, 1);
	assert_string_equal(err.key, "listener[0].port");
	assert_string_equal(err.msg, "expected a string, found an integer");
	assert_int_equal(tb_conf_get_int(l, "udp", &i, &err), TB_EINVAL);
	assert_string_equal(err.msg, "expected an integer, found a boolean");
	assert_int_equal(tb_conf_get_bool(l, "options", &b, &err), TB_EINVAL);
	assert_string_equal(err.msg, "expected a boolean, found a table");
	assert_int_equal(tb_conf_get_str(at(l, "options", NULL), "sni", &s, &err), TB_EINVAL);
	assert_string_equal(err.key, "listener[0].options.sni");
	assert_int_equal(err.line, 6);

	/* need_str: absence is an error at the table */
	assert_int_equal(tb_conf_need_str(l, "endpoint", &s, &err), TB_EINVAL);
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 3);
	assert_string_equal(err.key, "listener[0].endpoint");
	assert_string_equal(err.msg, "missing key");
	assert_int_equal(tb_conf_need_str(c->root, "top key", &s, &err), TB_EINVAL);
	assert_string_equal(err.key, "\"top key\"");
	assert_int_equal(tb_conf_need_str(l, "name", &s, &err), 0);

	tb_conf_set_err(&err, at(l, "port", NULL), "port %d is reserved", 1080);
	assert_int_equal(err.line, 3);
	assert_string_equal(err.key, "listener[0].port");
	assert_string_equal(err.msg, "port 1080 is reserved");
	tb_conf_free(c);
}

static void test_err_str(void **state)
{
	tb_conf_err_t err = {.line = 3, .col = 7, .key = "a.b", .msg = "bad"};
	tb_conf_t *c;
	char buf[64];

	(void)state;
	c = parse_ok("");
	assert_string_equal(tb_conf_err_str(c, NULL, &err, buf, sizeof(buf)), "t.toml:3:7: a.b: bad");
	assert_string_equal(tb_conf_err_str(c, "o.toml", &err, buf, sizeof(buf)), "o.toml:3:7: a.b: bad");
	err.key[0] = '\0';
	assert_string_equal(tb_conf_err_str(c, NULL, &err, buf, sizeof(buf)), "t.toml:3:7: bad");
	assert_string_equal(tb_conf_err_str(NULL, NULL, &err, buf, sizeof(buf)), "<config>:3:7: bad");
	assert_string_equal(tb_conf_err_str(c, NULL, &err, buf, 8), "t.toml:");
	tb_conf_free(c);
}

struct unused {
	char seen[8][64];
	int n;
};

static void collect(void *arg, const tb_conf_val_t *v, const char *path)
{
	struct unused *u = arg;

	assert_true(u->n < 8);
	assert_non_null(v);
	snprintf(u->seen[u->n++], sizeof(u->seen[0]), "%s@%d:%d", path, v->line, v->col);
}

static void test_foreach_unused(void **state)
{
	struct unused u = {.n = 0};
	tb_conf_t *c;
	const tb_conf_val_t *l;
	const char *s;

	(void)state;
	c = parse_ok("verbose = true\n"
		     "[[listener]]\nname = \"a\"\nprot = \"typo\"\n"
		     "[[listener]]\nname = \"b\"\nopts = { x = 1 }\n"
		     "[listener.options]\nsni = \"s\"\n\"odd key\" = 1\n"
		     "[unknown]\nx = 1\ny = 2\n");
	l = tb_conf_get(c->root, "listener");
	for (l = l->u.list.first; l; l = l->next)
		assert_int_equal(tb_conf_get_str(l, "name", &s, NULL), 0);
	assert_int_equal(tb_conf_get_str(at(c->root, "listener", "[1]", "options", NULL), "sni", &s, NULL),
			 0);
	tb_conf_foreach_unused(c->root, collect, &u);
	assert_int_equal(u.n, 5);
	assert_string_equal(u.seen[0], "verbose@1:1");
	assert_string_equal(u.seen[1], "listener[0].prot@4:1");
	assert_string_equal(u.seen[2], "listener[1].opts@7:1");
	assert_string_equal(u.seen[3], "listener[1].options.\"odd key\"@10:1");
	assert_string_equal(u.seen[4], "unknown@11:2");

	/* walking a sub-tree gives full paths too */
	u.n = 0;
	tb_conf_foreach_unused(at(c->root, "listener", NULL), collect, &u);
	assert_int_equal(u.n, 3);
	assert_string_equal(u.seen[0], "listener[0].prot@4:1");

	/* once everything is looked up, nothing is left */
	assert_non_null(tb_conf_get(c->root, "verbose"));
	assert_non_null(tb_conf_get(c->root, "unknown"));
	assert_non_null(at(c->root, "listener", "[0]", "prot", NULL));
	assert_non_null(at(c->root, "listener", "[1]", "opts", NULL));
	assert_non_null(at(c->root, "listener", "[1]", "options", "odd key", NULL));
	u.n = 0;
	tb_conf_foreach_unused(c->root, collect, &u);
	/* the tables were used, the keys inside them were not */
	assert_int_equal(u.n, 3);
	assert_string_equal(u.seen[0], "listener[1].opts.x@7:10");
	assert_string_equal(u.seen[1], "unknown.x@12:1");
	assert_string_equal(u.seen[2], "unknown.y@13:1");
	tb_conf_free(c);
}

/* ---- malformed documents ---- */

struct bad {
	const char *name;
	const char *text;
	size_t len; /* 0: strlen(text) */
	int line, col;
	const char *key;
	const char *msg;
};

static const struct bad bad_docs[] = {
	{"duplicate key", "a = 1\nb = 2\na = 3\n", 0, 3, 1, "a", "duplicate key, first defined at 1:1"},
	{"duplicate key, CRLF", "a = 1\r\nb = 2\r\n  b = 3\r\n", 0, 3, 3, "b",
	 "duplicate key, first defined at 2:1"},
	{"duplicate quoted key", "[s]\n\"a.b\" = 1\n'a.b' = 2\n", 0, 3, 1, "s.\"a.b\"",
	 "duplicate key, first defined at 2:1"},
	{"duplicate in inline table", "a = { b = 1, b = 2 }", 0, 1, 14, "a.b",
	 "duplicate key, first defined at 1:7"},
	{"duplicate in array of tables", "[[l]]\nn = 1\n[[l]]\nn = 1\nn = 2\n", 0, 5, 1, "l[1].n",
	 "duplicate key, first defined at 4:1"},
	{"table redefined", "[s]\nx = 1\n[t]\n[ s ]\n", 0, 4, 3, "s",
	 "'s' is already defined as a table at 1:2"},
	{"implicit table defined twice", "[a.b]\n[a]\n[a]\n", 0, 3, 2, "a",
	 "'a' is already defined as a table at 2:2"},
	{"conflict names a quoted key", "\"a\\nb\" = 1\n[\"a\\nb\"]\n", 0, 2, 2, "\"a\\u000Ab\"",
	 "'\"a\\u000Ab\"' is already defined as a value at 1:1"},
	{"table over a value", "a = 1\n[a]\n", 0, 2, 2, "a", "'a' is already defined as a value at 1:1"},
	{"key prefix is a value", "a = 1\na.b = 2\n", 0, 2, 1, "a.b",
	 "'a' is already defined as a value at 1:1"},
	{"header prefix is a value", "x.y = \"s\"\n[x.y.z]\n", 0, 2, 4, "x.y.z",
	 "'y' is already defined as a value at 1:3"},
	{"header over dotted-key table", "a.b = 1\n[a]\n", 0, 2, 2, "a",
	 "'a' is already defined as a table (by dotted keys) at 1:1"},
	{"dotted keys into a [table]", "[a.b]\n[a]\nb.c = 1\n", 0, 3, 1, "a.b.c",
	 "'b' is already defined as a table at 1:4"},
	{"dotted keys into an inline table", "a = {x = 1}\na.y = 2\n", 0, 2, 1, "a.y",
	 "'a' is already defined as an inline table at 1:1"},
	{"header into an inline table", "a = {x = 1}\n[a.y]\n", 0, 2, 2, "a.y",
	 "'a' is already defined as an inline table at 1:1"},
	{"[[x]] on a static array", "a = [1]\n[[a]]\n", 0, 2, 3, "a",
	 "cannot append to the static array 'a' defined at 1:1"},
	{"header through a static array", "a = [{b = 1}]\n[[a.c]]\n", 0, 2, 3, "a.c",
	 "'a' is already defined as an array at 1:1"},
	{"[table] over [[array]]", "[[a]]\n[a]\n", 0, 2, 2, "a",
	 "'a' is already defined as an array of tables at 1:3"},
	{"float", "[s]\nx = 1.5\n", 0, 2, 5, "s.x", "floats are not supported"},
	{"float exponent", "x = -2e10", 0, 1, 5, "x", "floats are not supported"},
	{"float inf", "x = [1, inf]", 0, 1, 9, "x[1]", "floats are not supported"},
	{"float -nan", "x = -nan", 0, 1, 5, "x", "floats are not supported"},
	{"date", "d = 1979-05-27", 0, 1, 5, "d", "dates and times are not supported"},
	{"time", "t = 07:32:00", 0, 1, 5, "t", "dates and times are not supported"},
	{"leading zero", "x = 012", 0, 1, 5, "x", "leading zeros are not allowed"},
	{"leading zero, signed", "x = -01", 0, 1, 6, "x", "leading zeros are not allowed"},
	{"double underscore", "x = 1__2", 0, 1, 6, "x", "'_' must sit between two digits"},
	{"trailing underscore", "x = 0x1_", 0, 1, 8, "x", "'_' must sit between two digits"},
	{"leading underscore", "x = _1", 0, 1, 5, "x", "invalid value (strings must be quoted)"},
	{"int64 overflow", "x = 9223372036854775808", 0, 1, 5, "x", "integer does not fit in 64 bits"},
	{"int64 underflow", "x = -9_223_372_036_854_775_809", 0, 1, 5, "x",
	 "integer does not fit in 64 bits"},
	{"hex overflow", "x = 0x8000000000000000", 0, 1, 5, "x", "integer does not fit in 64 bits"},
	{"signed hex", "x = +0x1", 0, 1, 5, "x", "hex, octal and binary integers cannot have a sign"},
	{"bad hex digit", "x = 0xfg", 0, 1, 8, "x", "invalid digit 'g' in a base 16 integer"},
	{"bad binary digit", "x = 0b102", 0, 1, 9, "x", "invalid digit '2' in a base 2 integer"},
	{"no digits after 0o", "x = 0o", 0, 1, 7, "x", "expected digits after '0o'"},
	{"capital prefix", "x = 0X1", 0, 1, 6, "x", "unexpected text after the value"},
	{"bare sign", "x = -", 0, 1, 5, "x", "invalid value"},
	{"bad escape", "x = \"a\\qb\"", 0, 1, 7, "x", "invalid escape sequence '\\q'"},
	{"\\e is TOML 1.1", "x = \"\\e\"", 0, 1, 6, "x", "invalid escape sequence '\\e'"},
	{"\\u0000", "x = \"ok\\u0000\"", 0, 1, 8, "x", "\\u0000 is not allowed (strings cannot hold NUL)"},
	{"surrogate", "x = \"\\uD83D\\uDE00\"", 0, 1, 6, "x",
	 "escape is a surrogate (U+D83D), not a character"},
	{"beyond U+10FFFF", "x = \"\\U00110000\"", 0, 1, 6, "x", "escape is beyond U+10FFFF"},
	{"short \\u", "x = \"\\u12\"", 0, 1, 6, "x", "\\u escape needs 4 hex digits"},
	{"short \\U", "x = \"\\U0001F60\"", 0, 1, 6, "x", "\\U escape needs 8 hex digits"},
	{"control char in string",
	 "x = \"a\x01"
	 "b\"",
	 0, 1, 7, "x", "control character U+0001 is not allowed"},
	{"DEL in literal string", "x = 'a\x7f'", 0, 1, 7, "x", "control character U+007F is not allowed"},
	{"NUL in string", "x = \"a\0b\"", 9, 1, 7, "x", "control character U+0000 is not allowed"},
	{"control char in comment", "x = 1 # a\x02", 0, 1, 10, "", "control character U+0002 is not allowed"},
	{"bare CR after value", "x = 1\ry = 2\n", 0, 1, 6, "x",
	 "bare carriage return (line breaks are LF or CRLF)"},
	{"bare CR in string", "x = \"a\rb\"", 0, 1, 7, "x",
	 "bare carriage return (line breaks are LF or CRLF)"},
	{"bare CR in comment", "# a\r# b\n", 0, 1, 4, "",
	 "bare carriage return (line breaks are LF or CRLF)"},
	{"bad UTF-8 in comment", "x = 1\n# ok \xff\n", 0, 2, 6, "", "invalid UTF-8"},
	{"overlong UTF-8 in string", "x = \"\xc0\xaf\"", 0, 1, 6, "x", "invalid UTF-8"},
	{"UTF-8 surrogate in string", "x = '\xed\xa0\x80'", 0, 1, 6, "x", "invalid UTF-8"},
	{"truncated UTF-8 at the end", "# \xe2\x82", 0, 1, 3, "", "invalid UTF-8"},
	{"bad UTF-8 as a key", "\xfe = 1", 0, 1, 1, "", "invalid UTF-8"},
	{"non-ASCII bare key", "caf\xc3\xa9 = 1", 0, 1, 4, "",
	 "bare keys are ASCII only (A-Z a-z 0-9 _ -): quote this key"},
	{"non-ASCII key part", "a.\xc3\xa9 = 1", 0, 1, 3, "a",
	 "bare keys are ASCII only (A-Z a-z 0-9 _ -): quote this key"},
	{"missing key", "  = 1", 0, 1, 3, "", "missing key before '='"},
	{"empty bare key part", "a..b = 1", 0, 1, 3, "a", "expected a key (bare keys are A-Z a-z 0-9 _ -)"},
	{"trailing dot in key", "[t]\na. = 1", 0, 2, 4, "t.a", "missing key before '='"},
	{"empty table name", "[]\n", 0, 1, 2, "", "expected a key (bare keys are A-Z a-z 0-9 _ -)"},
	{"missing value", "x =\ny = 1\n", 0, 1, 4, "x", "missing value"},
	{"missing value before comment", "x = # none\n", 0, 1, 5, "x", "missing value"},
	{"missing value at end", "x = ", 0, 1, 5, "x", "missing value"},
	{"missing '='", "name \"x\"\n", 0, 1, 6, "name", "expected '=' after the key"},
	{"key alone", "[t]\nname\n", 0, 2, 5, "t.name", "expected '=' after the key"},
	{"unquoted string", "proto = socks5\n", 0, 1, 9, "proto", "invalid value (strings must be quoted)"},
	{"garbage after value", "x = 1 2\n", 0, 1, 7, "x", "unexpected text after the value"},
	{"garbage after string", "x = \"a\"b\n", 0, 1, 8, "x", "unexpected text after the value"},
	{"garbage after bool", "x = truex\n", 0, 1, 9, "x", "unexpected text after the value"},
	{"two values on a line", "a = 1 b = 2", 0, 1, 7, "a", "unexpected text after the value"},
	{"garbage after header", "[a] x\n", 0, 1, 5, "a", "unexpected text after the table header"},
	{"unterminated header", "[a\nb = 1\n", 0, 1, 3, "a", "expected ']' after the table name"},
	{"half-closed [[header]", "[[a]\n", 0, 1, 5, "a", "expected ']]' after the table name"},
	{"spaced [[ header", "[ [a] ]\n", 0, 1, 3, "", "expected a key (bare keys are A-Z a-z 0-9 _ -)"},
	{"unterminated string", "x = \"abc\ny = 1\n", 0, 1, 5, "x", "unterminated string"},
	{"unterminated literal", "\n\nx = 'abc", 0, 3, 5, "x", "unterminated string"},
	{"unterminated multi-line", "x = \"\"\"abc\n\n\"\"", 0, 1, 5, "x", "unterminated string"},
	{"unterminated key string", "\"abc = 1\n", 0, 1, 1, "", "unterminated string"},
	{"multi-line key", "\"\"\"a\"\"\" = 1", 0, 1, 1, "", "a multi-line string cannot be a key"},
	{"too many closing quotes", "x = \"\"\"a\"\"\"\"\"\"", 0, 1, 14, "x",
	 "unexpected text after the value"},
	{"bad escape on line 3 of a string", "x = \"\"\"\nline1\nbad \\q\n\"\"\"", 0, 3, 5, "x",
	 "invalid escape sequence '\\q'"},
	{"text after line-ending backslash", "x = \"\"\"a\\ b\"\"\"", 0, 1, 9, "x",
	 "invalid escape: only whitespace may follow a line-ending backslash"},
	{"unterminated array", "x = [1, 2\n", 0, 1, 5, "x", "unterminated array"},
	{"array without commas", "x = [1 2]", 0, 1, 8, "x", "expected ',' or ']' in array"},
	{"array with empty slot", "x = [1,,2]", 0, 1, 8, "x[1]", "missing value"},
	{"array key leaking", "x = [1,\ny = 2]", 0, 2, 1, "x[1]", "invalid value (strings must be quoted)"},
	{"nested array error path", "x = [1, [2, 0x]]", 0, 1, 15, "x[1][1]", "expected digits after '0x'"},
	{"unterminated inline table", "x = {a = 1", 0, 1, 5, "x", "unterminated inline table"},
	{"newline in inline table", "x = {a = 1,\nb = 2}", 0, 1, 12, "x",
	 "an inline table must be on a single line"},
	{"trailing comma in inline table", "x = {a = 1, }", 0, 1, 13, "x",
	 "trailing comma is not allowed in an inline table"},
	{"inline table without commas", "x = {a = 1 b = 2}", 0, 1, 12, "x",
	 "expected ',' or '}' in inline table"},
	{"comment in inline table", "x = {a = 1 # no\n}", 0, 1, 12, "x",
	 "expected ',' or '}' in inline table"},
};

static void check_bad(void **state)
{
	const struct bad *b = *state;
	size_t len = b->len ? b->len : strlen(b->text);
	tb_conf_t *c = (tb_conf_t *)&c; /* must stay untouched */
	tb_conf_t *const sentinel = c;
	tb_conf_err_t err;
	int rc;

	memset(&err, 0x55, sizeof(err));
	rc = tb_conf_parse(b->text, len, "bad.toml", &c, &err);
	if (rc != TB_EINVAL || err.line != b->line || err.col != b->col || strcmp(err.key, b->key) != 0 ||
	    strcmp(err.msg, b->msg) != 0)
		fail_msg("%s: want %d %d:%d [%s] %s\n  got %d %d:%d [%s] %s", b->name, TB_EINVAL, b->line,
			 b->col, b->key, b->msg, rc, err.line, err.col, err.key, err.msg);
	assert_ptr_equal(c, sentinel);
}

static void test_depth_limit(void **state)
{
	char text[512];
	tb_conf_err_t err;
	tb_conf_t *c = NULL;
	int i, n;

	(void)state;
	/* nested arrays: the 33rd '[' would sit at depth 33 */
	n = snprintf(text, sizeof(text), "x = ");
	for (i = 0; i < 40; i++)
		text[n++] = '[';
	assert_int_equal(tb_conf_parse(text, (size_t)n, NULL, &c, &err), TB_EINVAL);
	assert_int_equal(err.line, 1);
	assert_int_equal(err.col, 5 + TB_CONF_MAX_DEPTH);
	assert_string_equal(err.msg, "nesting is too deep (more than 32 levels)");
	assert_memory_equal(err.key, "x[0][0][0]", 10);

	/* nested inline tables */
	n = snprintf(text, sizeof(text), "x = ");
	for (i = 0; i < 40; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "{a=");
	assert_int_equal(tb_conf_parse(text, (size_t)n, NULL, &c, &err), TB_EINVAL);
	assert_int_equal(err.col, 5 + 3 * (TB_CONF_MAX_DEPTH - 1) + 1);
	assert_string_equal(err.msg, "nesting is too deep (more than 32 levels)");

	/* tables through headers and dotted keys */
	n = snprintf(text, sizeof(text), "[a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a]\n");
	n += snprintf(text + n, sizeof(text) - (size_t)n, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a = 1\n");
	assert_int_equal(tb_conf_parse(text, (size_t)n, NULL, &c, &err), TB_EINVAL);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 33);
	assert_string_equal(err.msg, "nesting is too deep (more than 32 levels)");

	/* a key with more parts than can ever fit */
	n = 0;
	for (i = 0; i < 40; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "k.");
	n += snprintf(text + n, sizeof(text) - (size_t)n, "k = 1");
	assert_int_equal(tb_conf_parse(text, (size_t)n, NULL, &c, &err), TB_EINVAL);
	assert_int_equal(err.col, 2 * TB_CONF_MAX_DEPTH + 1);
	assert_string_equal(err.msg, "key has too many parts (more than 32)");
	assert_null(c);
}

static void test_error_needs_no_err(void **state)
{
	tb_conf_t *c = NULL;

	(void)state;
	assert_int_equal(tb_conf_parse("a = ", 4, NULL, &c, NULL), TB_EINVAL);
	assert_null(c);
	assert_int_equal(tb_conf_parse(NULL, 0, NULL, &c, NULL), 0);
	assert_non_null(c);
	assert_null(c->file);
	tb_conf_free(c);
	tb_conf_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_comments),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_arrays_of_tables),
		cmocka_unit_test(test_inline_tables),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_long_strings),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_bools_and_arrays),
		cmocka_unit_test(test_depth_limit_ok),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_rog_gateway),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_err_str),
		cmocka_unit_test(test_foreach_unused),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_error_needs_no_err),
	};
	struct CMUnitTest bad[TB_ARRAY_SIZE(bad_docs)];
	size_t i;
	int failed;

	for (i = 0; i < TB_ARRAY_SIZE(bad_docs); i++)
		bad[i] = (struct CMUnitTest){.name = bad_docs[i].name,
					     .test_func = check_bad,
					     .initial_state = (void *)&bad_docs[i]};
	failed = cmocka_run_group_tests_name("conf", tests, NULL, NULL);
	failed += _cmocka_run_group_tests("conf_malformed", bad, TB_ARRAY_SIZE(bad), NULL, NULL);
	return failed ? 1 : 0;
}
