/* linksocks_msg.c: LinkSocks messages and protocol helpers (linksocks_msg.h).
 *
 * Pure functions over byte buffers: no loop, no sockets. The decoder reads
 * through a bounds-checked cursor; the encoder runs the same code once with
 * no output to size a message and once to write it, so the two never
 * disagree. Spec references are to spec/linksocks.md. */
#include "tb/linksocks_msg.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/log.h"
#include "tb/port.h"

#if ENABLE_ZLIB
#include <zlib.h>
#endif
#if ENABLE_MBEDTLS
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#endif

static const char hex_lower[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid: no
 * overlongs, no surrogates, nothing above U+10FFFF (as Go's utf8). */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

static bool utf8_cont(char c)
{
	return ((uint8_t)c & 0xc0) == 0x80;
}

/* §3.1, §11: at most 255 bytes, never cutting a UTF-8 sequence in two (a
 * sequence is at most 4 bytes: bytes that are not UTF-8 are cut at 255). */
static size_t str_cap(const char *p, size_t len)
{
	size_t k;

	if (len <= TB_LS_STR_MAX)
		return len;
	for (k = TB_LS_STR_MAX; k > TB_LS_STR_MAX - 3; k--)
		if (!utf8_cont(p[k]))
			return k;
	return utf8_cont(p[k]) ? TB_LS_STR_MAX : k;
}

const char *tb_ls_type_name(uint8_t type)
{
	static const char *const names[] = {
		"unknown",
		"auth",
		"auth_response",
		"connect",
		"data",
		"connect_response",
		"disconnect",
		"connector",
		"connector_response",
		"log",
		"partners",
		"direct_capabilities",
		"direct_rendezvous",
		"direct_status",
	};

	return type < TB_ARRAY_SIZE(names) ? names[type] : names[0];
}

/* n <= max, for sizes that can only exceed a wire or zlib limit on 64-bit
 * targets (a parameter, so 32-bit builds do not warn "always true"). */
static bool fits(uint64_t n, uint64_t max)
{
	return n <= max;
}

/* ---- decoder ---- */

typedef struct rd {
	const uint8_t *p;
	size_t n, off;
} rd_t;

static bool rd_has(const rd_t *r, size_t k)
{
	return r->n - r->off >= k;
}

static int rd_u8(rd_t *r, uint8_t *v)
{
	if (!rd_has(r, 1))
		return TB_EPROTO;
	*v = r->p[r->off++];
	return 0;
}

static int rd_be16(rd_t *r, uint16_t *v)
{
	if (!rd_has(r, 2))
		return TB_EPROTO;
	*v = tb_be16(r->p + r->off);
	r->off += 2;
	return 0;
}

static int rd_uuid(rd_t *r, uint8_t id[TB_LS_UUID_LEN])
{
	if (!rd_has(r, TB_LS_UUID_LEN))
		return TB_EPROTO;
	memcpy(id, r->p + r->off, TB_LS_UUID_LEN);
	r->off += TB_LS_UUID_LEN;
	return 0;
}

/* Len(1) Bytes(Len); §10.14: a length past the end is TB_ERANGE. */
static int rd_str(rd_t *r, tb_ls_str_t *s)
{
	uint8_t len;

	if (rd_u8(r, &len))
		return TB_EPROTO;
	if (!rd_has(r, len))
		return TB_ERANGE;
	s->p = (const char *)r->p + r->off;
	s->len = len;
	r->off += len;
	return 0;
}

/* Len(4) followed by that many bytes (Data payload, Log/Partners JSON). */
static int rd_blob(rd_t *r, const uint8_t **p, size_t *len)
{
	uint32_t v;

	if (!rd_has(r, 4))
		return TB_EPROTO;
	v = tb_be32(r->p + r->off);
	r->off += 4;
	if (!rd_has(r, v))
		return TB_ERANGE;
	*p = r->p + r->off;
	*len = v;
	r->off += v;
	return 0;
}

static int rd_hostport(rd_t *r, tb_ls_hostport_t *hp)
{
	int rc = rd_str(r, &hp->host);

	return rc ? rc : rd_be16(r, &hp->port);
}

/* Every failure path of a Success byte may omit its error (§3.3 requires it
 * for AuthResponse; accepting it elsewhere costs nothing). */
static int rd_opt_str(rd_t *r, tb_ls_str_t *s)
{
	return rd_has(r, 1) ? rd_str(r, s) : 0;
}

static int dec_auth(rd_t *r, tb_ls_msg_t *m)
{
	uint8_t rev;
	int rc = rd_str(r, &m->auth.token);

	if (rc || (rc = rd_u8(r, &rev)))
		return rc;
	m->auth.reverse = rev != 0;
	return rd_uuid(r, m->auth.instance);
}

static int dec_auth_resp(rd_t *r, tb_ls_msg_t *m)
{
	uint8_t ok;

	if (rd_u8(r, &ok))
		return TB_EPROTO;
	m->auth_resp.success = ok != 0;
	/* §3.3: bytes after Success=01 are ignored (a Cloudflare-Worker relay
	 * appends a token there). */
	return ok ? 0 : rd_opt_str(r, &m->auth_resp.error);
}

static int dec_connect(rd_t *r, tb_ls_msg_t *m)
{
	int rc;

	if (rd_u8(r, &m->connect.proto) || rd_uuid(r, m->connect.channel))
		return TB_EPROTO;
	/* §3.3: Connect{udp} ends after the ChannelID (19 bytes). The reference
	 * parses other protocol bytes and then can do nothing with them. */
	if (m->connect.proto == TB_LS_PROTO_UDP)
		return 0;
	if (m->connect.proto != TB_LS_PROTO_TCP)
		return TB_EPROTO;
	rc = rd_str(r, &m->connect.addr);
	return rc ? rc : rd_be16(r, &m->connect.port);
}

static int dec_data(rd_t *r, tb_ls_msg_t *m)
{
	uint8_t comp;
	int rc;

	if (rd_u8(r, &m->data.proto) || rd_uuid(r, m->data.channel) || rd_u8(r, &comp))
		return TB_EPROTO;
	if (m->data.proto != TB_LS_PROTO_TCP && m->data.proto != TB_LS_PROTO_UDP)
		return TB_EPROTO;
	/* §3.2: a compression byte other than 01 is read as none. */
	m->data.compression = comp == TB_LS_COMP_GZIP ? TB_LS_COMP_GZIP : TB_LS_COMP_NONE;
	if ((rc = rd_blob(r, &m->data.payload, &m->data.len)))
		return rc;
	if (m->data.proto == TB_LS_PROTO_TCP)
		return 0;
	/* §3.4: both pairs always; the reference rejects a missing second one. */
	if ((rc = rd_hostport(r, &m->data.addr)))
		return rc;
	return rd_hostport(r, &m->data.target);
}

static int dec_connect_resp(rd_t *r, tb_ls_msg_t *m)
{
	uint8_t ok;

	/* §3.3, §10.3: Success precedes ChannelID here, unlike ConnectorResponse. */
	if (rd_u8(r, &ok) || rd_uuid(r, m->connect_resp.channel))
		return TB_EPROTO;
	m->connect_resp.success = ok != 0;
	return ok ? 0 : rd_opt_str(r, &m->connect_resp.error);
}

static int dec_disconnect(rd_t *r, tb_ls_msg_t *m)
{
	if (rd_uuid(r, m->disconnect.channel))
		return TB_EPROTO;
	/* §3.3: 18 bytes, E = 0 and E > 0 parse alike. */
	return rd_opt_str(r, &m->disconnect.error);
}

static int dec_connector(rd_t *r, tb_ls_msg_t *m)
{
	int rc;

	if (rd_uuid(r, m->connector.request))
		return TB_EPROTO;
	if ((rc = rd_str(r, &m->connector.token)) || (rc = rd_u8(r, &m->connector.op)))
		return rc;
	/* §3.2: any op other than add/remove is a parse error. */
	return m->connector.op == TB_LS_OP_ADD || m->connector.op == TB_LS_OP_REMOVE ? 0 : TB_EPROTO;
}

static int dec_connector_resp(rd_t *r, tb_ls_msg_t *m)
{
	uint8_t ok;

	/* §3.3: RequestID comes before Success here. */
	if (rd_uuid(r, m->connector_resp.request) || rd_u8(r, &ok))
		return TB_EPROTO;
	m->connector_resp.success = ok != 0;
	return rd_opt_str(r, ok ? &m->connector_resp.token : &m->connector_resp.error);
}

static int dec_json(rd_t *r, tb_ls_str_t *json)
{
	const uint8_t *p;
	int rc = rd_blob(r, &p, &json->len);

	json->p = (const char *)p;
	return rc;
}

int tb_ls_msg_decode(const uint8_t *p, size_t n, tb_ls_msg_t *m)
{
	rd_t r = {p, n, 2};

	memset(m, 0, sizeof(*m));
	if (n < 2)
		return TB_EPROTO;
	m->version = p[0];
	m->type = p[1];
	/* §3.1, §9: v1.8 accepts any version with high nibble 0; so do we. */
	if (m->version > 0x0f)
		return TB_EPROTO;
	if (m->version != TB_LS_VERSION)
		tb_debug("linksocks: message version %02x (type %02x)", m->version, m->type);
	switch (m->type) {
	case TB_LS_AUTH:
		return dec_auth(&r, m);
	case TB_LS_AUTH_RESPONSE:
		return dec_auth_resp(&r, m);
	case TB_LS_CONNECT:
		return dec_connect(&r, m);
	case TB_LS_DATA:
		return dec_data(&r, m);
	case TB_LS_CONNECT_RESPONSE:
		return dec_connect_resp(&r, m);
	case TB_LS_DISCONNECT:
		return dec_disconnect(&r, m);
	case TB_LS_CONNECTOR:
		return dec_connector(&r, m);
	case TB_LS_CONNECTOR_RESPONSE:
		return dec_connector_resp(&r, m);
	case TB_LS_LOG:
		return dec_json(&r, &m->log.json);
	case TB_LS_PARTNERS:
		return dec_json(&r, &m->partners.json);
	default:
		/* §3.1: unknown types (0x0B-0x0D P2P, anything newer) are ignored. */
		return TB_ENOTSUP;
	}
}

/* ---- encoder ---- */

/* With p NULL the writer only counts: the same code sizes and writes. */
typedef struct wr {
	uint8_t *p;
	size_t off;
} wr_t;

static void wr_put(wr_t *w, const void *src, size_t n)
{
	if (w->p && n)
		memcpy(w->p + w->off, src, n);
	w->off += n;
}

static void wr_u8(wr_t *w, uint8_t v)
{
	wr_put(w, &v, 1);
}

static void wr_be16(wr_t *w, uint16_t v)
{
	uint8_t b[2];

	tb_put_be16(b, v);
	wr_put(w, b, 2);
}

static void wr_str(wr_t *w, tb_ls_str_t s)
{
	size_t len = str_cap(s.p, s.len);

	wr_u8(w, (uint8_t)len);
	wr_put(w, s.p, len);
}

static void wr_hostport(wr_t *w, const tb_ls_hostport_t *hp)
{
	static const tb_ls_hostport_t empty;

	hp = hp ? hp : &empty;
	wr_str(w, hp->host);
	wr_be16(w, hp->port);
}

static bool proto_ok(uint8_t proto)
{
	return proto == TB_LS_PROTO_TCP || proto == TB_LS_PROTO_UDP;
}

static int wr_json(wr_t *w, tb_ls_str_t json)
{
	uint8_t b[4];

	if (!fits(json.len, UINT32_MAX))
		return TB_EINVAL;
	tb_put_be32(b, (uint32_t)json.len);
	wr_put(w, b, 4);
	wr_put(w, json.p, json.len);
	return 0;
}

static int wr_data_hdr(wr_t *w, uint8_t proto, const uint8_t *channel, uint8_t comp, size_t len)
{
	uint8_t b[4];

	if (!proto_ok(proto) || comp > TB_LS_COMP_GZIP || !fits(len, UINT32_MAX))
		return TB_EINVAL;
	wr_u8(w, TB_LS_VERSION);
	wr_u8(w, TB_LS_DATA);
	wr_u8(w, proto);
	wr_put(w, channel, TB_LS_UUID_LEN);
	wr_u8(w, comp);
	tb_put_be32(b, (uint32_t)len);
	wr_put(w, b, 4);
	return 0;
}

static int enc_data(wr_t *w, const tb_ls_msg_t *m)
{
	int rc = wr_data_hdr(w, m->data.proto, m->data.channel, m->data.compression, m->data.len);

	if (rc)
		return rc;
	wr_put(w, m->data.payload, m->data.len);
	if (m->data.proto == TB_LS_PROTO_UDP) {
		wr_hostport(w, &m->data.addr);
		wr_hostport(w, &m->data.target);
	}
	return 0;
}

static int enc_connect(wr_t *w, const tb_ls_msg_t *m)
{
	if (!proto_ok(m->connect.proto))
		return TB_EINVAL;
	wr_u8(w, m->connect.proto);
	wr_put(w, m->connect.channel, TB_LS_UUID_LEN);
	if (m->connect.proto == TB_LS_PROTO_TCP) {
		wr_str(w, m->connect.addr);
		wr_be16(w, m->connect.port);
	}
	return 0;
}

static int enc_connector_resp(wr_t *w, const tb_ls_msg_t *m)
{
	wr_put(w, m->connector_resp.request, TB_LS_UUID_LEN);
	wr_u8(w, m->connector_resp.success);
	/* §3.3: the token only when one is returned; the error always. */
	if (!m->connector_resp.success)
		wr_str(w, m->connector_resp.error);
	else if (m->connector_resp.token.len)
		wr_str(w, m->connector_resp.token);
	return 0;
}

/* Everything after Version and Type. */
static int enc_body(wr_t *w, const tb_ls_msg_t *m)
{
	switch (m->type) {
	case TB_LS_AUTH:
		wr_str(w, m->auth.token);
		wr_u8(w, m->auth.reverse);
		wr_put(w, m->auth.instance, TB_LS_UUID_LEN);
		return 0;
	case TB_LS_AUTH_RESPONSE:
		wr_u8(w, m->auth_resp.success);
		if (!m->auth_resp.success)
			wr_str(w, m->auth_resp.error);
		return 0;
	case TB_LS_CONNECT:
		return enc_connect(w, m);
	case TB_LS_CONNECT_RESPONSE:
		wr_u8(w, m->connect_resp.success);
		wr_put(w, m->connect_resp.channel, TB_LS_UUID_LEN);
		if (!m->connect_resp.success)
			wr_str(w, m->connect_resp.error);
		return 0;
	case TB_LS_DISCONNECT:
		wr_put(w, m->disconnect.channel, TB_LS_UUID_LEN);
		/* §3.3: the reference writes the error part only when non-empty. */
		if (m->disconnect.error.len)
			wr_str(w, m->disconnect.error);
		return 0;
	case TB_LS_CONNECTOR:
		if (m->connector.op != TB_LS_OP_ADD && m->connector.op != TB_LS_OP_REMOVE)
			return TB_EINVAL;
		wr_put(w, m->connector.request, TB_LS_UUID_LEN);
		wr_str(w, m->connector.token);
		wr_u8(w, m->connector.op);
		return 0;
	case TB_LS_CONNECTOR_RESPONSE:
		return enc_connector_resp(w, m);
	case TB_LS_LOG:
	case TB_LS_PARTNERS:
		return wr_json(w, m->log.json);
	default:
		return TB_EINVAL; /* §3.1: never send types above 0x0A */
	}
}

static int enc_msg(wr_t *w, const tb_ls_msg_t *m)
{
	if (m->type == TB_LS_DATA)
		return enc_data(w, m);
	wr_u8(w, TB_LS_VERSION);
	wr_u8(w, m->type);
	return enc_body(w, m);
}

size_t tb_ls_msg_size(const tb_ls_msg_t *m)
{
	wr_t w = {NULL, 0};

	return enc_msg(&w, m) ? 0 : w.off;
}

int tb_ls_msg_encode(const tb_ls_msg_t *m, uint8_t *out, size_t cap)
{
	size_t need = tb_ls_msg_size(m);
	wr_t w = {out, 0};

	if (need == 0)
		return TB_EINVAL;
	if (need > cap || need > INT_MAX)
		return TB_ERANGE;
	enc_msg(&w, m);
	return (int)need;
}

int tb_ls_data_header(uint8_t out[TB_LS_DATA_HDR_LEN], uint8_t proto, const uint8_t channel[TB_LS_UUID_LEN],
		      uint8_t compression, size_t len)
{
	wr_t w = {out, 0};
	int rc = wr_data_hdr(&w, proto, channel, compression, len);

	return rc ? rc : TB_LS_DATA_HDR_LEN;
}

size_t tb_ls_udp_trailer_size(const tb_ls_hostport_t *addr, const tb_ls_hostport_t *target)
{
	wr_t w = {NULL, 0};

	wr_hostport(&w, addr);
	wr_hostport(&w, target);
	return w.off;
}

int tb_ls_udp_trailer(uint8_t *out, size_t cap, const tb_ls_hostport_t *addr, const tb_ls_hostport_t *target)
{
	wr_t w = {out, 0};

	if (tb_ls_udp_trailer_size(addr, target) > cap)
		return TB_ERANGE;
	wr_hostport(&w, addr);
	wr_hostport(&w, target);
	return (int)w.off;
}

/* ---- UUIDs ---- */

int tb_ls_uuid_random(uint8_t id[TB_LS_UUID_LEN])
{
	int rc = tb_port_random(id, TB_LS_UUID_LEN);

	if (rc)
		return rc;
	id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* RFC 9562 version 4 */
	id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* variant 10 */
	return 0;
}

static bool uuid_dash(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

void tb_ls_uuid_format(const uint8_t id[TB_LS_UUID_LEN], char out[TB_LS_UUID_STRLEN])
{
	size_t i, k = 0;

	for (i = 0; i < 36; i++) {
		if (uuid_dash(i)) {
			out[i] = '-';
			continue;
		}
		out[i] = hex_lower[k & 1 ? id[k / 2] & 15 : id[k / 2] >> 4];
		k++;
	}
	out[36] = '\0';
}

int tb_ls_uuid_parse(const char *s, size_t n, uint8_t id[TB_LS_UUID_LEN])
{
	uint8_t tmp[TB_LS_UUID_LEN] = {0};
	size_t i, k = 0;

	if (n != 36)
		return TB_EINVAL;
	for (i = 0; i < 36; i++) {
		int v = tb_hexval(s[i]);

		if (uuid_dash(i) ? s[i] != '-' : v < 0)
			return TB_EINVAL;
		if (uuid_dash(i))
			continue;
		tmp[k / 2] = (uint8_t)(tmp[k / 2] << 4 | v);
		k++;
	}
	memcpy(id, tmp, sizeof(tmp));
	return 0;
}

/* ---- URL-query auth (§2.3 Style A) ---- */

int tb_ls_token_hash(const char *token, size_t len, char out[TB_LS_TOKEN_HEX_LEN + 1])
{
#if ENABLE_MBEDTLS
	uint8_t d[32];
	int rc;
	size_t i;

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	rc = mbedtls_sha256((const unsigned char *)token, len, d, 0);
#else
	rc = mbedtls_sha256_ret((const unsigned char *)token, len, d, 0);
#endif
	if (rc)
		return TB_EIO;
	for (i = 0; i < sizeof(d); i++) {
		out[2 * i] = hex_lower[d[i] >> 4];
		out[2 * i + 1] = hex_lower[d[i] & 15];
	}
	out[TB_LS_TOKEN_HEX_LEN] = '\0';
	return 0;
#else
	out[0] = '\0';
	return TB_ENOTSUP;
#endif
}

#define Q_BAD ((size_t)-1)

/* Go's QueryUnescape: %XX and '+' for space; a bad escape fails the pair.
 * Writes at most cap bytes and returns the whole decoded length. */
static size_t q_unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, len = 0;

	for (i = 0; i < n; i++, len++) {
		char c = s[i];

		if (c == '%') {
			if (i + 2 >= n || tb_hexval(s[i + 1]) < 0 || tb_hexval(s[i + 2]) < 0)
				return Q_BAD;
			c = (char)(tb_hexval(s[i + 1]) << 4 | tb_hexval(s[i + 2]));
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (len < cap)
			out[len] = c;
	}
	return len;
}

typedef int (*q_pair_fn)(void *ctx, const char *k, size_t kl, const char *v, size_t vl);

/* Go's url.ParseQuery as Query() uses it: '&'-separated, pairs with ';' or
 * a bad escape dropped, the value after the first '='. Spans stay escaped. */
static int q_each(const char *q, size_t n, q_pair_fn fn, void *ctx)
{
	const char *end = q + n;

	while (q < end) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *seg_end = amp ? amp : end;
		size_t sl = (size_t)(seg_end - q);
		const char *eq = memchr(q, '=', sl);
		size_t kl = eq ? (size_t)(eq - q) : sl;
		const char *v = eq ? eq + 1 : seg_end;
		size_t vl = (size_t)(seg_end - v);
		int rc = 0;

		if (sl && !memchr(q, ';', sl) && q_unescape(q, kl, NULL, 0) != Q_BAD &&
		    q_unescape(v, vl, NULL, 0) != Q_BAD)
			rc = fn(ctx, q, kl, v, vl);
		if (rc)
			return rc;
		q = amp ? amp + 1 : end;
	}
	return 0;
}

static bool q_key_is(const char *k, size_t kl, const char *name)
{
	char buf[16];
	size_t len = q_unescape(k, kl, buf, sizeof(buf));

	return len == strlen(name) && memcmp(buf, name, len) == 0;
}

struct q_parse {
	tb_ls_url_auth_t *a;
	bool seen_token, seen_reverse;
	size_t token_len;
};

/* Go's Get returns the first value of a key: later ones are ignored. */
static int q_parse_pair(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
	struct q_parse *st = ctx;
	char buf[8];
	size_t len;

	if (!st->seen_token && q_key_is(k, kl, "token")) {
		st->seen_token = true;
		st->token_len = q_unescape(v, vl, st->a->token_hex, TB_LS_TOKEN_HEX_LEN);
		st->a->has_token = st->token_len > 0;
	} else if (!st->seen_reverse && q_key_is(k, kl, "reverse")) {
		st->seen_reverse = true;
		len = q_unescape(v, vl, buf, sizeof(buf));
		/* §2.3: "true" or "1" is true, anything else false; an empty
		 * value counts as absent (the reference tests != ""). */
		if (len > 0)
			st->a->reverse = (len == 4 && !memcmp(buf, "true", 4)) || (len == 1 && buf[0] == '1');
	}
	return 0;
}

int tb_ls_url_query_parse(const char *q, size_t n, tb_ls_url_auth_t *a)
{
	struct q_parse st = {a, false, false, 0};
	size_t i;

	memset(a, 0, sizeof(*a));
	a->reverse = -1;
	q_each(q, n, q_parse_pair, &st);
	if (!a->has_token)
		return 0;
	/* §2.3: 64 bytes else "invalid token format"; the lookup is
	 * case-sensitive, so anything but lowercase hex is "invalid token". */
	if (st.token_len != TB_LS_TOKEN_HEX_LEN) {
		a->token_hex[0] = '\0';
		return TB_EPROTO;
	}
	a->token_hex[TB_LS_TOKEN_HEX_LEN] = '\0';
	for (i = 0; i < TB_LS_TOKEN_HEX_LEN; i++)
		if (!strchr(hex_lower, a->token_hex[i]) || a->token_hex[i] == '\0')
			return TB_EDENIED;
	return 0;
}

/* A bounded text writer: over is set once something did not fit. */
typedef struct sb {
	char *p;
	size_t cap, len;
	bool over;
} sb_t;

static void sb_put(sb_t *b, const void *s, size_t n)
{
	if (b->over || n >= b->cap - b->len) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_putc(sb_t *b, char c)
{
	sb_put(b, &c, 1);
}

static int sb_result(const sb_t *b)
{
	return b->over || b->len > INT_MAX ? TB_ERANGE : (int)b->len;
}

/* Go's QueryEscape: unreserved bytes as is, space as '+', others %XX. */
static void q_escape(sb_t *b, const char *s, size_t n)
{
	static const char hex_upper[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];
		char e[3] = {'%', hex_upper[c >> 4], hex_upper[c & 15]};

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    memchr("-_.~", c, 4))
			sb_putc(b, (char)c);
		else if (c == ' ')
			sb_putc(b, '+');
		else
			sb_put(b, e, 3);
	}
}

struct q_pair {
	const char *k, *v;
	size_t kl, vl;
};

struct q_build {
	struct q_pair *pairs;
	size_t n;
	char *scratch; /* decoded keys and values; decoding never grows */
	size_t used;
};

static int q_build_pair(void *ctx, const char *k, size_t kl, const char *v, size_t vl)
{
	struct q_build *st = ctx;
	struct q_pair *p = &st->pairs[st->n];

	/* q.Set() replaces every value of these keys. */
	if (q_key_is(k, kl, "instance") || q_key_is(k, kl, "reverse") || q_key_is(k, kl, "token"))
		return 0;
	p->k = st->scratch + st->used;
	p->kl = q_unescape(k, kl, st->scratch + st->used, kl);
	st->used += p->kl;
	p->v = st->scratch + st->used;
	p->vl = q_unescape(v, vl, st->scratch + st->used, vl);
	st->used += p->vl;
	st->n++;
	return 0;
}

static int q_cmp(const struct q_pair *a, const struct q_pair *b)
{
	int c = memcmp(a->k, b->k, TB_MIN(a->kl, b->kl));

	return c ? c : (a->kl > b->kl) - (a->kl < b->kl);
}

/* Stable, so the values of one key keep their order, as in url.Values. */
static void q_sort(struct q_pair *p, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		struct q_pair t = p[i];

		for (j = i; j > 0 && q_cmp(&p[j - 1], &t) > 0; j--)
			p[j] = p[j - 1];
		p[j] = t;
	}
}

