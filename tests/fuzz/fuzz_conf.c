/* fuzz_conf.c: libFuzzer target for the TOML subset parser.
 *
 * Parses the input, checks invariants of the tree or of the error (a
 * position inside the text, NUL-terminated fields), walks every value with
 * the lookups a consumer would use, and frees. ASan's leak check covers the
 * error paths too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/conf.h"

#define CHECK(x)                                                                              \
	do {                                                                                  \
		if (!(x)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                              \
		}                                                                             \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_lines(const uint8_t *data, size_t size)
{
	size_t n = 1, i;

	for (i = 0; i < size; i++)
		n += data[i] == '\n';
	return n;
}

static void walk(const tb_conf_val_t *v, int depth)
{
	const tb_conf_val_t *e;
	size_t n = 0;

	CHECK(depth <= TB_CONF_MAX_DEPTH);
	CHECK(v->line >= 1 && v->col >= 1);
	switch (v->type) {
	case TB_CONF_STRING:
		CHECK(strlen(v->u.str.s) == v->u.str.len);
		return;
	case TB_CONF_INT:
	case TB_CONF_BOOL:
		return;
	case TB_CONF_TABLE:
	case TB_CONF_ARRAY:
		break;
	default:
		CHECK(0);
	}
	for (e = v->u.list.first; e; e = e->next, n++) {
		CHECK((v->type == TB_CONF_TABLE) == (e->key != NULL));
		walk(e, depth + 1);
		if (!e->next)
			CHECK(e == v->u.list.last);
	}
	CHECK(n == v->u.list.n);
	/* One typed lookup per table, as a consumer would do: it must find
	 * the first key and mark it (not every key, which would be
	 * quadratic in the harness, not in the parser). */
	if (v->type == TB_CONF_TABLE && v->u.list.first) {
		const char *s;
		tb_conf_err_t err;
		int rc = tb_conf_get_str(v, v->u.list.first->key, &s, &err);

		CHECK(v->u.list.first->used);
		CHECK(rc == 0 || (rc == TB_EINVAL && err.line == v->u.list.first->line));
	}
}

static void on_unused(void *arg, const tb_conf_val_t *v, const char *path)
{
	size_t *n = arg;

	CHECK(!v->used || v->type == TB_CONF_TABLE || v->type == TB_CONF_ARRAY);
	CHECK(strlen(path) < 256);
	(*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tb_conf_t *c = NULL;
	tb_conf_err_t err;
	char buf[512];
	size_t unused = 0;
	int rc;

	rc = tb_conf_parse((const char *)data, size, "fuzz.toml", &c, &err);
	if (rc != 0) {
		CHECK(rc == TB_EINVAL || rc == TB_ENOMEM);
		CHECK(c == NULL);
		CHECK(memchr(err.key, '\0', sizeof(err.key)) && memchr(err.msg, '\0', sizeof(err.msg)));
		CHECK(err.msg[0] != '\0');
		if (size <= TB_CONF_MAX_SIZE)
			CHECK(err.line >= 1 && (size_t)err.line <= count_lines(data, size) && err.col >= 1 &&
			      (size_t)err.col <= size + 1);
		tb_conf_err_str(NULL, "fuzz.toml", &err, buf, sizeof(buf));
		return 0;
	}
	CHECK(c && c->root && c->root->type == TB_CONF_TABLE);
	walk(c->root, 0);
	tb_conf_foreach_unused(c->root, on_unused, &unused);
	if (c->root->u.list.first) {
		tb_conf_set_err(&err, c->root->u.list.last, "fuzz %d", 1);
		tb_conf_err_str(c, NULL, &err, buf, sizeof(buf));
	}
	tb_conf_free(c);
	return 0;
}
