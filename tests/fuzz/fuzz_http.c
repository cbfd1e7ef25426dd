/* fuzz_http.c: the HTTP request and response head parsers, the authority
 * and absolute-URI parsers on what they return, and Basic decoding.
 *
 * Build (codec only, no gateway symbols needed):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DTB_FUZZ_CODEC_ONLY -D_GNU_SOURCE \
 *     -Iinclude -Ibuild/include tests/fuzz/fuzz_http.c src/http.c src/addr.c src/base.c */
#include <stdlib.h>
#include <string.h>

#include "tb/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const tb_http_span_t *s, const uint8_t *p, size_t n)
{
	if (s->len && ((const uint8_t *)s->p < p || (const uint8_t *)s->p + s->len > p + n))
		abort();
}

static void targets(const tb_http_request_t *r)
{
	tb_http_span_t auth, path, u, pw;
	const tb_http_span_t *v;
	uint8_t creds[768];
	tb_target_t t;

	tb_http_authority_parse(r->target.p, r->target.len, 0, &t);
	if (tb_http_absolute_parse(r->target.p, r->target.len, &t, &auth, &path) == 0) {
		if (t.port == 0 || auth.len == 0)
			abort();
	}
	v = tb_http_header_get(r, "Proxy-Authorization");
	if (v && tb_http_basic_parse(v->p, v->len, creds, sizeof(creds), &u, &pw) == 0) {
		if (u.len + pw.len + 1 > sizeof(creds))
			abort();
	}
}

static void run(const uint8_t *p, size_t n)
{
	tb_http_request_t *r = malloc(sizeof(*r));
	uint8_t out[128];
	int status, rc;

	if (!r)
		return;
	rc = tb_http_request_parse(p, n, r);
	if (rc > 0) {
		if ((size_t)rc > n || (size_t)rc > TB_HTTP_HEAD_MAX || r->nheaders > TB_HTTP_HEADERS_MAX)
			abort();
		inside(&r->method, p, (size_t)rc);
		inside(&r->target, p, (size_t)rc);
		for (size_t i = 0; i < r->nheaders; i++) {
			inside(&r->headers[i].name, p, (size_t)rc);
			inside(&r->headers[i].value, p, (size_t)rc);
		}
		targets(r);
	}
	rc = tb_http_response_parse(p, n, r, &status);
	if (rc > 0 && ((size_t)rc > n || status < 0 || status > 999))
		abort();
	tb_http_base64_decode((const char *)p, n, out, sizeof(out));
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	run(copy, size);
	free(copy);
	return 0;
}