int tb_ls_url_query_build(char *out, size_t cap, const char *query, size_t qlen, const char *token,
			  size_t toklen, bool reverse, const uint8_t instance[TB_LS_UUID_LEN])
{
	char hash[TB_LS_TOKEN_HEX_LEN + 1], inst[TB_LS_UUID_STRLEN];
	size_t i, slots = 4;
	struct q_build st = {NULL, 0, NULL, 0};
	sb_t b = {out, cap, 0, cap == 0};
	int rc = tb_ls_token_hash(token, toklen, hash);

	if (rc)
		return rc;
	for (i = 0; i < qlen; i++)
		slots += query[i] == '&';
	st.pairs = malloc(slots * sizeof(*st.pairs));
	st.scratch = malloc(qlen + 1);
	if (!st.pairs || !st.scratch) {
		free(st.pairs);
		free(st.scratch);
		return TB_ENOMEM;
	}
	q_each(query, qlen, q_build_pair, &st);
	tb_ls_uuid_format(instance, inst);
	st.pairs[st.n++] = (struct q_pair){"instance", inst, 8, 36};
	st.pairs[st.n++] = (struct q_pair){"reverse", reverse ? "true" : "false", 7, reverse ? 4u : 5u};
	st.pairs[st.n++] = (struct q_pair){"token", hash, 5, TB_LS_TOKEN_HEX_LEN};
	q_sort(st.pairs, st.n);
	if (cap)
		out[0] = '\0';
	for (i = 0; i < st.n; i++) {
		if (i)
			sb_putc(&b, '&');
		q_escape(&b, st.pairs[i].k, st.pairs[i].kl);
		sb_putc(&b, '=');
		q_escape(&b, st.pairs[i].v, st.pairs[i].vl);
	}
	free(st.pairs);
	free(st.scratch);
	return sb_result(&b);
}

