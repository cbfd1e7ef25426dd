/* test_linksocks_msg.c: the LinkSocks codec and helpers against the vectors
 * captured from the reference (tests/vectors/linksocks/, one JSON file per
 * message family) and exact
 * bytes built from spec/linksocks.md. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/linksocks_msg.h"
#include "tb/log.h"

#if ENABLE_MBEDTLS
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#endif

/* ---- a tiny JSON reader: just enough for the vector files ---- */

typedef struct jv {
	char kind; /* 's' string, 'n' number, 'b' bool, 'z' null, 'o' object, 'a' array */
	char *str;
	double num;
	bool b;
	size_t n;
	char **keys;
	struct jv **items;
} jv_t;

static const char *jr_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

static void jr_utf8(char **o, unsigned cp)
{
	if (cp < 0x80) {
		*(*o)++ = (char)cp;
	} else if (cp < 0x800) {
		*(*o)++ = (char)(0xc0 | cp >> 6);
		*(*o)++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*(*o)++ = (char)(0xe0 | cp >> 12);
		*(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*(*o)++ = (char)(0x80 | (cp & 0x3f));
	}
}

static char *jr_string(const char **pp)
{
	const char *p = *pp + 1;
	char *out = malloc(strlen(p) + 1), *o = out;

	assert_non_null(out);
	while (*p != '"') {
		assert_true(*p != '\0');
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u': {
			unsigned cp;

			assert_int_equal(sscanf(p + 1, "%4x", &cp), 1);
			jr_utf8(&o, cp);
			p += 4;
			break;
		}
		default:
			*o++ = *p;
		}
		p++;
	}
	*o = '\0';
	*pp = p + 1;
	return out;
}

static jv_t *jr_value(const char **pp);

static void jr_push(jv_t *v, char *key, jv_t *item)
{
	v->keys = realloc(v->keys, (v->n + 1) * sizeof(*v->keys));
	v->items = realloc(v->items, (v->n + 1) * sizeof(*v->items));
	assert_non_null(v->keys);
	assert_non_null(v->items);
	v->keys[v->n] = key;
	v->items[v->n++] = item;
}

static void jr_container(const char **pp, jv_t *v)
{
	char close = v->kind == 'o' ? '}' : ']';
	const char *p = jr_ws(*pp + 1);

	while (*p != close) {
		char *key = NULL;

		if (v->kind == 'o') {
			key = jr_string(&p);
			p = jr_ws(p);
			assert_int_equal(*p, ':');
			p++;
		}
		jr_push(v, key, jr_value(&p));
		p = jr_ws(p);
		if (*p == ',')
			p = jr_ws(p + 1);
	}
	*pp = p + 1;
}

static jv_t *jr_value(const char **pp)
{
	jv_t *v = calloc(1, sizeof(*v));
	const char *p = jr_ws(*pp);
	char *end;

	assert_non_null(v);
	if (*p == '"') {
		v->kind = 's';
		v->str = jr_string(&p);
	} else if (*p == '{' || *p == '[') {
		v->kind = *p == '{' ? 'o' : 'a';
		jr_container(&p, v);
	} else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
		v->kind = 'b';
		v->b = *p == 't';
		p += v->b ? 4 : 5;
	} else if (!strncmp(p, "null", 4)) {
		v->kind = 'z';
		p += 4;
	} else {
		v->kind = 'n';
		v->num = strtod(p, &end);
		assert_true(end > p);
		p = end;
	}
	*pp = p;
	return v;
}

static void jv_free(jv_t *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++) {
		free(v->keys[i]);
		jv_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->str);
	free(v);
}

static jv_t *jv_get(const jv_t *v, const char *key)
{
	size_t i;

	for (i = 0; v && v->kind == 'o' && i < v->n; i++)
		if (!strcmp(v->keys[i], key))
			return v->items[i];
	return NULL;
}

static const char *jv_str(const jv_t *v, const char *key)
{
	jv_t *s = jv_get(v, key);

	return s && s->kind == 's' ? s->str : NULL;
}

