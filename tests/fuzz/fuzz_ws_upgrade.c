/* fuzz_ws_upgrade.c: the opening handshake. The input is read as a request
 * (parsed, checked as an upgrade; a valid one is answered with a 101 that
 * the client's check must accept), as the server's answer to a fixed key,
 * and split at NUL bytes into the parts of a client request: anything the
 * builder accepts must parse back as a valid upgrade.
 *
 * Build (or `make fuzz` with CONFIG_WS=y):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DTB_FUZZ_CODEC_ONLY -D_GNU_SOURCE \
 *     -Iinclude -Ibuild/ws/include tests/fuzz/fuzz_ws_upgrade.c src/ws.c src/http.c src/buf.c \
 *     src/base.c src/addr.c src/log.c port/posix/sys.c -lmbedcrypto */
#include <stdlib.h>
#include <string.h>

#include "tb/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if !ENABLE_WS
/* CONFIG_WS is off in this build: nothing to fuzz. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return 0;
}
#else
#include "tb/ws.h"

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

static void inside(const tb_http_span_t *s, const uint8_t *p, size_t n)
{
	if (s->len && ((const uint8_t *)s->p < p || (const uint8_t *)s->p + s->len > p + n))
		abort();
}

/* A request our server accepts gets a 101 our client accepts. */
static void as_request(const uint8_t *p, size_t n, tb_http_request_t *r)
{
	char out[512], key[TB_WS_KEY_LEN + 1];
	tb_http_span_t k, loc;
	int st, len;

	if (tb_http_request_parse(p, n, r) <= 0)
		return;
	st = tb_ws_upgrade_check(r, &k);
	if (st != 0) {
		if ((st != 400 && st != 405 && st != 426) || tb_ws_refusal_build(out, sizeof(out), st) <= 0)
			abort();
		return;
	}
	inside(&k, p, n);
	if (k.len != TB_WS_KEY_LEN)
		abort();
	memcpy(key, k.p, k.len);
	key[k.len] = '\0';
	len = tb_ws_response_build(out, sizeof(out), k.p, k.len);
	if (len <= 0 || tb_ws_response_check((const uint8_t *)out, (size_t)len, key, &st, &loc) != len)
		abort();
}

static void as_response(const uint8_t *p, size_t n)
{
	tb_http_span_t loc;
	int status = 0, rc = tb_ws_response_check(p, n, KEY, &status, &loc);

	if (rc > 0 && ((size_t)rc > n || status != 101))
		abort();
	if (rc == TB_EDENIED && (status == 101 || (loc.len && (status < 300 || status > 399))))
		abort();
	inside(&loc, p, n);
}

/* Parts separated by NUL: host, path, query, user agent, extra fields. */
static void as_parts(const uint8_t *p, size_t n, tb_http_request_t *r)
{
	char *s = malloc(n + 1), *part[5] = {NULL}, out[2048];
	tb_ws_request_t req;
	tb_http_span_t k;
	size_t np = 0;
	int len;

	if (!s)
		return;
	memcpy(s, p, n);
	s[n] = '\0';
	for (char *c = s; np < 5; c += strlen(c) + 1) {
		part[np++] = c;
		if (c + strlen(c) >= s + n)
			break;
	}
	req = (tb_ws_request_t){part[0], part[1], part[2], part[3], part[4]};
	len = tb_ws_request_build(out, sizeof(out), &req, KEY);
	if (len > 0 && (size_t)len < TB_HTTP_HEAD_MAX && (!req.headers || !*req.headers)) {
		if (tb_http_request_parse((const uint8_t *)out, (size_t)len, r) != len ||
		    tb_ws_upgrade_check(r, &k) != 0 || k.len != TB_WS_KEY_LEN || memcmp(k.p, KEY, k.len) != 0)
			abort();
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tb_http_request_t *r = malloc(sizeof(*r));
	char acc[TB_WS_ACCEPT_LEN + 1];
	uint8_t *copy = malloc(size ? size : 1);

	if (!r || !copy) {
		free(r);
		free(copy);
		return 0;
	}
	/* An exact-size heap copy, so ASan sees any read past the end. */
	memcpy(copy, data, size);
	as_request(copy, size, r);
	as_response(copy, size);
	as_parts(copy, size, r);
	if (tb_ws_accept_key((const char *)copy, TB_MIN(size, (size_t)64), acc) != 0 || strlen(acc) != 28)
		abort();
	free(copy);
	free(r);
	return 0;
}
#endif