/* ---- addresses ---- */

/* RFC 5952 as Go prints it: the longest run of two or more zero groups
 * (the first on a tie) becomes "::". */
static void ipv6_text(const uint8_t *ip, char *buf, size_t cap)
{
	int best = -1, best_len = 1, i, run;
	size_t len = 0;

	for (i = 0; i < 8; i += run ? run : 1) {
		for (run = 0; i + run < 8 && !ip[2 * (i + run)] && !ip[2 * (i + run) + 1]; run++)
			;
		if (run > best_len) {
			best = i;
			best_len = run;
		}
	}
	for (i = 0; i < 8 && len < cap; i++) {
		if (i == best) {
			len += (size_t)snprintf(buf + len, cap - len, "::");
			i += best_len - 1;
			continue;
		}
		len += (size_t)snprintf(buf + len, cap - len, "%s%x", i && i != best + best_len ? ":" : "",
					tb_be16(ip + 2 * i));
	}
}

/* Whole text or nothing: a truncated address would name another host. */
static size_t text_out(char *buf, size_t cap, const char *s)
{
	size_t len = strlen(s);

	if (cap == 0)
		return 0;
	if (len >= cap)
		len = 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return len;
}

size_t tb_ls_ip_text(const tb_addr_t *a, char *buf, size_t cap)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char tmp[TB_LS_IP_STRLEN] = "";
	const uint8_t *v4 = NULL;

	if (a->family == TB_AF_INET)
		v4 = a->ip;
	else if (a->family == TB_AF_INET6 && !memcmp(a->ip, v4mapped, 12))
		v4 = a->ip + 12; /* §3.4: a mapped source prints as dotted IPv4 */
	if (v4)
		snprintf(tmp, sizeof(tmp), "%u.%u.%u.%u", v4[0], v4[1], v4[2], v4[3]);
	else if (a->family == TB_AF_INET6)
		ipv6_text(a->ip, tmp, sizeof(tmp));
	return text_out(buf, cap, tmp);
}