static jv_t *load_vectors(const char *name)
{
	char path[512], *text;
	const char *p;
	FILE *f;
	long len;
	jv_t *v;

	snprintf(path, sizeof(path), "%s/linksocks/%s.json", TB_VECTORS, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	text[len] = '\0';
	p = text;
	v = jr_value(&p);
	free(text);
	assert_int_equal(v->kind, 'a');
	return v;
}

/* ---- helpers ---- */

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = strlen(h) / 2, i;
	unsigned b;

	assert_true(n <= cap);
	for (i = 0; i < n; i++) {
		assert_int_equal(sscanf(h + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
	return n;
}

static uint8_t *vec_bytes(const jv_t *v, size_t *n)
{
	const char *h = jv_str(v, "hex");
	uint8_t *b;

	assert_non_null(h);
	b = malloc(strlen(h) / 2 + 1);
	assert_non_null(b);
	*n = unhex(h, b, strlen(h) / 2 + 1);
	assert_int_equal((double)*n, jv_get(v, "length")->num);
	return b;
}

static void assert_str(tb_ls_str_t s, const char *want)
{
	if (!want) {
		assert_int_equal(s.len, 0);
		return;
	}
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

static void assert_uuid(const uint8_t *id, const char *want)
{
	char text[TB_LS_UUID_STRLEN];

	tb_ls_uuid_format(id, text);
	assert_string_equal(text, want);
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65])
{
#if ENABLE_MBEDTLS
	uint8_t d[32];
	size_t i;

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	assert_int_equal(mbedtls_sha256(p, n, d, 0), 0);
#else
	assert_int_equal(mbedtls_sha256_ret(p, n, d, 0), 0);
#endif
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
#else
	out[0] = '\0';
#endif
}

/* A sink that collects inflated output. */
struct collect {
	uint8_t *p;
	size_t len, cap;
	unsigned calls;
};

static int collect_sink(void *ctx, const uint8_t *p, size_t n)
{
	struct collect *c = ctx;

	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2;
		c->p = realloc(c->p, c->cap);
		assert_non_null(c->p);
	}
	memcpy(c->p + c->len, p, n);
	c->len += n;
	c->calls++;
	return 0;
}

/* ---- vectors: decode, check every field, encode back ---- */

static const char *proto_name(uint8_t p)
{
	return p == TB_LS_PROTO_TCP ? "tcp" : p == TB_LS_PROTO_UDP ? "udp" : "?";
}

static void check_payload(const tb_ls_msg_t *m, const jv_t *d)
{
	const char *hex = jv_str(d, "payload_hex"), *sum = jv_str(d, "payload_sha256");
	jv_t *inflated = jv_get(d, "inflated_len"), *plen = jv_get(d, "payload_len");
	struct collect c = {NULL, 0, 0, 0};
	const uint8_t *p = m->data.payload;
	size_t n = m->data.len;
	char got[65];

	assert_int_equal((double)m->data.len, jv_get(d, "data_len")->num);
	assert_int_equal((double)m->data.compression, jv_get(d, "compression")->num);
	if (m->data.compression == TB_LS_COMP_GZIP) {
		tb_ls_inflater_t *z = tb_ls_inflater_new(0);

		if (!ENABLE_ZLIB)
			return;
		assert_non_null(z);
		assert_int_equal(tb_ls_inflate(z, m->data.payload, m->data.len, collect_sink, &c), 0);
		tb_ls_inflater_free(z);
		assert_int_equal((double)c.len, inflated->num);
		p = c.p;
		n = c.len;
	}
	if (hex) {
		uint8_t want[256];

		assert_int_equal(n, unhex(hex, want, sizeof(want)));
		assert_memory_equal(p, want, n);
	}
	if (plen)
		assert_int_equal((double)n, plen->num);
	if (sum && ENABLE_MBEDTLS) {
		sha256_hex(p, n, got);
		assert_string_equal(got, sum);
	}
	free(c.p);
}

static void check_hostport(tb_ls_hostport_t hp, const jv_t *d, const char *akey, const char *pkey)
{
	if (!jv_get(d, akey))
		return;
	assert_str(hp.host, jv_str(d, akey));
	assert_int_equal((double)hp.port, jv_get(d, pkey)->num);
}

static void check_json(const tb_ls_msg_t *m, const jv_t *d)
{
	const jv_t *j = jv_get(d, "json");
	char level[16], msg[128];
	long count = -1;

	assert_int_equal((double)m->log.json.len, jv_get(d, "json_len")->num);
	if (m->type == TB_LS_PARTNERS) {
		assert_int_equal(tb_ls_partners_parse(m->partners.json.p, m->partners.json.len, &count), 0);
		assert_int_equal((double)count, jv_get(j, "count")->num);
		return;
	}
	assert_int_equal(
		tb_ls_log_parse(m->log.json.p, m->log.json.len, level, sizeof(level), msg, sizeof(msg)), 0);
	assert_string_equal(level, jv_str(j, "level"));
	assert_string_equal(msg, jv_str(j, "msg"));
}

static bool jv_true(const jv_t *d, const char *key)
{
	jv_t *b = jv_get(d, key);

	assert_non_null(b);
	return b->b;
}

/* Field by field against "decoded"; every key present is checked. */
static void check_fields(const tb_ls_msg_t *m, const jv_t *d)
{
	const char *s;

	assert_string_equal(tb_ls_type_name(m->type), jv_str(d, "type"));
	switch (m->type) {
	case TB_LS_AUTH:
		assert_str(m->auth.token, jv_str(d, "token"));
		assert_int_equal(m->auth.reverse, jv_true(d, "reverse"));
		assert_uuid(m->auth.instance, jv_str(d, "instance"));
		break;
	case TB_LS_AUTH_RESPONSE:
		assert_int_equal(m->auth_resp.success, jv_true(d, "success"));
		assert_str(m->auth_resp.error, jv_str(d, "error"));
		break;
	case TB_LS_CONNECT:
		assert_string_equal(proto_name(m->connect.proto), jv_str(d, "proto"));
		assert_uuid(m->connect.channel, jv_str(d, "channel_id"));
		if ((s = jv_str(d, "addr"))) {
			assert_str(m->connect.addr, s);
			assert_int_equal((double)m->connect.port, jv_get(d, "port")->num);
		}
		break;
	case TB_LS_DATA:
		assert_string_equal(proto_name(m->data.proto), jv_str(d, "proto"));
		assert_uuid(m->data.channel, jv_str(d, "channel_id"));
		check_payload(m, d);
		check_hostport(m->data.addr, d, "addr", "port");
		check_hostport(m->data.target, d, "target_addr", "target_port");
		break;
	case TB_LS_CONNECT_RESPONSE:
		assert_int_equal(m->connect_resp.success, jv_true(d, "success"));
		assert_uuid(m->connect_resp.channel, jv_str(d, "channel_id"));
		assert_str(m->connect_resp.error, jv_str(d, "error"));
		break;
	case TB_LS_DISCONNECT:
		assert_uuid(m->disconnect.channel, jv_str(d, "channel_id"));
		assert_str(m->disconnect.error, jv_str(d, "error"));
		break;
	case TB_LS_CONNECTOR:
		assert_uuid(m->connector.request, jv_str(d, "request_id"));
		assert_str(m->connector.token, jv_str(d, "connector_token"));
		assert_string_equal(m->connector.op == TB_LS_OP_ADD ? "add" : "remove", jv_str(d, "op"));
		break;
	case TB_LS_CONNECTOR_RESPONSE:
		assert_uuid(m->connector_resp.request, jv_str(d, "request_id"));
		assert_int_equal(m->connector_resp.success, jv_true(d, "success"));
		assert_str(m->connector_resp.token, jv_str(d, "connector_token"));
		assert_str(m->connector_resp.error, jv_str(d, "error"));
		break;
	default:
		check_json(m, d);
	}
}

/* Vectors the reference tolerates but we encode differently, and how. */
static const struct {
	const char *name, *hex;
} reencoded[] = {
	/* §3.3: a failure always carries E, even 0. */
	{"auth_response_fail_no_error_text", "01020000"},
	/* §3.3: an empty error is the bare 18-byte form. */
	{"disconnect_zero_length_error", "01060b0107d350a7478ba1a0a63513ca7b9f"},
};

static void check_reencode(const char *name, const tb_ls_msg_t *m, const uint8_t *bytes, size_t n)
{
	uint8_t out[8192], want[64];
	size_t i, wn = n;
	const uint8_t *w = bytes;
	int len;

	for (i = 0; i < TB_ARRAY_SIZE(reencoded); i++) {
		if (!strcmp(name, reencoded[i].name)) {
			wn = unhex(reencoded[i].hex, want, sizeof(want));
			w = want;
		}
	}
	assert_int_equal(tb_ls_msg_size(m), wn);
	len = tb_ls_msg_encode(m, out, sizeof(out));
	assert_int_equal(len, (int)wn);
	assert_memory_equal(out, w, wn);
	assert_int_equal(tb_ls_msg_encode(m, out, wn - 1), TB_ERANGE);
}

/* The byte where an optional trailing string starts (§3.3), 0 for none:
 * a prefix ending exactly there is itself a complete message. */
static size_t optional_tail(uint8_t type)
{
	switch (type) {
	case TB_LS_AUTH_RESPONSE:
		return 3;
	case TB_LS_DISCONNECT:
		return 18;
	case TB_LS_CONNECT_RESPONSE:
	case TB_LS_CONNECTOR_RESPONSE:
		return 19;
	default:
		return 0;
	}
}

static void check_truncations(const uint8_t *bytes, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		uint8_t *copy = malloc(k + 1); /* exact size: ASan sees overreads */
		tb_ls_msg_t m;
		int rc;

		assert_non_null(copy);
		memcpy(copy, bytes, k);
		rc = tb_ls_msg_decode(copy, k, &m);
		free(copy);
		if (rc == 0 && k == optional_tail(bytes[1]))
			continue;
		if (rc != TB_EPROTO && rc != TB_ERANGE)
			fail_msg("prefix %zu of %zu (type %02x): rc %d", k, n, bytes[1], rc);
	}
}

static unsigned run_vector_file(const char *file)
{
	jv_t *all = load_vectors(file);
	unsigned count = 0;
	size_t i, n;

	for (i = 0; i < all->n; i++) {
		const jv_t *v = all->items[i], *d = jv_get(v, "decoded");
		const char *name = jv_str(v, "name");
		uint8_t *bytes = vec_bytes(v, &n);
		tb_ls_msg_t m;

		print_message("  %s\n", name);
		assert_int_equal(tb_ls_msg_decode(bytes, n, &m), 0);
		assert_int_equal(m.version, TB_LS_VERSION);
		check_fields(&m, d);
		check_reencode(name, &m, bytes, n);
		check_truncations(bytes, n);
		free(bytes);
		count++;
	}
	jv_free(all);
	return count;
}

static void test_vectors_auth(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file("auth"), 9);
}

