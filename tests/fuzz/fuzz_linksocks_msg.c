/* fuzz_linksocks_msg.c: the LinkSocks decoder, with encode/decode round
 * trips, and every text parser of linksocks_msg.c on the same input.
 *
 * Build by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibuild/include -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_linksocks_msg.c src/linksocks_msg.c src/base.c src/addr.c src/buf.c \
 *     src/log.c port/posix/sys.c -lz -lmbedcrypto
 * Invariants (abort on violation): decode returns only its documented
 * codes; a decoded message of types 01..0A encodes, and decodes back to the
 * same fields; a built query parses back to what was put in; a built Log
 * JSON parses back; an IP prints to text that parses to the same address;
 * inflating never passes its cap. */
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

static bool str_eq(tb_ls_str_t a, tb_ls_str_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool hp_eq(const tb_ls_hostport_t *a, const tb_ls_hostport_t *b)
{
	return str_eq(a->host, b->host) && a->port == b->port;
}

static bool data_eq(const tb_ls_msg_t *a, const tb_ls_msg_t *b)
{
	if (a->data.proto != b->data.proto || memcmp(a->data.channel, b->data.channel, 16) ||
	    a->data.compression != b->data.compression || a->data.len != b->data.len)
		return false;
	if (a->data.len && memcmp(a->data.payload, b->data.payload, a->data.len))
		return false;
	return hp_eq(&a->data.addr, &b->data.addr) && hp_eq(&a->data.target, &b->data.target);
}

/* Fields equal after a round trip (strings from the wire are <= 255 bytes,
 * so the encoder's cap never changes them). */
static bool msg_eq(const tb_ls_msg_t *a, const tb_ls_msg_t *b)
{
	if (a->type != b->type || b->version != TB_LS_VERSION)
		return false;
	switch (a->type) {
	case TB_LS_AUTH:
		return str_eq(a->auth.token, b->auth.token) && a->auth.reverse == b->auth.reverse &&
		       !memcmp(a->auth.instance, b->auth.instance, 16);
	case TB_LS_AUTH_RESPONSE:
		return a->auth_resp.success == b->auth_resp.success &&
		       str_eq(a->auth_resp.error, b->auth_resp.error);
	case TB_LS_CONNECT:
		return a->connect.proto == b->connect.proto &&
		       !memcmp(a->connect.channel, b->connect.channel, 16) &&
		       str_eq(a->connect.addr, b->connect.addr) && a->connect.port == b->connect.port;
	case TB_LS_DATA:
		return data_eq(a, b);
	case TB_LS_CONNECT_RESPONSE:
		return a->connect_resp.success == b->connect_resp.success &&
		       !memcmp(a->connect_resp.channel, b->connect_resp.channel, 16) &&
		       str_eq(a->connect_resp.error, b->connect_resp.error);
	case TB_LS_DISCONNECT:
		return !memcmp(a->disconnect.channel, b->disconnect.channel, 16) &&
		       str_eq(a->disconnect.error, b->disconnect.error);
	case TB_LS_CONNECTOR:
		return !memcmp(a->connector.request, b->connector.request, 16) &&
		       str_eq(a->connector.token, b->connector.token) && a->connector.op == b->connector.op;
	case TB_LS_CONNECTOR_RESPONSE:
		return !memcmp(a->connector_resp.request, b->connector_resp.request, 16) &&
		       a->connector_resp.success == b->connector_resp.success &&
		       str_eq(a->connector_resp.token, b->connector_resp.token) &&
		       str_eq(a->connector_resp.error, b->connector_resp.error);
	default:
		return str_eq(a->log.json, b->log.json);
	}
}

static int discard(void *ctx, const uint8_t *p, size_t n)
{
	size_t *total = ctx;

	*total += n;
	return 0;
}

static void inflate_checked(const uint8_t *p, size_t n)
{
	static tb_ls_inflater_t *z;
	size_t total = 0;
	int rc;

	if (!ENABLE_ZLIB)
		return;
	if (!z)
		z = tb_ls_inflater_new(1 << 20);
	CHECK(z);
	rc = tb_ls_inflate(z, p, n, discard, &total);
	CHECK(rc == 0 || rc == TB_EPROTO || rc == TB_ERANGE);
	CHECK(total <= (1u << 20) + 1);
}

static void round_trip(const tb_ls_msg_t *m)
{
	size_t need = tb_ls_msg_size(m);
	uint8_t *out;
	tb_ls_msg_t back;

	CHECK(need >= 3);
	out = malloc(need);
	CHECK(out);
	CHECK(tb_ls_msg_encode(m, out, need) == (int)need);
	CHECK(tb_ls_msg_encode(m, out, need - 1) == TB_ERANGE);
	CHECK(tb_ls_msg_decode(out, need, &back) == 0);
	CHECK(msg_eq(m, &back));
	free(out);
}

/* Wire text to a target and back: a domain as given, an IP as an IP. */
static void target_trip(tb_ls_str_t host, uint16_t port)
{
	char text[TB_HOST_MAX + 1];
	tb_target_t t, back;
	size_t n;

	if (tb_ls_target_parse(&t, host, port))
		return;
	n = tb_ls_target_text(&t, text, sizeof(text));
	CHECK(n > 0);
	CHECK(tb_ls_target_parse(&back, (tb_ls_str_t){text, n}, port) == 0);
	CHECK(back.is_ip == t.is_ip);
	if (!t.is_ip)
		CHECK(n == host.len && !memcmp(text, host.p, n));
}

static void run_msg(const uint8_t *p, size_t n)
{
	tb_ls_msg_t m;
	int rc = tb_ls_msg_decode(p, n, &m);

	CHECK(rc == 0 || rc == TB_EPROTO || rc == TB_ERANGE || rc == TB_ENOTSUP);
	if (rc == TB_ENOTSUP)
		CHECK(n >= 2 && (p[1] == 0 || p[1] > TB_LS_PARTNERS));
	if (rc)
		return;
	round_trip(&m);
	if (m.type == TB_LS_CONNECT && m.connect.proto == TB_LS_PROTO_TCP)
		target_trip(m.connect.addr, m.connect.port);
	if (m.type == TB_LS_DATA && m.data.proto == TB_LS_PROTO_UDP)
		target_trip(m.data.target.host, m.data.target.port);
	if (m.type == TB_LS_DATA && m.data.compression == TB_LS_COMP_GZIP)
		inflate_checked(m.data.payload, m.data.len);
}

static void run_query(const char *q, size_t n, bool reverse)
{
	static const uint8_t inst[16] = {1, 2, 3};
	char out[4096], hash[TB_LS_TOKEN_HEX_LEN + 1];
	tb_ls_url_auth_t a;
	int rc = tb_ls_url_query_parse(q, n, &a);

	CHECK(rc == 0 || rc == TB_EPROTO || rc == TB_EDENIED);
	CHECK(rc == 0 || a.has_token);
	CHECK(a.reverse >= -1 && a.reverse <= 1);
	if (!ENABLE_MBEDTLS || n > 1024)
		return;
	/* Whatever the URL carried, the server reads our token and role. */
	rc = tb_ls_url_query_build(out, sizeof(out), q, n, "tok", 3, reverse, inst);
	if (rc == TB_ERANGE)
		return;
	CHECK(rc > 0 && (size_t)rc == strlen(out));
	CHECK(tb_ls_url_query_parse(out, (size_t)rc, &a) == 0);
	CHECK(tb_ls_token_hash("tok", 3, hash) == 0);
	CHECK(a.has_token && !strcmp(a.token_hex, hash) && a.reverse == reverse);
}

static void run_json(const char *s, size_t n)
{
	char json[8192], level[16], msg[4096];
	long count;
	bool ascii = true;
	size_t i;
	int len;

	tb_ls_log_parse(s, n, level, sizeof(level), msg, sizeof(msg));
	tb_ls_partners_parse(s, n, &count);
	if (n > 1000)
		return;
	/* Anything we build parses back; printable ASCII comes back as is. */
	len = tb_ls_log_json(json, sizeof(json), "info", s, n);
	CHECK(len > 0);
	CHECK(tb_ls_log_parse(json, (size_t)len, level, sizeof(level), msg, sizeof(msg)) == 0);
	CHECK(!strcmp(level, "info"));
	for (i = 0; i < n; i++)
		ascii = ascii && s[i] > 0 && s[i] < 0x7f;
	if (ascii)
		CHECK(strlen(msg) == n && !memcmp(msg, s, n));
}

/* An address prints to text that parses back to the same address. */
static void run_ip(const uint8_t *p, size_t n)
{
	char text[TB_LS_IP_STRLEN];
	tb_addr_t a = {0}, back;
	uint8_t id[16];
	char u[TB_LS_UUID_STRLEN];

	if (n < 16)
		return;
	a.family = p[0] & 1 ? TB_AF_INET : TB_AF_INET6;
	memcpy(a.ip, p, a.family == TB_AF_INET ? 4 : 16);
	CHECK(tb_ls_ip_text(&a, text, sizeof(text)) > 0);
	CHECK(tb_addr_parse_ip(text, &back) == 0);
	if (back.family == a.family)
		CHECK(!memcmp(back.ip, a.ip, a.family == TB_AF_INET ? 4 : 16));
	else /* a mapped IPv6 printed dotted */
		CHECK(back.family == TB_AF_INET && !memcmp(back.ip, a.ip + 12, 4));
	tb_ls_uuid_format(p, u);
	CHECK(tb_ls_uuid_parse(u, strlen(u), id) == 0 && !memcmp(id, p, 16));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run_msg(data, size);
	run_query((const char *)data, size, size & 1);
	run_json((const char *)data, size);
	run_ip(data, size);
	if (size && data[0] == 0x1f)
		inflate_checked(data, size);
	return 0;
}