size_t tb_ls_target_text(const tb_target_t *t, char *buf, size_t cap)
{
	/* §3.3: a domain travels as the SOCKS client gave it, unresolved. */
	return t->is_ip ? tb_ls_ip_text(&t->addr, buf, cap) : text_out(buf, cap, t->host);
}

int tb_ls_target_parse(tb_target_t *t, tb_ls_str_t host, uint16_t port)
{
	if (host.len == 0)
		return TB_EINVAL;
	return tb_target_set(t, host.p, host.len, port);
}

/* ---- gzip (§3.5) ---- */

#if ENABLE_ZLIB
struct tb_ls_inflater {
	z_stream zs;
	size_t cap, total;
	unsigned members;
	bool in_member, done;
	int err;
};

struct tb_ls_deflater {
	z_stream zs;
	gz_header gz;
};

tb_ls_inflater_t *tb_ls_inflater_new(size_t cap)
{
	tb_ls_inflater_t *z = calloc(1, sizeof(*z));

	if (!z)
		return NULL;
	/* windowBits 15 + 16: gzip only, as Go's reader. */
	if (inflateInit2(&z->zs, 15 + 16) != Z_OK) {
		free(z);
		return NULL;
	}
	z->cap = cap ? cap : TB_LS_INFLATE_CAP;
	z->done = true;
	return z;
}