static void test_vectors_connect(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file("connect"), 9);
}

static void test_vectors_connector(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file("connector"), 9);
}

static void test_vectors_data(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file("data"), 10);
}

static void test_vectors_disconnect(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file("disconnect"), 5);
}

static void test_vectors_log_partners(void **state)
{
	(void)state;
	assert_int_equal(run_vector_file("log_partners"), 6);
}

/* ---- decoder tolerance (§3.1, §3.3, §3.4, §10) ---- */

/* The message points into a static buffer, valid until the next call. */
static int decode_hex(const char *hex, tb_ls_msg_t *m)
{
	static uint8_t b[128];
	size_t n = unhex(hex, b, sizeof(b));

	return tb_ls_msg_decode(b, n, m);
}

static void test_version_and_type(void **state)
{
	tb_ls_msg_t m;

	(void)state;
	/* §3.1: 00..0F accepted, high nibble refused. */
	assert_int_equal(decode_hex("050201", &m), 0);
	assert_int_equal(m.version, 5);
	assert_true(m.auth_resp.success);
	assert_int_equal(decode_hex("000201", &m), 0);
	assert_int_equal(decode_hex("0f0201", &m), 0);
	assert_int_equal(decode_hex("100201", &m), TB_EPROTO);
	assert_int_equal(decode_hex("ff0201", &m), TB_EPROTO);
	/* Unknown types are ignored by the caller, with the type known. */
	assert_int_equal(decode_hex("010b00000002"
				    "7b7d",
				    &m),
			 TB_ENOTSUP);
	assert_int_equal(m.type, TB_LS_DIRECT_CAPABILITIES);
	assert_int_equal(decode_hex("010d", &m), TB_ENOTSUP);
	assert_int_equal(m.type, 0x0d);
	assert_int_equal(decode_hex("01ff", &m), TB_ENOTSUP);
	assert_int_equal(decode_hex("0100", &m), TB_ENOTSUP);
	assert_int_equal(decode_hex("01", &m), TB_EPROTO);
	assert_int_equal(tb_ls_msg_decode(NULL, 0, &m), TB_EPROTO);
	assert_string_equal(tb_ls_type_name(0x0c), "direct_rendezvous");
	assert_string_equal(tb_ls_type_name(0x42), "unknown");
}

static void test_trailing_and_optional(void **state)
{
	tb_ls_msg_t m;

	(void)state;
	/* §3.3: a Cloudflare-Worker relay appends TokLen Token after Success=01. */
	assert_int_equal(decode_hex("01020106746f6b313233", &m), 0);
	assert_true(m.auth_resp.success);
	assert_int_equal(m.auth_resp.error.len, 0);
	/* §3.1: trailing bytes after a complete message are ignored. */
	assert_int_equal(decode_hex("010659651afe956e4889b8e8c98e88943f7c03454f46ffff", &m), 0);
	assert_str(m.disconnect.error, "EOF");
	assert_int_equal(decode_hex("0103026aeec36897254bb8b5302e838d56232b0011", &m), 0);
	assert_int_equal(m.connect.proto, TB_LS_PROTO_UDP);
	assert_int_equal(m.connect.addr.len, 0);
	/* Failures without their error text (only AuthResponse is required). */
	assert_int_equal(decode_hex("0105008ad287132ce84dceb06755362d519018", &m), 0);
	assert_false(m.connect_resp.success);
	assert_int_equal(decode_hex("01083333333344444555866677777777777700", &m), 0);
	assert_false(m.connector_resp.success);
	/* §10.14: a length past the end drops the message. */
	assert_int_equal(decode_hex("0102000e696e76616c696420746f6b656e", &m), TB_ERANGE);
	assert_int_equal(decode_hex("0106335b2f6612db42af88417a335887656104454f46", &m), TB_ERANGE);
	assert_int_equal(decode_hex("01090000002e7b7d", &m), TB_ERANGE);
	assert_int_equal(decode_hex("010401"
				    "59651afe956e4889b8e8c98e88943f7c"
				    "00ffffffff68",
				    &m),
			 TB_ERANGE);
}

static void test_data_udp_pairs(void **state)
{
	tb_ls_msg_t m;

	(void)state;
	/* §3.4: the second pair is required; one pair is a parse error. */
	assert_int_equal(decode_hex("0104026aeec36897254bb8b5302e838d56232b000000000568656c6c6f000000", &m),
			 TB_EPROTO);
	assert_int_equal(
		decode_hex("0104026aeec36897254bb8b5302e838d56232b000000000568656c6c6f000000000000", &m), 0);
	assert_int_equal(m.data.addr.host.len, 0);
	assert_int_equal(m.data.target.port, 0);
	/* A TCP Data needs no pair. */
	assert_int_equal(decode_hex("01040159651afe956e4889b8e8c98e88943f7c0000000000", &m), 0);
	assert_int_equal(m.data.len, 0);
	/* §3.2: compression other than 01 is none; protocol must be 1 or 2. */
	assert_int_equal(decode_hex("01040159651afe956e4889b8e8c98e88943f7c070000000141", &m), 0);
	assert_int_equal(m.data.compression, TB_LS_COMP_NONE);
	assert_int_equal(decode_hex("01040359651afe956e4889b8e8c98e88943f7c000000000141", &m), TB_EPROTO);
	assert_int_equal(decode_hex("01030359651afe956e4889b8e8c98e88943f7c", &m), TB_EPROTO);
}

static void test_connector_op(void **state)
{
	tb_ls_msg_t m;

	(void)state;
	assert_int_equal(decode_hex("010759429bde28b24a459dd0ec87e79e1b73066d79636f6e6e02", &m), 0);
	assert_int_equal(m.connector.op, TB_LS_OP_REMOVE);
	/* §3.2: any other op is a parse error. */
	assert_int_equal(decode_hex("010759429bde28b24a459dd0ec87e79e1b73066d79636f6e6e03", &m), TB_EPROTO);
	assert_int_equal(decode_hex("010759429bde28b24a459dd0ec87e79e1b73066d79636f6e6e00", &m), TB_EPROTO);
}

