/* fuzz_socks5.c: every SOCKS5 parser on the same input, and round trips.
 *
 * Build (codec only, no gateway symbols needed):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -DTB_FUZZ_CODEC_ONLY -D_GNU_SOURCE \
 *     -Iinclude -Ibuild/include tests/fuzz/fuzz_socks5.c src/socks5.c src/addr.c src/base.c
 * The first byte picks where the input starts, so one corpus drives all
 * parsers; each parser also sees the whole input. */
#include <stdlib.h>
#include <string.h>

#include "tb/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, size_t n)
{
	/* A parser never claims more than it was given. */
	if (rc > 0 && (size_t)rc > n)
		abort();
}

/* A parsed target must encode back and parse to the same thing. */
static void round_trip(const tb_target_t *t)
{
	uint8_t out[TB_SOCKS5_UDP_HDR_MAX];
	tb_target_t back;
	uint8_t frag;
	int n = tb_socks5_udp_build(out, sizeof(out), t);

	if (n < 0)
		abort();
	if (tb_socks5_udp_parse(out, (size_t)n, &frag, &back) != n || frag != 0)
		abort();
	if (back.port != t->port || back.is_ip != t->is_ip)
		abort();
	/* An IP literal sent as a name may be spelled differently. */
	if (t->is_ip ? memcmp(back.addr.ip, t->addr.ip, 16) != 0 || back.addr.family != t->addr.family :
		       strcmp(back.host, t->host) != 0)
		abort();
}

static void run(const uint8_t *p, size_t n)
{
	tb_socks5_userpass_t up;
	tb_socks5_request_t req;
	const uint8_t *m;
	tb_target_t t;
	size_t nm;
	uint8_t b, rep;
	int rc;

	rc = tb_socks5_greeting_parse(p, n, &m, &nm);
	check(rc, n);
	if (rc > 0)
		tb_socks5_method_select(m, nm, n & 1);
	check(tb_socks5_userpass_parse(p, n, &up), n);
	rc = tb_socks5_request_parse(p, n, &req);
	check(rc, n);
	if (rc > 0)
		round_trip(&req.dst);
	rc = tb_socks5_udp_parse(p, n, &b, &t);
	check(rc, n);
	if (rc > 0)
		round_trip(&t);
	check(tb_socks5_client_method_parse(p, n, &b), n);
	check(tb_socks5_client_userpass_reply_parse(p, n, &b), n);
	check(tb_socks5_client_reply_parse(p, n, &rep, &t), n);
	tb_socks5_err_from_rep(n ? p[0] : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size == 0)
		return 0;
	/* An exact-size heap copy, so ASan sees any read past the end. */
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	run(copy, size);
	run(copy + 1, size - 1);
	free(copy);
	return 0;
}