void tb_ls_inflater_free(tb_ls_inflater_t *z)
{
	if (!z)
		return;
	inflateEnd(&z->zs);
	free(z);
}

int tb_ls_inflate_begin(tb_ls_inflater_t *z, const uint8_t *in, size_t n)
{
	if (!fits(n, UINT_MAX))
		return TB_ERANGE;
	inflateReset(&z->zs);
	z->zs.next_in = (Bytef *)(uintptr_t)in;
	z->zs.avail_in = (uInt)n;
	z->total = 0;
	z->members = 0;
	z->in_member = false;
	z->done = false;
	z->err = 0;
	return 0;
}

/* Input exhausted: the end only after at least one complete member (Go's
 * reader fails on empty input and on a truncated member). */
static int inflate_end_of_input(tb_ls_inflater_t *z)
{
	if (z->in_member || z->members == 0)
		return z->err = TB_EPROTO;
	z->done = true;
	return 0;
}

/* One inflate() call; returns the bytes produced or a negative error. */
static int inflate_step(tb_ls_inflater_t *z, uint8_t *out, size_t room)
{
	int zr;
	size_t got;

	z->zs.next_out = out;
	z->zs.avail_out = (uInt)room;
	zr = inflate(&z->zs, Z_NO_FLUSH);
	got = room - z->zs.avail_out;
	z->total += got;
	if (z->total > z->cap)
		return z->err = TB_ERANGE; /* §3.5: never trust the ratio */
	if (zr == Z_STREAM_END) {
		/* §3.5: loop over concatenated members like Go's reader. */
		z->members++;
		z->in_member = false;
		inflateReset(&z->zs);
	} else if (zr == Z_OK) {
		z->in_member = true;
	} else {
		return z->err = TB_EPROTO;
	}
	return (int)got;
}