/* ---- encoder ---- */

static const uint8_t chan[16] = {0x59, 0x65, 0x1a, 0xfe, 0x95, 0x6e, 0x48, 0x89,
				 0xb8, 0xe8, 0xc9, 0x8e, 0x88, 0x94, 0x3f, 0x7c};

static void test_encode_refuses(void **state)
{
	tb_ls_msg_t m = {.type = TB_LS_DIRECT_CAPABILITIES};
	uint8_t out[64];

	(void)state;
	/* §3.1: never send types above 0x0A, nor bad protocol or op bytes. */
	assert_int_equal(tb_ls_msg_size(&m), 0);
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), TB_EINVAL);
	m.type = 0;
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), TB_EINVAL);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECT, .connect.proto = 3};
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), TB_EINVAL);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECTOR, .connector.op = 0};
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), TB_EINVAL);
	m = (tb_ls_msg_t){.type = TB_LS_DATA, .data.proto = TB_LS_PROTO_TCP, .data.compression = 2};
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), TB_EINVAL);
	/* Whatever version a struct carries, 01 goes out. */
	m = (tb_ls_msg_t){.version = 7, .type = TB_LS_AUTH_RESPONSE, .auth_resp.success = true};
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), 3);
	assert_memory_equal(out, "\x01\x02\x01", 3);
}

/* Every short string is capped at 255 bytes on send (§3.1), on a UTF-8
 * boundary (§11); a decoder reads back exactly the capped text. */
static void check_cap(tb_ls_msg_t *m, size_t want, const char *text)
{
	static uint8_t out[4096];
	tb_ls_msg_t back;
	int n = tb_ls_msg_encode(m, out, sizeof(out));

	assert_true(n > 0);
	assert_int_equal(tb_ls_msg_size(m), (size_t)n);
	assert_int_equal(tb_ls_msg_decode(out, (size_t)n, &back), 0);
	switch (m->type) {
	case TB_LS_AUTH:
		assert_int_equal(back.auth.token.len, want);
		assert_memory_equal(back.auth.token.p, text, want);
		break;
	case TB_LS_AUTH_RESPONSE:
		assert_int_equal(back.auth_resp.error.len, want);
		break;
	case TB_LS_CONNECT:
		assert_int_equal(back.connect.addr.len, want);
		assert_int_equal(back.connect.port, 443);
		break;
	case TB_LS_CONNECT_RESPONSE:
		assert_int_equal(back.connect_resp.error.len, want);
		break;
	case TB_LS_DISCONNECT:
		assert_int_equal(back.disconnect.error.len, want);
		break;
	case TB_LS_CONNECTOR:
		assert_int_equal(back.connector.token.len, want);
		assert_int_equal(back.connector.op, TB_LS_OP_ADD);
		break;
	case TB_LS_CONNECTOR_RESPONSE:
		assert_int_equal(back.connector_resp.success ? back.connector_resp.token.len :
							       back.connector_resp.error.len,
				 want);
		break;
	case TB_LS_DATA:
		assert_int_equal(back.data.addr.host.len, want);
		assert_int_equal(back.data.target.host.len, want);
		assert_int_equal(back.data.len, 3);
		break;
	}
}

static void cap_all(const char *text, size_t len, size_t want)
{
	tb_ls_str_t s = {text, len};
	tb_ls_msg_t m;

	m = (tb_ls_msg_t){.type = TB_LS_AUTH, .auth.token = s};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_AUTH_RESPONSE, .auth_resp.error = s};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECT, .connect = {TB_LS_PROTO_TCP, {0}, s, 443}};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECT_RESPONSE, .connect_resp.error = s};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_DISCONNECT, .disconnect.error = s};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECTOR, .connector = {{0}, s, TB_LS_OP_ADD}};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECTOR_RESPONSE, .connector_resp = {{0}, true, s, {0}}};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_CONNECTOR_RESPONSE, .connector_resp = {{0}, false, {0}, s}};
	check_cap(&m, want, text);
	m = (tb_ls_msg_t){.type = TB_LS_DATA,
			  .data = {TB_LS_PROTO_UDP, {0}, 0, (const uint8_t *)"abc", 3, {s, 1}, {s, 2}}};
	check_cap(&m, want, text);
}

static void test_string_cap(void **state)
{
	char text[400];

	(void)state;
	memset(text, 'a', sizeof(text));
	cap_all(text, 255, 255);
	cap_all(text, 256, 255);
	cap_all(text, sizeof(text), 255);
	/* "é" (c3 a9) straddling byte 255 is dropped whole. */
	text[254] = (char)0xc3;
	text[255] = (char)0xa9;
	cap_all(text, 300, 254);
	/* A 4-byte sequence at 253..256 too. */
	memcpy(text + 253, "\xf0\x9f\x98\x80", 4);
	cap_all(text, 300, 253);
	/* Bytes that are not UTF-8 are cut at 255, not backed off further. */
	memset(text, 0x80, sizeof(text));
	cap_all(text, 300, 255);
	text[252] = (char)0xf0;
	cap_all(text, 300, 252);
	cap_all(text, 0, 0);
}

static void test_data_header_and_trailer(void **state)
{
	static const uint8_t payload[] = "hello";
	tb_ls_hostport_t target = {{"127.0.0.1", 9}, 18081};
	tb_ls_msg_t m = {.type = TB_LS_DATA,
			 .data = {TB_LS_PROTO_UDP, {0}, TB_LS_COMP_NONE, payload, 5, {{NULL, 0}, 0}, target}};
	uint8_t whole[128], split[128], want[64];
	size_t wn, tn;
	int n;

	(void)state;
	memcpy(m.data.channel, "\x6a\xee\xc3\x68\x97\x25\x4b\xb8\xb5\x30\x2e\x83\x8d\x56\x23\x2b", 16);
	/* data.json data_udp_to_egress_ipv4, built three ways. */
	wn = unhex("0104026aeec36897254bb8b5302e838d56232b000000000568656c6c6f000000093132372e302e302e3146a1",
		   want, sizeof(want));
	n = tb_ls_msg_encode(&m, whole, sizeof(whole));
	assert_int_equal(n, (int)wn);
	assert_memory_equal(whole, want, wn);
	assert_int_equal(tb_ls_data_header(split, TB_LS_PROTO_UDP, m.data.channel, TB_LS_COMP_NONE, 5),
			 TB_LS_DATA_HDR_LEN);
	memcpy(split + TB_LS_DATA_HDR_LEN, payload, 5);
	tn = tb_ls_udp_trailer_size(NULL, &target);
	assert_int_equal(tn, 3 + 12);
	assert_int_equal(tb_ls_udp_trailer(split + 29, tn, NULL, &target), (int)tn);
	assert_int_equal(tb_ls_udp_trailer(split + 29, tn - 1, NULL, &target), TB_ERANGE);
	assert_memory_equal(split, want, wn);
	/* The TCP header alone, gzip flagged. */
	assert_int_equal(tb_ls_data_header(split, TB_LS_PROTO_TCP, chan, TB_LS_COMP_GZIP, 0x47b), 24);
	wn = unhex("0104013d2814653bb44d4c92f129036e161f7901"
		   "0000047b",
		   want, sizeof(want));
	assert_memory_equal(split + 19, want + 19, 5);
	assert_int_equal(tb_ls_data_header(split, 0, chan, 0, 1), TB_EINVAL);
	assert_int_equal(tb_ls_data_header(split, 1, chan, 2, 1), TB_EINVAL);
}