int tb_ls_inflate_read(tb_ls_inflater_t *z, uint8_t *out, size_t cap)
{
	int got = 0;

	if (z->err || z->done)
		return z->err;
	if (cap == 0)
		return TB_EINVAL;
	cap = TB_MIN(cap, (size_t)INT_MAX);
	while (got == 0) {
		size_t left = z->cap - z->total;
		/* One byte past the cap is enough to see it crossed. */
		size_t room = cap > left ? left + 1 : cap;

		if (z->zs.avail_in == 0)
			return inflate_end_of_input(z);
		got = inflate_step(z, out, room);
		if (got < 0)
			return got;
	}
	return got;
}

int tb_ls_inflate(tb_ls_inflater_t *z, const uint8_t *in, size_t n, tb_ls_sink_fn sink, void *ctx)
{
	uint8_t chunk[8192];
	int rc = tb_ls_inflate_begin(z, in, n);

	while (rc == 0 && (rc = tb_ls_inflate_read(z, chunk, sizeof(chunk))) > 0) {
		rc = sink(ctx, chunk, (size_t)rc);
		if (rc > 0)
			rc = 0;
	}
	return rc;
}

static int deflater_reset(tb_ls_deflater_t *d)
{
	/* §3.5: the header Go writes: mtime 0, OS ff (XFL comes from the level). */
	memset(&d->gz, 0, sizeof(d->gz));
	d->gz.os = 255;
	return deflateSetHeader(&d->zs, &d->gz) == Z_OK ? 0 : TB_EIO;
}