static void test_build_log_partners(void **state)
{
	char json[128];
	uint8_t out[160], want[80];
	tb_ls_msg_t m = {.type = TB_LS_LOG};
	size_t wn;
	int n;

	(void)state;
	/* log_partners.json log_info, built from its text. */
	n = tb_ls_log_json(json, sizeof(json), "info", "hello from tunnelbox", 20);
	assert_int_equal(n, 45);
	m.log.json = (tb_ls_str_t){json, (size_t)n};
	wn = unhex(
		"01090000002d7b226c6576656c223a22696e666f222c226d7367223a2268656c6c6f2066726f6d2074756e6e656c626f"
		"78227d",
		want, sizeof(want));
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), (int)wn);
	assert_memory_equal(out, want, wn);
	/* partners_1 */
	n = tb_ls_partners_json(json, sizeof(json), 1);
	assert_string_equal(json, "{\"count\":1}");
	m = (tb_ls_msg_t){.type = TB_LS_PARTNERS, .partners.json = {json, (size_t)n}};
	wn = unhex("010a0000000b7b22636f756e74223a317d", want, sizeof(want));
	assert_int_equal(tb_ls_msg_encode(&m, out, sizeof(out)), (int)wn);
	assert_memory_equal(out, want, wn);
	assert_int_equal(tb_ls_partners_json(json, 11, 1), TB_ERANGE);
	assert_int_equal(tb_ls_partners_json(json, 12, -3), TB_ERANGE);
	assert_int_equal(tb_ls_partners_json(json, 13, -3), 12);
}

/* ---- UUIDs ---- */

static void test_uuid(void **state)
{
	uint8_t id[16], back[16];
	char text[TB_LS_UUID_STRLEN];
	int i;

	(void)state;
	assert_int_equal(tb_ls_uuid_parse("59651afe-956e-4889-b8e8-c98e88943f7c", 36, id), 0);
	assert_memory_equal(id, chan, 16);
	assert_int_equal(tb_ls_uuid_parse("59651AFE-956E-4889-B8E8-C98E88943F7C", 36, id), 0);
	assert_memory_equal(id, chan, 16);
	tb_ls_uuid_format(chan, text);
	assert_string_equal(text, "59651afe-956e-4889-b8e8-c98e88943f7c");
	assert_int_equal(tb_ls_uuid_parse("59651afe-956e-4889-b8e8-c98e88943f7", 35, id), TB_EINVAL);
	assert_int_equal(tb_ls_uuid_parse("59651afe0956e-4889-b8e8-c98e88943f7c", 36, id), TB_EINVAL);
	assert_int_equal(tb_ls_uuid_parse("59651afe-956e-4889-b8e8-c98e88943f7g", 36, id), TB_EINVAL);
	assert_int_equal(tb_ls_uuid_parse("59651afe956e4889b8e8c98e88943f7c----", 36, id), TB_EINVAL);
	for (i = 0; i < 64; i++) {
		assert_int_equal(tb_ls_uuid_random(id), 0);
		assert_int_equal(id[6] >> 4, 4);
		assert_int_equal(id[8] >> 6, 2);
		tb_ls_uuid_format(id, text);
		assert_int_equal(text[14], '4');
		assert_int_equal(tb_ls_uuid_parse(text, strlen(text), back), 0);
		assert_memory_equal(id, back, 16);
	}
}

/* ---- URL-query auth (§2.3) ---- */

static void test_token_hash(void **state)
{
	char hex[65];

	(void)state;
	if (!ENABLE_MBEDTLS) {
		assert_int_equal(tb_ls_token_hash("tok123", 6, hex), TB_ENOTSUP);
		skip();
	}
	assert_int_equal(tb_ls_token_hash("tok123", 6, hex), 0);
	assert_string_equal(hex, "4f6e1f65055263866dedb3c5fe22defb0cc045648cf0b87afac54cc6420e5647");
	assert_int_equal(tb_ls_token_hash("", 0, hex), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_vectors_url_auth(void **state)
{
	jv_t *all = load_vectors("url_auth");
	unsigned count = 0;
	size_t i;

	(void)state;
	if (!ENABLE_MBEDTLS) {
		jv_free(all);
		skip();
	}
	for (i = 0; i < all->n; i++) {
		const jv_t *v = all->items[i], *d = jv_get(v, "decoded");
		const char *target = jv_str(d, "request_target"), *token = jv_str(d, "token");
		char hex[65], query[256];
		tb_ls_url_auth_t a;
		uint8_t inst[16];
		bool reverse;
		int n;

		if (!target)
			continue;
		reverse = jv_true(d, "reverse");
		assert_int_equal(tb_ls_token_hash(token, strlen(token), hex), 0);
		assert_string_equal(hex, jv_str(d, "token_param"));
		assert_string_equal(hex, jv_str(v, "hex"));
		assert_int_equal(tb_ls_uuid_parse(jv_str(d, "instance"), 36, inst), 0);
		n = tb_ls_url_query_build(query, sizeof(query), "", 0, token, strlen(token), reverse, inst);
		assert_int_equal(n, (int)strlen(target) - 8);
		assert_string_equal(query, target + strlen("/socket?"));
		assert_int_equal(tb_ls_url_query_build(query, (size_t)n, "", 0, token, strlen(token), reverse,
						       inst),
				 TB_ERANGE);
		/* And the server reads it back. */
		assert_int_equal(tb_ls_url_query_parse(target + 8, strlen(target + 8), &a), 0);
		assert_true(a.has_token);
		assert_string_equal(a.token_hex, hex);
		assert_int_equal(a.reverse, reverse);
		count++;
	}
	assert_int_equal(count, 3);
	/* The captured upgrade request carries the first vector's target. */
	assert_non_null(strstr(jv_str(jv_get(all->items[3], "decoded"), "text"),
			       jv_str(jv_get(all->items[0], "decoded"), "request_target")));
	jv_free(all);
}

static void test_query_build_merge(void **state)
{
	static const uint8_t inst[16] = {0, 0, 0, 0, 0, 0, 0x40, 0, 0x80};
	const char *q = "zeta=1&b=x%20y&token=old&a=%2F%26+~&b=2&reverse=1&bad=%zz&semi=a;b&&flag";
	char out[512];

	(void)state;
	if (!ENABLE_MBEDTLS)
		skip();
	/* As Go's u.Query() + q.Set() + q.Encode(): existing pairs re-encoded
	 * and sorted by key (values of one key in order), the three set keys
	 * replaced, pairs with a bad escape or ';' dropped. */
	assert_true(tb_ls_url_query_build(out, sizeof(out), q, strlen(q), "tok123", 6, true, inst) > 0);
	assert_string_equal(
		out, "a=%2F%26+~&b=x+y&b=2&flag=&instance=00000000-0000-4000-8000-000000000000"
		     "&reverse=true&token=4f6e1f65055263866dedb3c5fe22defb0cc045648cf0b87afac54cc6420e5647"
		     "&zeta=1");
	/* Found by the fuzzer: a NUL is escaped like any other byte. */
	assert_int_equal(tb_ls_url_query_build(out, sizeof(out), "a%00=\0", 6, "tok123", 6, false, inst),
			 139);
	assert_string_equal(out, "a%00=%00&instance=00000000-0000-4000-8000-000000000000&reverse=false"
				 "&token=4f6e1f65055263866dedb3c5fe22defb0cc045648cf0b87afac54cc6420e5647");
}

static void test_query_parse(void **state)
{
	const char *h = "4f6e1f65055263866dedb3c5fe22defb0cc045648cf0b87afac54cc6420e5647";
	char q[512];
	tb_ls_url_auth_t a;

	(void)state;
	/* No token: binary Auth follows (§2.3 server choice). */
	assert_int_equal(tb_ls_url_query_parse("", 0, &a), 0);
	assert_false(a.has_token);
	assert_int_equal(a.reverse, -1);
	assert_int_equal(tb_ls_url_query_parse("token=&reverse=true", 19, &a), 0);
	assert_false(a.has_token);
	assert_int_equal(a.reverse, 1);
	/* Length and case (§2.3). */
	assert_int_equal(tb_ls_url_query_parse("token=abc", 9, &a), TB_EPROTO);
	assert_true(a.has_token);
	snprintf(q, sizeof(q), "token=%.63s", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), TB_EPROTO);
	snprintf(q, sizeof(q), "token=%sa", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), TB_EPROTO);
	snprintf(q, sizeof(q), "token=4F6E%s", h + 4);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), TB_EDENIED);
	snprintf(q, sizeof(q), "token=%.63sg", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), TB_EDENIED);
	snprintf(q, sizeof(q), "token=%.63s%%00", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), TB_EDENIED);
	/* Percent-decoding, first value wins, reverse spellings. */
	snprintf(q, sizeof(q), "reverse=1&token=%%34%s&token=zz", h + 1);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), 0);
	assert_string_equal(a.token_hex, h);
	assert_int_equal(a.reverse, 1);
	snprintf(q, sizeof(q), "token=%%zz&token=%s&reverse=yes&reverse=true", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), 0);
	assert_string_equal(a.token_hex, h);
	assert_int_equal(a.reverse, 0);
	snprintf(q, sizeof(q), "token=%s&reverse=TRUE", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), 0);
	assert_int_equal(a.reverse, 0);
	snprintf(q, sizeof(q), "token=%s&reverse=", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), 0);
	assert_int_equal(a.reverse, -1);
	snprintf(q, sizeof(q), "reverse=true;x&token=%s&%%72everse=false", h);
	assert_int_equal(tb_ls_url_query_parse(q, strlen(q), &a), 0);
	assert_int_equal(a.reverse, 0);
}

/* ---- addresses ---- */

static void check_ip(const char *in, const char *want)
{
	char buf[TB_LS_IP_STRLEN];
	tb_addr_t a;

	assert_int_equal(tb_addr_parse_ip(in, &a), 0);
	assert_int_equal(tb_ls_ip_text(&a, buf, sizeof(buf)), strlen(want));
	assert_string_equal(buf, want);
}