tb_ls_deflater_t *tb_ls_deflater_new(int level)
{
	tb_ls_deflater_t *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	if (level < 1 || level > 9)
		level = Z_DEFAULT_COMPRESSION;
	if (deflateInit2(&d->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(d);
		return NULL;
	}
	if (deflater_reset(d)) {
		tb_ls_deflater_free(d);
		return NULL;
	}
	return d;
}

void tb_ls_deflater_free(tb_ls_deflater_t *d)
{
	if (!d)
		return;
	deflateEnd(&d->zs);
	free(d);
}

static int deflate_fail(tb_ls_deflater_t *d, int rc)
{
	deflateReset(&d->zs);
	deflater_reset(d);
	return rc;
}

int tb_ls_deflate(tb_ls_deflater_t *d, const uint8_t *in, size_t n, bool finish, tb_buf_t *out)
{
	uint8_t chunk[4096];
	int zr;

	if (!fits(n, UINT_MAX))
		return TB_ERANGE;
	d->zs.next_in = (Bytef *)(uintptr_t)in;
	d->zs.avail_in = (uInt)n;
	do {
		d->zs.next_out = chunk;
		d->zs.avail_out = sizeof(chunk);
		zr = deflate(&d->zs, finish ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_ERROR)
			return deflate_fail(d, TB_EIO);
		if (tb_buf_append(out, chunk, sizeof(chunk) - d->zs.avail_out))
			return deflate_fail(d, TB_ENOMEM);
	} while (d->zs.avail_out == 0);
	if (!finish)
		return 0;
	deflateReset(&d->zs);
	return deflater_reset(d);
}
#else
tb_ls_inflater_t *tb_ls_inflater_new(size_t cap)
{
	return NULL;
}

void tb_ls_inflater_free(tb_ls_inflater_t *z)
{
}

int tb_ls_inflate_begin(tb_ls_inflater_t *z, const uint8_t *in, size_t n)
{
	return TB_ENOTSUP;
}

int tb_ls_inflate_read(tb_ls_inflater_t *z, uint8_t *out, size_t cap)
{
	return TB_ENOTSUP;
}

int tb_ls_inflate(tb_ls_inflater_t *z, const uint8_t *in, size_t n, tb_ls_sink_fn sink, void *ctx)
{
	return TB_ENOTSUP;
}

tb_ls_deflater_t *tb_ls_deflater_new(int level)
{
	return NULL;
}

void tb_ls_deflater_free(tb_ls_deflater_t *d)
{
}

int tb_ls_deflate(tb_ls_deflater_t *d, const uint8_t *in, size_t n, bool finish, tb_buf_t *out)
{
	return TB_ENOTSUP;
}
#endif

/* ---- Log and Partners JSON ---- */

/* Escapes Go writes as a backslash and one letter; 0 for none. */
static char json_short(uint8_t c)
{
	switch (c) {
	case '"':
	case '\\':
		return (char)c;
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return 0;
	}
}

/* A multi-byte sequence: invalid UTF-8 as \ufffd, U+2028/9 escaped (Go). */
static size_t json_escape_mb(sb_t *b, const uint8_t *p, size_t n)
{
	size_t k = utf8_seq(p, n);

	if (k == 0)
		sb_put(b, "\\ufffd", 6);
	else if (k == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] & 0xfe) == 0xa8)
		sb_put(b, p[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
	else
		sb_put(b, p, k);
	return k ? k : 1;
}

/* A JSON string body as Go's encoding/json writes it, HTML-safe (§3.3). */
static void json_escape(sb_t *b, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		char e[7] = {'\\', json_short(c)};

		if (c >= 0x80) {
			i += json_escape_mb(b, p + i, n - i);
			continue;
		}
		if (e[1]) {
			sb_put(b, e, 2);
		} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
			snprintf(e, sizeof(e), "\\u00%c%c", hex_lower[c >> 4], hex_lower[c & 15]);
			sb_put(b, e, 6);
		} else {
			sb_putc(b, (char)c);
		}
		i++;
	}
}

int tb_ls_log_json(char *out, size_t cap, const char *level, const char *msg, size_t msglen)
{
	sb_t b = {out, cap, 0, cap == 0};

	if (cap)
		out[0] = '\0';
	sb_put(&b, "{\"level\":\"", 10);
	json_escape(&b, level, strlen(level));
	sb_put(&b, "\",\"msg\":\"", 9);
	json_escape(&b, msg, msglen);
	sb_put(&b, "\"}", 2);
	return sb_result(&b);
}

int tb_ls_partners_json(char *out, size_t cap, long count)
{
	int n = snprintf(out, cap, "{\"count\":%ld}", count);

	return n < 0 || (size_t)n >= cap ? TB_ERANGE : n;
}

typedef struct jp {
	const uint8_t *p, *end;
} jp_t;

static void jp_ws(jp_t *j)
{
	while (j->p < j->end && strchr(" \t\r\n", *j->p) && *j->p)
		j->p++;
}

/* Appends one character whole or not at all (truncation on a boundary). */
static void jp_emit(sb_t *b, const void *s, size_t n)
{
	if (b && !b->over)
		sb_put(b, s, n);
}

static void jp_emit_cp(sb_t *b, uint32_t cp)
{
	static const uint8_t lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
	uint8_t u[4];
	size_t n, i;

	/* A NUL would silently cut the C string: U+FFFD instead. */
	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		cp = 0xfffd;
	n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	for (i = n - 1; i > 0; i--, cp >>= 6)
		u[i] = (uint8_t)(0x80 | (cp & 0x3f));
	u[0] = (uint8_t)(lead[n] | cp);
	jp_emit(b, u, n);
}

static int jp_hex4(jp_t *j, uint32_t *v)
{
	int i;

	if (j->end - j->p < 4)
		return TB_EPROTO;
	for (*v = 0, i = 0; i < 4; i++) {
		if (tb_hexval(j->p[i]) < 0)
			return TB_EPROTO;
		*v = *v << 4 | (uint32_t)tb_hexval(j->p[i]);
	}
	j->p += 4;
	return 0;
}

/* After "\u": one code point, joining a surrogate pair; a lone surrogate
 * becomes U+FFFD as in Go. */
static int jp_unicode(jp_t *j, sb_t *b)
{
	uint32_t hi, lo;
	jp_t save;

	if (jp_hex4(j, &hi))
		return TB_EPROTO;
	if (hi >= 0xd800 && hi < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
		save = *j;
		j->p += 2;
		if (jp_hex4(j, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff)
			hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
		else
			*j = save;
	}
	jp_emit_cp(b, hi);
	return 0;
}

static int jp_escape(jp_t *j, sb_t *b)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;

	if (j->p >= j->end)
		return TB_EPROTO;
	if (*j->p == 'u') {
		j->p++;
		return jp_unicode(j, b);
	}
	e = *j->p ? strchr(from, *j->p) : NULL;
	if (!e)
		return TB_EPROTO;
	jp_emit(b, &to[e - from], 1);
	j->p++;
	return 0;
}

/* A string at j->p (which must be '"'), decoded into b (NULL: skipped).
 * Invalid UTF-8 and raw NULs become U+FFFD. */
static int jp_string(jp_t *j, sb_t *b)
{
	size_t k;

	if (j->p >= j->end || *j->p != '"')
		return TB_EPROTO;
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		if (*j->p == '\\') {
			j->p++;
			if (jp_escape(j, b))
				return TB_EPROTO;
			continue;
		}
		k = utf8_seq(j->p, (size_t)(j->end - j->p));
		if (k == 0 || *j->p == 0)
			jp_emit_cp(b, 0xfffd);
		else
			jp_emit(b, j->p, k);
		j->p += k ? k : 1;
	}
	if (j->p >= j->end)
		return TB_EPROTO;
	j->p++;
	return 0;
}

struct jp_keys {
	sb_t level, msg;
	long *count;
};

static int jp_value(jp_t *j, int depth);
static int jp_member(jp_t *j, struct jp_keys *k);

static bool jp_take(jp_t *j, char c)
{
	jp_ws(j);
	if (j->p >= j->end || *j->p != c)
		return false;
	j->p++;
	return true;
}

/* An object or array body after its opening bracket. Members of the
 * top-level object go to jp_member (keys set); nested ones are skipped. */
static int jp_container(jp_t *j, int depth, bool object, struct jp_keys *keys)
{
	char close = object ? '}' : ']';
	int rc;

	if (jp_take(j, close))
		return 0;
	do {
		jp_ws(j);
		if (keys)
			rc = jp_member(j, keys);
		else if (object)
			rc = jp_string(j, NULL) || !jp_take(j, ':') || jp_value(j, depth + 1) ? TB_EPROTO : 0;
		else
			rc = jp_value(j, depth + 1);
		if (rc)
			return rc;
	} while (jp_take(j, ','));
	/* Bytes after the top-level object are ignored. */
	return jp_take(j, close) ? 0 : TB_EPROTO;
}

/* Skips any value: strings, containers (bounded depth), scalars. */
static int jp_value(jp_t *j, int depth)
{
	const uint8_t *start;

	jp_ws(j);
	if (j->p >= j->end || depth > 32)
		return TB_EPROTO;
	if (*j->p == '"')
		return jp_string(j, NULL);
	if (*j->p == '{' || *j->p == '[') {
		bool object = *j->p++ == '{';

		return jp_container(j, depth, object, NULL);
	}
	for (start = j->p; j->p < j->end && *j->p && strchr("+-.0123456789eEtruefalsn", *j->p); j->p++)
		;
	return j->p > start ? 0 : TB_EPROTO;
}

static int jp_long(jp_t *j, long *v)
{
	bool neg = j->p < j->end && *j->p == '-';
	unsigned long acc = 0, lim = neg ? (unsigned long)LONG_MAX + 1 : (unsigned long)LONG_MAX;
	const uint8_t *start;

	j->p += neg;
	for (start = j->p; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++) {
		unsigned d = (unsigned)(*j->p - '0');

		if (acc > (lim - d) / 10)
			return TB_ERANGE;
		acc = acc * 10 + d;
	}
	if (j->p == start || (j->p < j->end && *j->p && strchr(".eE", *j->p)))
		return TB_EPROTO; /* not an integer: Go refuses it for an int */
	*v = neg ? (long)(0 - acc) : (long)acc;
	return 0;
}

/* One member of the top-level object: the keys we know, the rest skipped.
 * A value of the wrong type is skipped too (lenient). */
static int jp_member(jp_t *j, struct jp_keys *k)
{
	char key[16] = "";
	sb_t kb = {key, sizeof(key), 0, false};
	sb_t *dst = NULL;

	if (jp_string(j, &kb) || !jp_take(j, ':'))
		return TB_EPROTO;
	jp_ws(j);
	if (kb.over || j->p >= j->end)
		return jp_value(j, 1);
	if (!strcmp(key, "level") || !strcmp(key, "msg"))
		dst = key[0] == 'l' ? &k->level : &k->msg;
	if (dst && dst->cap && *j->p == '"') {
		dst->len = 0;
		dst->over = false;
		dst->p[0] = '\0';
		return jp_string(j, dst);
	}
	if (!strcmp(key, "count") && k->count && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')))
		return jp_long(j, k->count);
	return jp_value(j, 1);
}

static int jp_object(const char *json, size_t n, struct jp_keys *k)
{
	jp_t j = {(const uint8_t *)json, (const uint8_t *)json + n};

	return jp_take(&j, '{') ? jp_container(&j, 0, true, k) : TB_EPROTO;
}

int tb_ls_log_parse(const char *json, size_t n, char *level, size_t lcap, char *msg, size_t mcap)
{
	struct jp_keys k = {{level, lcap, 0, lcap == 0}, {msg, mcap, 0, mcap == 0}, NULL};

	if (lcap)
		level[0] = '\0';
	if (mcap)
		msg[0] = '\0';
	return jp_object(json, n, &k);
}

int tb_ls_partners_parse(const char *json, size_t n, long *count)
{
	struct jp_keys k = {{NULL, 0, 0, true}, {NULL, 0, 0, true}, count};

	*count = 0;
	return jp_object(json, n, &k);
}

int tb_ls_log_level(const char *level)
{
	if (!strcmp(level, "trace") || !strcmp(level, "debug"))
		return TB_LOG_DEBUG;
	if (!strcmp(level, "warn") || !strcmp(level, "warning"))
		return TB_LOG_WARN;
	if (!strcmp(level, "error") || !strcmp(level, "fatal") || !strcmp(level, "panic"))
		return TB_LOG_ERROR;
	return TB_LOG_INFO;
}