static void test_ip_text(void **state)
{
	char buf[8];
	tb_addr_t a;

	(void)state;
	check_ip("127.0.0.1", "127.0.0.1");
	check_ip("::1", "::1");
	check_ip("::", "::");
	check_ip("2001:DB8:0:0:0:0:0:1", "2001:db8::1");
	/* §3.4: an IPv4-mapped source prints as dotted IPv4 (Go's net.IP). */
	check_ip("::ffff:127.0.0.1", "127.0.0.1");
	check_ip("::ffff:7f00:2", "127.0.0.2");
	/* Go has no IPv4-compatible form, unlike inet_ntop. */
	check_ip("::1.2.3.4", "::102:304");
	check_ip("1:0:0:2:0:0:0:3", "1:0:0:2::3");
	check_ip("1:0:0:2:0:0:3:4", "1::2:0:0:3:4");
	check_ip("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7");
	check_ip("1::", "1::");
	check_ip("fe80::1:0:0:0", "fe80::1:0:0:0");
	check_ip("0:0:1::", "0:0:1::");
	check_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_int_equal(tb_addr_parse_ip("2001:db8::1", &a), 0);
	assert_int_equal(tb_ls_ip_text(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	a.family = 0;
	assert_int_equal(tb_ls_ip_text(&a, buf, sizeof(buf)), 0);
}

static void test_target_text(void **state)
{
	char buf[TB_HOST_MAX + 1];
	tb_target_t t;
	tb_addr_t a;

	(void)state;
	assert_int_equal(tb_ls_target_parse(&t, (tb_ls_str_t){"example.invalid", 15}, 8080), 0);
	assert_false(t.is_ip);
	assert_int_equal(t.port, 8080);
	assert_int_equal(tb_ls_target_text(&t, buf, sizeof(buf)), 15);
	assert_string_equal(buf, "example.invalid");
	assert_int_equal(tb_ls_target_parse(&t, (tb_ls_str_t){"::1xx", 3}, 8080), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.addr.family, TB_AF_INET6);
	assert_int_equal(tb_ls_target_text(&t, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "::1");
	assert_int_equal(tb_ls_target_parse(&t, (tb_ls_str_t){"10.0.0.1", 8}, 443), 0);
	assert_true(t.is_ip);
	assert_int_equal(t.addr.port, 443);
	assert_int_equal(tb_ls_target_parse(&t, (tb_ls_str_t){NULL, 0}, 1), TB_EINVAL);
	assert_int_equal(tb_ls_target_parse(&t, (tb_ls_str_t){"a\0b", 3}, 1), TB_EINVAL);
	/* A SOCKS5 ATYP 4 mapped address goes out dotted, as the reference. */
	assert_int_equal(tb_addr_parse_ip("::ffff:10.1.2.3", &a), 0);
	a.port = 53;
	tb_target_from_addr(&t, &a);
	assert_int_equal(tb_ls_target_text(&t, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "10.1.2.3");
	assert_int_equal(tb_ls_target_text(&t, buf, 4), 0);
}

/* ---- gzip (§3.5) ---- */

static tb_buf_t gz(const uint8_t *p, size_t n, int level)
{
	tb_ls_deflater_t *d = tb_ls_deflater_new(level);
	tb_buf_t out = TB_BUF_INIT;

	assert_non_null(d);
	assert_int_equal(tb_ls_deflate(d, p, n / 2, false, &out), 0);
	assert_int_equal(tb_ls_deflate(d, p + n / 2, n - n / 2, true, &out), 0);
	tb_ls_deflater_free(d);
	return out;
}

static uint8_t *flat(tb_buf_t *b, size_t *n)
{
	uint8_t *p = malloc(tb_buf_len(b) + 1);

	assert_non_null(p);
	*n = tb_buf_copyout(b, 0, p, tb_buf_len(b));
	tb_buf_free(b);
	return p;
}

static int inflate_all(const uint8_t *in, size_t n, size_t cap, struct collect *c)
{
	tb_ls_inflater_t *z = tb_ls_inflater_new(cap);
	int rc;

	assert_non_null(z);
	memset(c, 0, sizeof(*c));
	rc = tb_ls_inflate(z, in, n, collect_sink, c);
	tb_ls_inflater_free(z);
	return rc;
}

static void test_gzip_round_trip(void **state)
{
	uint8_t text[20000], *z, *two;
	struct collect c;
	tb_buf_t b;
	size_t zn, i;

	(void)state;
	if (!ENABLE_ZLIB) {
		assert_null(tb_ls_inflater_new(0));
		assert_null(tb_ls_deflater_new(-1));
		skip();
	}
	for (i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)("linksocks gzip "[i % 15] ^ (i / 1000));
	b = gz(text, sizeof(text), -1);
	z = flat(&b, &zn);
	/* §3.5: the header Go writes: 1f8b 08 00 00000000 00 ff. */
	assert_memory_equal(z, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
	assert_true(zn < sizeof(text) / 4);
	assert_int_equal(inflate_all(z, zn, 0, &c), 0);
	assert_int_equal(c.len, sizeof(text));
	assert_memory_equal(c.p, text, sizeof(text));
	assert_true(c.calls >= 3); /* delivered in chunks */
	free(c.p);
	/* Concatenated members read on like Go's reader. */
	two = malloc(2 * zn);
	assert_non_null(two);
	memcpy(two, z, zn);
	memcpy(two + zn, z, zn);
	assert_int_equal(inflate_all(two, 2 * zn, 0, &c), 0);
	assert_int_equal(c.len, 2 * sizeof(text));
	assert_memory_equal(c.p + sizeof(text), text, sizeof(text));
	free(c.p);
	/* Garbage after a member, a truncated member, nothing at all: errors. */
	two[zn] = 0;
	assert_int_equal(inflate_all(two, zn + 1, 0, &c), TB_EPROTO);
	free(c.p);
	assert_int_equal(inflate_all(two, zn + 11, 0, &c), TB_EPROTO);
	free(c.p);
	assert_int_equal(inflate_all(z, zn - 1, 0, &c), TB_EPROTO);
	free(c.p);
	assert_int_equal(inflate_all(z, 0, 0, &c), TB_EPROTO);
	free(c.p);
	free(two);
	/* Level 9 sets XFL 2 as Go's BestCompression does. */
	b = gz(text, 100, 9);
	free(z);
	z = flat(&b, &zn);
	assert_int_equal(z[8], 2);
	assert_int_equal(inflate_all(z, zn, 0, &c), 0);
	assert_int_equal(c.len, 100);
	free(c.p);
	free(z);
}

static void test_gzip_cap(void **state)
{
	static uint8_t zeros[1 << 20];
	uint8_t *z, out[1];
	struct collect c;
	tb_ls_inflater_t *inf;
	tb_buf_t b;
	size_t zn, total = 0;
	int rc;

	(void)state;
	if (!ENABLE_ZLIB)
		skip();
	/* 1 KiB of zeros past a 512-byte cap; then 1 MiB under a 64 KiB cap. */
	b = gz(zeros, 1024, -1);
	z = flat(&b, &zn);
	assert_int_equal(inflate_all(z, zn, 512, &c), TB_ERANGE);
	assert_true(c.len <= 512);
	free(c.p);
	assert_int_equal(inflate_all(z, zn, 1024, &c), 0);
	assert_int_equal(c.len, 1024);
	free(c.p);
	free(z);
	b = gz(zeros, sizeof(zeros), -1);
	z = flat(&b, &zn);
	assert_true(zn < 2048);
	assert_int_equal(inflate_all(z, zn, 64 << 10, &c), TB_ERANGE);
	free(c.p);
	/* Pull style, one byte at a time, stops at the cap too. */
	inf = tb_ls_inflater_new(1000);
	assert_non_null(inf);
	assert_int_equal(tb_ls_inflate_begin(inf, z, zn), 0);
	while ((rc = tb_ls_inflate_read(inf, out, sizeof(out))) > 0)
		total += (size_t)rc;
	assert_int_equal(rc, TB_ERANGE);
	assert_int_equal(total, 1000);
	assert_int_equal(tb_ls_inflate_read(inf, out, sizeof(out)), TB_ERANGE);
	/* Reused for a payload that fits. */
	assert_int_equal(tb_ls_inflate_begin(inf, z, zn), 0);
	assert_int_equal(tb_ls_inflate_read(inf, out, 0), TB_EINVAL);
	tb_ls_inflater_free(inf);
	free(z);
}

static int refuse_sink(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return TB_ENOBUFS;
}

static void test_gzip_sink_error(void **state)
{
	uint8_t *z;
	tb_ls_inflater_t *inf;
	tb_buf_t b;
	size_t zn;

	(void)state;
	if (!ENABLE_ZLIB)
		skip();
	b = gz((const uint8_t *)"abcdef", 6, -1);
	z = flat(&b, &zn);
	inf = tb_ls_inflater_new(0);
	assert_int_equal(tb_ls_inflate(inf, z, zn, refuse_sink, NULL), TB_ENOBUFS);
	tb_ls_inflater_free(inf);
	free(z);
}

/* ---- Log and Partners JSON ---- */

static void check_log_json(const char *msg, size_t n, const char *want)
{
	char out[512];
	char level[16], back[256];

	assert_int_equal(tb_ls_log_json(out, sizeof(out), "warn", msg, n), (int)strlen(want));
	assert_string_equal(out, want);
	assert_int_equal(tb_ls_log_parse(out, strlen(out), level, sizeof(level), back, sizeof(back)), 0);
	assert_string_equal(level, "warn");
}

static void test_json_escape(void **state)
{
	char out[32];

	(void)state;
	/* Go escapes <, >, & for HTML safety (§3.3). */
	check_log_json("<a & b>", 7, "{\"level\":\"warn\",\"msg\":\"\\u003ca \\u0026 b\\u003e\"}");
	check_log_json("q\"b\\s/", 6, "{\"level\":\"warn\",\"msg\":\"q\\\"b\\\\s/\"}");
	check_log_json("\n\r\t\b\f\x01\x1f", 7,
		       "{\"level\":\"warn\",\"msg\":\"\\n\\r\\t\\b\\f\\u0001\\u001f\"}");
	check_log_json("a\0b", 3, "{\"level\":\"warn\",\"msg\":\"a\\u0000b\"}");
	/* Valid UTF-8 stays raw; invalid bytes and U+2028/9 are escaped. */
	check_log_json("h\xc3\xa9 \xf0\x9f\x98\x80", 8,
		       "{\"level\":\"warn\",\"msg\":\"h\xc3\xa9 \xf0\x9f\x98\x80\"}");
	check_log_json("\xff\xc3(\xed\xa0\x80", 6,
		       "{\"level\":\"warn\",\"msg\":\"\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\"}");
	check_log_json("\xe2\x80\xa8\xe2\x80\xa9", 6, "{\"level\":\"warn\",\"msg\":\"\\u2028\\u2029\"}");
	assert_int_equal(tb_ls_log_json(out, sizeof(out), "info", "012345", 6), 31);
	assert_int_equal(tb_ls_log_json(out, sizeof(out), "info", "0123456", 7), TB_ERANGE);
	assert_int_equal(tb_ls_log_json(out, 0, "info", "", 0), TB_ERANGE);
}

static void test_json_parse(void **state)
{
	const char *j;
	char level[8], msg[16];
	long count;

	(void)state;
	/* Whitespace, unknown keys with nested values, keys in any order. */
	j = " { \"extra\" : [1, {\"a\":[true,null,\"}\"]}, -2.5e3] , \"o\" : { \"k\" : 1 , \"l\" : [ ] } ,"
	    "\"msg\" : \"hi\\tthere\", \"level\":\"error\"}\n";
	assert_int_equal(tb_ls_log_parse(j, strlen(j), level, sizeof(level), msg, sizeof(msg)), 0);
	assert_string_equal(level, "error");
	assert_string_equal(msg, "hi\tthere");
	/* \u escapes, a surrogate pair, a lone surrogate, Go's HTML escapes. */
	j = "{\"msg\":\"\\u003cx\\u003e \\ud83d\\ude00\\ud800!\\u00e9\"}";
	assert_int_equal(tb_ls_log_parse(j, strlen(j), level, sizeof(level), msg, sizeof(msg)), 0);
	assert_string_equal(level, "");
	assert_string_equal(msg, "<x> \xf0\x9f\x98\x80\xef\xbf\xbd!\xc3\xa9");
	/* Truncated to the cap on a UTF-8 boundary. */
	j = "{\"level\":\"debug\",\"msg\":\"0123456789abc\\u00e9z\"}";
	assert_int_equal(tb_ls_log_parse(j, strlen(j), level, 4, msg, sizeof(msg) - 1), 0);
	assert_string_equal(level, "deb");
	assert_string_equal(msg, "0123456789abc");
	/* Raw invalid UTF-8 and an escaped NUL become U+FFFD. */
	j = "{\"msg\":\"a\xff\\u0000\"}";
	assert_int_equal(tb_ls_log_parse(j, strlen(j), level, sizeof(level), msg, sizeof(msg)), 0);
	assert_string_equal(msg, "a\xef\xbf\xbd\xef\xbf\xbd");
	/* Not an object, unterminated, bad escapes. */
	assert_int_equal(tb_ls_log_parse("[]", 2, level, sizeof(level), msg, sizeof(msg)), TB_EPROTO);
	assert_int_equal(tb_ls_log_parse("{\"msg\":\"x", 9, level, sizeof(level), msg, sizeof(msg)),
			 TB_EPROTO);
	assert_int_equal(tb_ls_log_parse("{\"msg\":\"\\q\"}", 12, level, sizeof(level), msg, sizeof(msg)),
			 TB_EPROTO);
	assert_int_equal(tb_ls_log_parse("{\"msg\":\"\\u12\"}", 14, level, sizeof(level), msg, sizeof(msg)),
			 TB_EPROTO);
	assert_int_equal(tb_ls_log_parse("{\"msg\" \"x\"}", 11, level, sizeof(level), msg, sizeof(msg)),
			 TB_EPROTO);
	assert_int_equal(tb_ls_log_parse("", 0, level, sizeof(level), msg, sizeof(msg)), TB_EPROTO);
	assert_int_equal(tb_ls_log_parse("{}", 2, level, 0, msg, 0), 0);
	/* Partners. */
	assert_int_equal(tb_ls_partners_parse("{\"count\":2}", 11, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(tb_ls_partners_parse("{ \"x\":{}, \"count\" : -7 }", 24, &count), 0);
	assert_int_equal(count, -7);
	assert_int_equal(tb_ls_partners_parse("{}", 2, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(tb_ls_partners_parse("{\"count\":\"3\"}", 13, &count), 0);
	assert_int_equal(count, 0);
	assert_int_equal(tb_ls_partners_parse("{\"count\":1.5}", 13, &count), TB_EPROTO);
	assert_int_equal(tb_ls_partners_parse("{\"count\":99999999999999999999999}", 33, &count), TB_ERANGE);
	assert_int_equal(tb_ls_partners_parse("{\"count\":1", 10, &count), TB_EPROTO);
}

static void test_json_depth(void **state)
{
	char j[200], level[8], msg[8];
	int i;

	(void)state;
	/* Nesting is bounded: deep unknown values are refused, not recursed. */
	strcpy(j, "{\"x\":");
	for (i = 0; i < 100; i++)
		strcat(j, "[");
	assert_int_equal(tb_ls_log_parse(j, strlen(j), level, sizeof(level), msg, sizeof(msg)), TB_EPROTO);
}

static void test_log_level(void **state)
{
	(void)state;
	assert_int_equal(tb_ls_log_level("trace"), TB_LOG_DEBUG);
	assert_int_equal(tb_ls_log_level("debug"), TB_LOG_DEBUG);
	assert_int_equal(tb_ls_log_level("info"), TB_LOG_INFO);
	assert_int_equal(tb_ls_log_level("warn"), TB_LOG_WARN);
	assert_int_equal(tb_ls_log_level("error"), TB_LOG_ERROR);
	assert_int_equal(tb_ls_log_level("weird"), TB_LOG_INFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_auth),
		cmocka_unit_test(test_vectors_connect),
		cmocka_unit_test(test_vectors_connector),
		cmocka_unit_test(test_vectors_data),
		cmocka_unit_test(test_vectors_disconnect),
		cmocka_unit_test(test_vectors_log_partners),
		cmocka_unit_test(test_vectors_url_auth),
		cmocka_unit_test(test_version_and_type),
		cmocka_unit_test(test_trailing_and_optional),
		cmocka_unit_test(test_data_udp_pairs),
		cmocka_unit_test(test_connector_op),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_string_cap),
		cmocka_unit_test(test_data_header_and_trailer),
		cmocka_unit_test(test_build_log_partners),
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_token_hash),
		cmocka_unit_test(test_query_build_merge),
		cmocka_unit_test(test_query_parse),
		cmocka_unit_test(test_ip_text),
		cmocka_unit_test(test_target_text),
		cmocka_unit_test(test_gzip_round_trip),
		cmocka_unit_test(test_gzip_cap),
		cmocka_unit_test(test_gzip_sink_error),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_json_depth),
		cmocka_unit_test(test_log_level),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
