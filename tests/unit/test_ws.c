/* test_ws.c: the WebSocket codec, handshake, parser and endpoint.
 *
 * Frames and handshakes captured from the reference (vectors/linksocks/
 * ws_frames.json, url_auth.json) are read from the JSON files with a tiny
 * extractor; the endpoint runs over a mock stream (every byte it writes is
 * checked) and end to end over loopback TCP. Every wait is bounded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb/port.h"
#include "tb/ws.h"

#define VEC_DIR TB_SRCDIR "/tests/vectors/linksocks/"

/* ---- the JSON extractor: fields of the object named name ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* The text of the object whose "name" is name, up to the next "name". */
static const char *object(const char *json, const char *name, const char **end)
{
	char key[128];
	const char *o, *next;

	snprintf(key, sizeof(key), "\"name\": \"%s\"", name);
	o = strstr(json, key);
	assert_non_null(o);
	next = strstr(o + 1, "\"name\": \"");
	*end = next ? next : o + strlen(o);
	return o;
}

/* The nth ("field": ...) inside [o, end), pointing at its value. */
static const char *field(const char *o, const char *end, const char *name, int nth)
{
	char key[64];
	const char *p = o;

	snprintf(key, sizeof(key), "\"%s\": ", name);
	for (int i = 0; i <= nth; i++) {
		p = strstr(p, key);
		assert_true(p && p < end);
		p += strlen(key);
	}
	return p;
}

static size_t unhex(const char *p, uint8_t **out)
{
	size_t n = strcspn(p, "\"");
	uint8_t *b = malloc(n / 2 + 1);

	assert_non_null(b);
	assert_int_equal(n % 2, 0);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		assert_int_equal(sscanf(p + 2 * i, "%2x", &v), 1);
		b[i] = (uint8_t)v;
	}
	*out = b;
	return n / 2;
}

/* The bytes of a hex string field: the nth "f": "..." of the object, or
 * the nth string of "f": ["..", ".."]. */
static size_t vec_hex(const char *json, const char *name, const char *fname, int nth, uint8_t **out)
{
	const char *end, *o = object(json, name, &end);
	const char *v = field(o, end, fname, 0);

	if (*v == '[') {
		v = strchr(v, '"');
		for (int i = 0; i < nth; i++)
			v = strchr(strchr(v + 1, '"') + 1, '"');
	} else {
		v = field(o, end, fname, nth);
	}
	assert_true(v && *v == '"');
	return unhex(v + 1, out);
}

static long vec_int(const char *json, const char *name, const char *fname, int nth)
{
	const char *end, *o = object(json, name, &end);

	return strtol(field(o, end, fname, nth), NULL, 10);
}

/* ---- a parser that records what it delivers ---- */

struct rec {
	uint8_t *msg; /* the last message */
	size_t msg_len, nmsg, nctl;
	unsigned msg_op, ctl_op[8];
	uint8_t ctl[8][TB_WS_CONTROL_MAX];
	size_t ctl_len[8];
	size_t stop_after; /* return false after this many deliveries (0: never) */
};

static bool stop_now(struct rec *r)
{
	return !(r->stop_after && r->nmsg + r->nctl >= r->stop_after);
}

static bool rec_message(void *ctx, unsigned op, const uint8_t *d, size_t n)
{
	struct rec *r = ctx;

	assert_non_null(d);
	free(r->msg);
	r->msg = malloc(n + 1);
	memcpy(r->msg, d, n);
	r->msg_len = n;
	r->msg_op = op;
	r->nmsg++;
	return stop_now(r);
}

static bool rec_control(void *ctx, unsigned op, const uint8_t *d, size_t n)
{
	struct rec *r = ctx;

	assert_true(n <= TB_WS_CONTROL_MAX);
	if (r->nctl < 8) {
		r->ctl_op[r->nctl] = op;
		memcpy(r->ctl[r->nctl], d, n);
		r->ctl_len[r->nctl] = n;
	}
	r->nctl++;
	return stop_now(r);
}

static const tb_ws_parser_cb_t rec_cb = {rec_message, rec_control};

static void rec_reset(struct rec *r)
{
	free(r->msg);
	memset(r, 0, sizeof(*r));
}

/* Feeds all of p in pieces of at most step bytes (0: at once). */
static int feed_all(tb_ws_parser_t *ps, const uint8_t *p, size_t n, size_t step)
{
	size_t off = 0, used;
	int rc;

	do {
		size_t k = step ? TB_MIN(step, n - off) : n - off;

		rc = tb_ws_parser_feed(ps, p + off, k, &used);
		if (rc < 0)
			return rc;
		assert_int_equal(used, k);
		off += k;
	} while (off < n);
	return 0;
}

/* One parse of frames with a fresh parser; the error or 0. */
static int parse(bool server, size_t max, const uint8_t *p, size_t n, struct rec *r)
{
	tb_ws_parser_t ps;
	int rc;

	rec_reset(r);
	tb_ws_parser_init(&ps, server, max, &rec_cb, r);
	rc = feed_all(&ps, p, n, 0);
	tb_ws_parser_free(&ps);
	return rc;
}

/* ---- captured vectors ---- */

static void test_vector_fragmented(void **state)
{
	char *j = slurp(VEC_DIR "ws_frames.json");
	const char *v = "fragmented_client_message";
	uint8_t *all, *msg, *fr[2];
	size_t n = vec_hex(j, v, "hex", 0, &all), mlen = vec_hex(j, v, "message_hex", 0, &msg);
	size_t frlen[2];
	struct rec r = {0};

	assert_int_equal(n, (size_t)vec_int(j, v, "length", 0));
	/* Each frame: decode, then build the same header and mask it back. */
	for (int i = 0; i < 2; i++) {
		tb_ws_frame_t f;
		uint8_t hdr[TB_WS_HEADER_MAX], *mask;

		frlen[i] = vec_hex(j, v, "frame_hex", i, &fr[i]);
		assert_int_equal(tb_ws_frame_decode(fr[i], frlen[i], &f), 8);
		assert_int_equal(f.fin, vec_int(j, v, "fin", i));
		assert_int_equal(f.opcode, vec_int(j, v, "opcode", i));
		assert_true(f.masked);
		assert_int_equal(f.len, (uint64_t)vec_int(j, v, "payload_len", i));
		assert_int_equal(vec_hex(j, v, "mask_hex", i, &mask), 4);
		assert_memory_equal(f.mask, mask, 4);
		assert_int_equal(frlen[i], f.header_len + f.len);
		assert_int_equal(tb_ws_frame_header(hdr, f.fin, f.opcode, f.len, mask), 8);
		assert_memory_equal(hdr, fr[i], 8);
		free(mask);
	}
	assert_int_equal(frlen[0] + frlen[1], n);
	assert_memory_equal(fr[0], all, frlen[0]);
	/* Reassembled by a server, split at every point. */
	for (size_t cut = 0; cut <= n;
	     cut += (cut < 64 || cut > n - 64 || (cut > 4090 && cut < 4120)) ? 1 : 97) {
		tb_ws_parser_t ps;
		size_t used;

		rec_reset(&r);
		tb_ws_parser_init(&ps, true, 0, &rec_cb, &r);
		assert_int_equal(tb_ws_parser_feed(&ps, all, cut, &used), 0);
		assert_int_equal(used, cut);
		assert_int_equal(tb_ws_parser_feed(&ps, all + cut, n - cut, &used), 0);
		assert_int_equal(used, n - cut);
		assert_int_equal(r.nmsg, 1);
		assert_int_equal(r.msg_op, TB_WS_OP_BINARY);
		assert_int_equal(r.msg_len, mlen);
		assert_memory_equal(r.msg, msg, mlen);
		tb_ws_parser_free(&ps);
	}
	/* Byte by byte. */
	{
		tb_ws_parser_t ps;

		rec_reset(&r);
		tb_ws_parser_init(&ps, true, 0, &rec_cb, &r);
		assert_int_equal(feed_all(&ps, all, n, 1), 0);
		assert_int_equal(r.nmsg, 1);
		assert_memory_equal(r.msg, msg, mlen);
		tb_ws_parser_free(&ps);
	}
	/* A client never accepts masked frames (§5.1). */
	assert_int_equal(parse(false, 0, all, n, &r), TB_EPROTO);
	/* Over a limit of one byte less: 1009 before anything is stored. */
	assert_int_equal(parse(true, mlen - 1, all, n, &r), TB_ERANGE);
	assert_int_equal(parse(true, mlen, all, n, &r), 0);
	rec_reset(&r);
	free(fr[0]);
	free(fr[1]);
	free(all);
	free(msg);
	free(j);
}

/* A single-frame vector: decoded by the parser of the receiving side,
 * refused by the other, and rebuilt from its header fields. */
static void single(const char *j, const char *name, bool to_server, unsigned op, const char *msg_field)
{
	uint8_t *b, *m = NULL, hdr[TB_WS_HEADER_MAX], *again;
	size_t n = vec_hex(j, name, "hex", 0, &b), mlen = 0;
	tb_ws_frame_t f;
	struct rec r = {0};
	int hl;

	if (msg_field)
		mlen = vec_hex(j, name, msg_field, 0, &m);
	hl = tb_ws_frame_decode(b, n, &f);
	assert_true(hl > 0);
	assert_int_equal(f.opcode, op);
	assert_true(f.fin);
	assert_int_equal(f.masked, to_server);
	assert_int_equal(f.len, n - (size_t)hl);
	assert_int_equal(tb_ws_frame_header(hdr, true, op, f.len, to_server ? f.mask : NULL), (size_t)hl);
	assert_memory_equal(hdr, b, (size_t)hl);
	assert_int_equal(parse(to_server, 0, b, n, &r), 0);
	if (op >= TB_WS_OP_CLOSE) {
		assert_int_equal(r.nctl, 1);
		assert_int_equal(r.ctl_op[0], op);
		assert_int_equal(r.ctl_len[0], f.len);
	} else {
		assert_int_equal(r.nmsg, 1);
		assert_int_equal(r.msg_op, op);
		assert_int_equal(r.msg_len, mlen);
		assert_memory_equal(r.msg, m, mlen);
		/* Masking the message again gives the captured payload back. */
		again = malloc(mlen + 1);
		tb_ws_mask(again, m, mlen, f.mask, 0);
		assert_memory_equal(again, b + hl, mlen);
		free(again);
	}
	assert_int_equal(parse(!to_server, 0, b, n, &r), TB_EPROTO);
	rec_reset(&r);
	free(b);
	free(m);
}

static void test_vector_single_frames(void **state)
{
	char *j = slurp(VEC_DIR "ws_frames.json");

	single(j, "masked_auth_frame", true, TB_WS_OP_BINARY, "message_hex");
	single(j, "client_ping", true, TB_WS_OP_PING, NULL);
	single(j, "server_pong", false, TB_WS_OP_PONG, NULL);
	single(j, "server_ping", false, TB_WS_OP_PING, NULL);
	single(j, "unsolicited_pong_from_client", true, TB_WS_OP_PONG, NULL);
	single(j, "server_auth_response_frame", false, TB_WS_OP_BINARY, "message_hex");
	free(j);
}

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static void test_vector_101(void **state)
{
	char *j = slurp(VEC_DIR "ws_frames.json");
	uint8_t *b, *frame;
	size_t n = vec_hex(j, "server_upgrade_response", "hex", 0, &b);
	size_t fl = vec_hex(j, "server_auth_response_frame", "hex", 0, &frame);
	tb_http_span_t loc;
	char out[256];
	int status, head = tb_ws_response_check(b, n, RFC_KEY, &status, &loc);

	/* The head, then the AuthResponse frame in the same segment. */
	assert_int_equal(status, 101);
	assert_int_equal((size_t)head + fl, n);
	assert_memory_equal(b + head, frame, fl);
	/* Our 101 is byte for byte the reference server's. */
	assert_int_equal(tb_ws_response_build(out, sizeof(out), RFC_KEY, strlen(RFC_KEY)), head);
	assert_memory_equal(out, b, (size_t)head);
	/* Any prefix of the head is incomplete; another key fails. */
	for (int i = 0; i < head; i++)
		assert_int_equal(tb_ws_response_check(b, (size_t)i, RFC_KEY, &status, &loc), TB_EAGAIN);
	assert_int_equal(tb_ws_response_check(b, n, "AAAAAAAAAAAAAAAAAAAAAA==", &status, &loc), TB_EPROTO);
	free(b);
	free(frame);
	free(j);
}

/* The captured reference client request passes our server's check, and
 * ours, built from the same parts, is byte for byte the same. */
static void test_vector_request(void **state)
{
	char *j = slurp(VEC_DIR "url_auth.json");
	uint8_t *b;
	size_t n = vec_hex(j, "url_auth_handshake_request", "hex", 0, &b);
	tb_http_request_t *r = malloc(sizeof(*r));
	tb_http_span_t key, t;
	char key_s[TB_WS_KEY_LEN + 1], path[256], *q, out[512];
	tb_ws_request_t req = {0};

	assert_int_equal(tb_http_request_parse(b, n, r), (int)n);
	assert_int_equal(tb_ws_upgrade_check(r, &key), 0);
	assert_int_equal(key.len, TB_WS_KEY_LEN);
	memcpy(key_s, key.p, key.len);
	key_s[key.len] = '\0';
	t = r->target;
	memcpy(path, t.p, t.len);
	path[t.len] = '\0';
	q = strchr(path, '?');
	*q++ = '\0';
	req.path = path;
	req.query = q;
	req.host = "127.0.0.1:28790";
	req.user_agent = "Go-http-client/1.1";
	assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, key_s), (int)n);
	assert_memory_equal(out, b, n);
	free(r);
	free(b);
	free(j);
}

/* ---- codec ---- */

static void test_accept_key(void **state)
{
	char out[TB_WS_ACCEPT_LEN + 1], k1[TB_WS_KEY_LEN + 1], k2[TB_WS_KEY_LEN + 1];
	uint8_t raw[18];

	/* RFC 6455 §1.3. */
	assert_int_equal(tb_ws_accept_key(RFC_KEY, strlen(RFC_KEY), out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_int_equal(tb_ws_key_new(k1), 0);
	assert_int_equal(tb_ws_key_new(k2), 0);
	assert_int_equal(strlen(k1), TB_WS_KEY_LEN);
	assert_int_equal(tb_http_base64_decode(k1, strlen(k1), raw, sizeof(raw)), 16);
	assert_string_not_equal(k1, k2);
}

static void test_mask(void **state)
{
	enum {
		N = 300
	};
	static const uint8_t mask[4] = {0x12, 0x9a, 0xff, 0x01};
	uint8_t src[N + 16], dst[N + 16], ref[N + 16];

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 13 + 5);
	for (size_t a = 0; a < 8; a++)		     /* alignment of the data */
		for (size_t off = 0; off < 8; off++) /* mask offset, taken mod 4 */
			for (size_t n = 0; n <= N; n += n < 40 ? 1 : 37) {
				for (size_t i = 0; i < n; i++)
					ref[a + i] = src[a + i] ^ mask[(off + i) & 3];
				memset(dst, 0xee, sizeof(dst));
				assert_int_equal(tb_ws_mask(dst + a, src + a, n, mask, off), (off + n) & 3);
				assert_memory_equal(dst + a, ref + a, n);
				assert_int_equal(dst[a + n], 0xee); /* nothing past the end */
				/* In place, and split in two calls at every point. */
				for (size_t cut = 0; cut <= n; cut += n < 40 ? 1 : 11) {
					size_t o2;

					memcpy(dst, src, sizeof(dst));
					o2 = tb_ws_mask(dst + a, dst + a, cut, mask, off);
					tb_ws_mask(dst + a + cut, dst + a + cut, n - cut, mask, o2);
					assert_memory_equal(dst + a, ref + a, n);
				}
			}
}

static void test_frame_header_lengths(void **state)
{
	static const uint64_t lens[] = {
		0, 1, 125, 126, 127, 65535, 65536, 1u << 20, 0xffffffffull + 1, (1ull << 63) - 1};
	static const uint8_t mask[4] = {1, 2, 3, 4};
	uint8_t h[TB_WS_HEADER_MAX];
	tb_ws_frame_t f;

	for (size_t i = 0; i < TB_ARRAY_SIZE(lens); i++)
		for (int m = 0; m < 2; m++) {
			size_t n = tb_ws_frame_header(h, i & 1, TB_WS_OP_BINARY, lens[i], m ? mask : NULL);
			size_t want = 2 + (lens[i] > 125) * 2 + (lens[i] > 65535) * 6 + (size_t)m * 4;

			assert_int_equal(n, want);
			for (size_t k = 0; k < n; k++)
				assert_int_equal(tb_ws_frame_decode(h, k, &f), TB_EAGAIN);
			assert_int_equal(tb_ws_frame_decode(h, n, &f), (int)n);
			assert_int_equal(f.len, lens[i]);
			assert_int_equal(f.fin, i & 1);
			assert_int_equal(f.masked, m);
			if (m)
				assert_memory_equal(f.mask, mask, 4);
		}
}

static void test_frame_decode_rules(void **state)
{
	tb_ws_frame_t f;
	/* Lengths need not be minimal on receive. */
	static const uint8_t long16[] = {0x82, 126, 0, 5}, long64[] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5};
	static const uint8_t top[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
	uint8_t b[2];

	assert_int_equal(tb_ws_frame_decode(long16, sizeof(long16), &f), 4);
	assert_int_equal(f.len, 5);
	assert_int_equal(tb_ws_frame_decode(long64, sizeof(long64), &f), 10);
	assert_int_equal(f.len, 5);
	assert_int_equal(tb_ws_frame_decode(top, sizeof(top), &f), TB_EPROTO);
	for (unsigned op = 0; op < 16; op++) {
		bool known = op <= 2 || (op >= 8 && op <= 10);

		b[0] = (uint8_t)(0x80 | op);
		b[1] = 0;
		assert_int_equal(tb_ws_frame_decode(b, 2, &f), known ? 2 : TB_EPROTO);
		/* Seen from the first byte alone. */
		assert_int_equal(tb_ws_frame_decode(b, 1, &f), known ? TB_EAGAIN : TB_EPROTO);
		for (unsigned rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
			b[0] = (uint8_t)(0x80 | rsv | op);
			assert_int_equal(tb_ws_frame_decode(b, 2, &f), TB_EPROTO);
		}
		if (op >= 8 && known) {
			b[0] = (uint8_t)op; /* fragmented control frame */
			assert_int_equal(tb_ws_frame_decode(b, 2, &f), TB_EPROTO);
			b[0] = (uint8_t)(0x80 | op);
			b[1] = 125;
			assert_int_equal(tb_ws_frame_decode(b, 2, &f), 2);
			b[1] = 126;
			assert_int_equal(tb_ws_frame_decode(b, 2, &f), TB_EPROTO);
		}
	}
}

/* ---- the parser ---- */

/* Appends one frame to out (masked when mask), returns the new length. */
static size_t frame(uint8_t *out, size_t at, bool fin, unsigned op, const void *d, size_t n, bool mask)
{
	static const uint8_t key[4] = {0xa1, 0xb2, 0xc3, 0xd4};
	size_t h = tb_ws_frame_header(out + at, fin, op, n, mask ? key : NULL);

	if (mask)
		tb_ws_mask(out + at + h, d, n, key, 0);
	else if (n)
		memcpy(out + at + h, d, n);
	return at + h + n;
}

static void test_parser_fragments_and_control(void **state)
{
	uint8_t buf[512];
	struct rec r = {0};

	for (int m = 0; m < 2; m++) {
		size_t n = 0;

		n = frame(buf, n, false, TB_WS_OP_TEXT, "Hel", 3, m);
		n = frame(buf, n, true, TB_WS_OP_PING, "p1", 2, m);
		n = frame(buf, n, false, TB_WS_OP_CONT, "", 0, m);
		n = frame(buf, n, true, TB_WS_OP_PONG, "", 0, m);
		n = frame(buf, n, true, TB_WS_OP_CONT, "lo", 2, m);
		n = frame(buf, n, true, TB_WS_OP_BINARY, "", 0, m);
		for (size_t step = 0; step < 8; step++) {
			tb_ws_parser_t ps;

			rec_reset(&r);
			tb_ws_parser_init(&ps, m, 0, &rec_cb, &r);
			assert_int_equal(feed_all(&ps, buf, n, step), 0);
			assert_int_equal(r.nctl, 2);
			assert_int_equal(r.ctl_op[0], TB_WS_OP_PING);
			assert_int_equal(r.ctl_len[0], 2);
			assert_memory_equal(r.ctl[0], "p1", 2);
			assert_int_equal(r.ctl_op[1], TB_WS_OP_PONG);
			assert_int_equal(r.nmsg, 2);
			assert_int_equal(r.msg_op, TB_WS_OP_BINARY); /* the last, empty */
			assert_int_equal(r.msg_len, 0);
			tb_ws_parser_free(&ps);
		}
	}
	/* Stopping: delivery returns false, the rest is not consumed. */
	{
		tb_ws_parser_t ps;
		size_t n = 0, used;

		n = frame(buf, n, true, TB_WS_OP_BINARY, "a", 1, false);
		n = frame(buf, n, true, TB_WS_OP_BINARY, "bc", 2, false);
		rec_reset(&r);
		r.stop_after = 1;
		tb_ws_parser_init(&ps, false, 0, &rec_cb, &r);
		assert_int_equal(tb_ws_parser_feed(&ps, buf, n, &used), 0);
		assert_int_equal(used, 3);
		r.stop_after = 0;
		assert_int_equal(tb_ws_parser_feed(&ps, buf + used, n - used, &used), 0);
		assert_int_equal(r.nmsg, 2);
		assert_memory_equal(r.msg, "bc", 2);
		tb_ws_parser_free(&ps);
	}
	rec_reset(&r);
}

static void test_parser_protocol_errors(void **state)
{
	uint8_t buf[512], big[200];
	struct rec r = {0};
	size_t n;

	memset(big, 'x', sizeof(big));
	/* Continuation without a start. */
	n = frame(buf, 0, true, TB_WS_OP_CONT, "x", 1, true);
	assert_int_equal(parse(true, 0, buf, n, &r), TB_EPROTO);
	/* A new data frame inside a fragmented message. */
	n = frame(buf, 0, false, TB_WS_OP_BINARY, "x", 1, true);
	n = frame(buf, n, true, TB_WS_OP_TEXT, "y", 1, true);
	assert_int_equal(parse(true, 0, buf, n, &r), TB_EPROTO);
	/* Unmasked at a server, masked at a client; control frames too. */
	n = frame(buf, 0, true, TB_WS_OP_BINARY, "x", 1, false);
	assert_int_equal(parse(true, 0, buf, n, &r), TB_EPROTO);
	n = frame(buf, 0, true, TB_WS_OP_PING, "", 0, false);
	assert_int_equal(parse(true, 0, buf, n, &r), TB_EPROTO);
	n = frame(buf, 0, true, TB_WS_OP_BINARY, "x", 1, true);
	assert_int_equal(parse(false, 0, buf, n, &r), TB_EPROTO);
	/* Control frames: too long, fragmented (hand-made headers). */
	buf[0] = 0x89;
	buf[1] = 126;
	assert_int_equal(parse(false, 0, buf, 4, &r), TB_EPROTO);
	buf[0] = 0x09;
	buf[1] = 0;
	assert_int_equal(parse(false, 0, buf, 2, &r), TB_EPROTO);
	/* RSV bits. */
	n = frame(buf, 0, true, TB_WS_OP_BINARY, "x", 1, false);
	buf[0] |= 0x40;
	assert_int_equal(parse(false, 0, buf, n, &r), TB_EPROTO);
	/* Bad opcodes. */
	buf[0] = 0x83;
	assert_int_equal(parse(false, 0, buf, n, &r), TB_EPROTO);
	buf[0] = 0x8b;
	assert_int_equal(parse(false, 0, buf, n, &r), TB_EPROTO);
	rec_reset(&r);
}

static void test_parser_close_payloads(void **state)
{
	static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999};
	static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
	uint8_t buf[64], body[8];
	struct rec r = {0};
	size_t n;

	n = frame(buf, 0, true, TB_WS_OP_CLOSE, "", 0, false);
	assert_int_equal(parse(false, 0, buf, n, &r), 0);
	assert_int_equal(r.nctl, 1);
	n = frame(buf, 0, true, TB_WS_OP_CLOSE, "\x03", 1, false);
	assert_int_equal(parse(false, 0, buf, n, &r), TB_EPROTO);
	for (size_t i = 0; i < TB_ARRAY_SIZE(good); i++) {
		tb_put_be16(body, (uint16_t)good[i]);
		memcpy(body + 2, "bye", 3);
		n = frame(buf, 0, true, TB_WS_OP_CLOSE, body, 5, true);
		assert_int_equal(parse(true, 0, buf, n, &r), 0);
		assert_int_equal(r.ctl_len[0], 5);
		assert_int_equal(tb_be16(r.ctl[0]), good[i]);
	}
	for (size_t i = 0; i < TB_ARRAY_SIZE(bad); i++) {
		tb_put_be16(body, (uint16_t)bad[i]);
		n = frame(buf, 0, true, TB_WS_OP_CLOSE, body, 2, true);
		assert_int_equal(parse(true, 0, buf, n, &r), TB_EPROTO);
	}
	rec_reset(&r);
}

static void test_parser_too_big(void **state)
{
	uint8_t buf[1024], big[300];
	struct rec r = {0};
	size_t n;

	memset(big, 'z', sizeof(big));
	/* Exactly the limit passes, one more byte fails, in one frame or three. */
	n = frame(buf, 0, true, TB_WS_OP_BINARY, big, 100, true);
	assert_int_equal(parse(true, 100, buf, n, &r), 0);
	assert_int_equal(r.msg_len, 100);
	n = frame(buf, 0, true, TB_WS_OP_BINARY, big, 101, true);
	assert_int_equal(parse(true, 100, buf, n, &r), TB_ERANGE);
	n = frame(buf, 0, false, TB_WS_OP_BINARY, big, 40, false);
	n = frame(buf, n, false, TB_WS_OP_CONT, big, 40, false);
	n = frame(buf, n, true, TB_WS_OP_CONT, big, 20, false);
	assert_int_equal(parse(false, 100, buf, n, &r), 0);
	assert_int_equal(r.msg_len, 100);
	/* The last frame claims one byte more: refused at its header. */
	buf[n - 20 - 1] = 21;
	assert_int_equal(parse(false, 100, buf, n - 20, &r), TB_ERANGE);
	assert_int_equal(r.nmsg, 0);
	/* A header claiming 2^62 bytes fails at once, nothing allocated. */
	buf[0] = 0x82;
	buf[1] = 127;
	tb_put_be64(buf + 2, 1ull << 62);
	assert_int_equal(parse(false, 0, buf, 10, &r), TB_ERANGE);
	assert_int_equal(tb_ws_close_code(TB_ERANGE), 1009);
	assert_int_equal(tb_ws_close_code(TB_EPROTO), 1002);
	rec_reset(&r);
}

/* ---- handshake building and checking ---- */

static tb_http_request_t *parse_req(tb_http_request_t *r, const char *text)
{
	assert_true(tb_http_request_parse((const uint8_t *)text, strlen(text), r) > 0);
	return r;
}

static void test_request_build(void **state)
{
	char out[512];
	tb_ws_request_t req = {.host = "example.org:8765", .path = "/socket", .query = "token=abc"};

	int n = tb_ws_request_build(out, sizeof(out), &req, RFC_KEY);

	assert_int_equal(n, (int)strlen(out));
	assert_string_equal(out, "GET /socket?token=abc HTTP/1.1\r\nHost: example.org:8765\r\n"
				 "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"
				 "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n\r\n");
	req.path = NULL;
	req.query = NULL;
	req.user_agent = "tb/1";
	req.headers = "X-A: 1\r\nOrigin: http://x\r\n";
	assert_true(tb_ws_request_build(out, sizeof(out), &req, RFC_KEY) > 0);
	assert_non_null(strstr(out, "GET / HTTP/1.1\r\n"));
	assert_non_null(strstr(out, "User-Agent: tb/1\r\n"));
	assert_non_null(strstr(out, "Upgrade: websocket\r\nX-A: 1\r\nOrigin: http://x\r\n\r\n"));
	assert_int_equal(tb_ws_request_build(out, 40, &req, RFC_KEY), TB_ERANGE);
	/* Nothing can inject a field or end the head early. */
	static const char *bad_hdrs[] = {"X-A: 1",  "X-A: 1\r\n\r\n", "X A: 1\r\n",
					 ": 1\r\n", "X-A: 1\n",	      "X-A: a\rb\r\n"};
	for (size_t i = 0; i < TB_ARRAY_SIZE(bad_hdrs); i++) {
		req.headers = bad_hdrs[i];
		assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, RFC_KEY), TB_EINVAL);
	}
	req.headers = NULL;
	req.path = "/a b";
	assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, RFC_KEY), TB_EINVAL);
	req.path = "socket";
	assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, RFC_KEY), TB_EINVAL);
	req.path = "/";
	req.host = "h\r\nX: y";
	assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, RFC_KEY), TB_EINVAL);
	req.host = "h";
	req.user_agent = "a\nb";
	assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, RFC_KEY), TB_EINVAL);
	req.user_agent = NULL;
	assert_int_equal(tb_ws_request_build(out, sizeof(out), &req, "short"), TB_EINVAL);
}

#define REQ_HEAD "GET /socket HTTP/1.1\r\nHost: h\r\n"
#define REQ_WS "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define REQ_KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define REQ_V13 "Sec-WebSocket-Version: 13\r\n"

static void test_upgrade_check(void **state)
{
	static const struct {
		const char *req;
		int status;
	} cases[] = {
		{REQ_HEAD REQ_WS REQ_KEY REQ_V13 "\r\n", 0},
		{REQ_HEAD "Upgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n" REQ_KEY REQ_V13 "\r\n",
		 0},
		{REQ_HEAD
		 "Upgrade: h2c, websocket\r\nConnection: x\r\nConnection: Upgrade\r\n" REQ_KEY REQ_V13 "\r\n",
		 0},
		{"POST /socket HTTP/1.1\r\nHost: h\r\n" REQ_WS REQ_KEY REQ_V13 "\r\n", 405},
		{"get /socket HTTP/1.1\r\nHost: h\r\n" REQ_WS REQ_KEY REQ_V13 "\r\n", 405},
		{"GET /socket HTTP/1.0\r\nHost: h\r\n" REQ_WS REQ_KEY REQ_V13 "\r\n", 400},
		{"GET /socket HTTP/1.1\r\n" REQ_WS REQ_KEY REQ_V13 "\r\n", 400},
		{REQ_HEAD "Connection: Upgrade\r\n" REQ_KEY REQ_V13 "\r\n", 400},
		{REQ_HEAD "Upgrade: websockets\r\nConnection: Upgrade\r\n" REQ_KEY REQ_V13 "\r\n", 400},
		{REQ_HEAD "Upgrade: websocket\r\nConnection: Upgraded\r\n" REQ_KEY REQ_V13 "\r\n", 400},
		{REQ_HEAD REQ_WS REQ_KEY "\r\n", 400},
		{REQ_HEAD REQ_WS REQ_KEY "Sec-WebSocket-Version: 8\r\n\r\n", 426},
		{REQ_HEAD REQ_WS REQ_V13 "\r\n", 400},
		{REQ_HEAD REQ_WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" REQ_V13 "\r\n", 400},
		{REQ_HEAD REQ_WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==x\r\n" REQ_V13 "\r\n", 400},
		{REQ_HEAD REQ_WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" REQ_V13 "\r\n", 400},
		{REQ_HEAD REQ_WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXh4eA\r\n" REQ_V13 "\r\n", 400},
		{REQ_HEAD REQ_WS REQ_KEY REQ_KEY REQ_V13 "\r\n", 400},
	};
	tb_http_request_t *r = malloc(sizeof(*r));
	tb_http_span_t key;

	for (size_t i = 0; i < TB_ARRAY_SIZE(cases); i++) {
		key.len = 0;
		parse_req(r, cases[i].req);
		assert_int_equal(tb_ws_upgrade_check(r, &key), cases[i].status);
		if (cases[i].status == 0)
			assert_true(key.len == 24 && memcmp(key.p, RFC_KEY, 24) == 0);
	}
	free(r);
}

static void test_refusal_build(void **state)
{
	char out[256];

	assert_true(tb_ws_refusal_build(out, sizeof(out), 426) > 0);
	assert_true(strncmp(out, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
	assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
	assert_true(tb_ws_refusal_build(out, sizeof(out), 400) > 0);
	assert_true(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 25) == 0);
	assert_true(tb_ws_refusal_build(out, sizeof(out), 405) > 0);
	assert_non_null(strstr(out, "Allow: GET\r\n"));
	assert_int_equal(tb_ws_refusal_build(out, 20, 400), TB_ERANGE);
}

#define ACC_OK "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
#define R101 "HTTP/1.1 101 Switching Protocols\r\n"

static int check_resp(const char *text, int *status, tb_http_span_t *loc)
{
	return tb_ws_response_check((const uint8_t *)text, strlen(text), RFC_KEY, status, loc);
}

static void test_response_check(void **state)
{
	static const char *bad[] = {
		R101 "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		R101
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n",
		R101 "Connection: Upgrade\r\n" ACC_OK "\r\n",
		R101 "Upgrade: websocket\r\n" ACC_OK "\r\n",
		R101 "Upgrade: websocket\r\nConnection: Upgrade\r\n" ACC_OK
		     "Sec-WebSocket-Protocol: foo\r\n\r\n",
		R101 "Upgrade: websocket\r\nConnection: Upgrade\r\n" ACC_OK
		     "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ACC_OK
		"\r\n",
	};
	const char *ok = R101 "upgrade: WEBSOCKET\r\nconnection: upgrade\r\n" ACC_OK "\r\n\x82\x01"
			      "A";
	tb_http_span_t loc;
	int status;

	assert_int_equal(check_resp(ok, &status, &loc), (int)strlen(ok) - 3);
	for (size_t i = 0; i < TB_ARRAY_SIZE(bad); i++)
		assert_int_equal(check_resp(bad[i], &status, &loc), TB_EPROTO);
	assert_int_equal(check_resp("HTTP/1.1 302 Found\r\nLocation: ws://other/socket\r\n\r\n", &status,
				    &loc),
			 TB_EDENIED);
	assert_int_equal(status, 302);
	assert_int_equal(loc.len, strlen("ws://other/socket"));
	assert_memory_equal(loc.p, "ws://other/socket", loc.len);
	assert_int_equal(check_resp("HTTP/1.1 403 Forbidden\r\nLocation: x\r\n\r\n", &status, &loc),
			 TB_EDENIED);
	assert_int_equal(status, 403);
	assert_int_equal(loc.len, 0);
	assert_int_equal(check_resp("HTTP/1.1 101 Switching", &status, &loc), TB_EAGAIN);
	assert_int_equal(check_resp("SSH-2.0-x\r\n\r\n", &status, &loc), TB_EPROTO);
}

/* ---- the endpoint over a mock lower stream ---- */

struct mock {
	tb_stream_t s;
	tb_buf_t out; /* everything written */
	size_t fake_queued;
	bool shut, closed, paused, enobufs;
};

static int mock_write(tb_stream_t *s, const void *d, size_t n)
{
	struct mock *m = (struct mock *)s;

	assert_false(m->closed);
	if (m->shut)
		return TB_EPIPE;
	assert_int_equal(tb_buf_append(&m->out, d, n), 0);
	return m->enobufs ? TB_ENOBUFS : 0;
}
static int mock_shutdown(tb_stream_t *s)
{
	((struct mock *)s)->shut = true;
	return 0;
}
static void mock_close(tb_stream_t *s)
{
	((struct mock *)s)->closed = true;
}
static void mock_pause(tb_stream_t *s)
{
	((struct mock *)s)->paused = true;
}
static void mock_resume(tb_stream_t *s)
{
	((struct mock *)s)->paused = false;
}
static size_t mock_queued(const tb_stream_t *s)
{
	return ((const struct mock *)s)->fake_queued;
}
static const tb_stream_ops_t mock_ops = {mock_write, mock_shutdown, mock_close,
					 mock_pause, mock_resume,   mock_queued};

static void mock_init(struct mock *m)
{
	memset(m, 0, sizeof(*m));
	m->s.ops = &mock_ops;
	m->s.hiwat = 1000;
	tb_buf_init(&m->out);
}

static void mock_in(struct mock *m, const uint8_t *d, size_t n)
{
	m->s.h->on_data(m->s.ctx, &m->s, d, n);
}

/* Takes what the endpoint wrote and parses it as the peer would. */
static void mock_out(struct mock *m, bool peer_is_server, struct rec *r)
{
	size_t n = tb_buf_len(&m->out);
	const uint8_t *p = n ? tb_buf_pullup(&m->out, n) : (const uint8_t *)"";

	assert_int_equal(parse(peer_is_server, 0, p, n, r), 0);
	tb_buf_consume(&m->out, n);
}

struct ep {
	tb_ws_t *ws;
	size_t nmsg, npong, ndrain, nclose, nopen;
	uint8_t last[256];
	size_t last_len;
	int code, err;
	bool free_in_message, pause_in_message, send_in_message;
};

static void ep_open(void *ctx, tb_ws_t *ws)
{
	((struct ep *)ctx)->nopen++;
}

static void ep_message(void *ctx, tb_ws_t *ws, unsigned op, const uint8_t *d, size_t n)
{
	struct ep *e = ctx;

	e->nmsg++;
	e->last_len = TB_MIN(n, sizeof(e->last));
	memcpy(e->last, d, e->last_len);
	if (e->send_in_message)
		assert_int_equal(tb_ws_send(ws, op, d, n), 0);
	if (e->pause_in_message)
		tb_ws_pause(ws);
	if (e->free_in_message) {
		tb_ws_free(ws);
		e->ws = NULL;
	}
}

static void ep_pong(void *ctx, tb_ws_t *ws, const uint8_t *d, size_t n)
{
	((struct ep *)ctx)->npong++;
}

static void ep_drain(void *ctx, tb_ws_t *ws)
{
	((struct ep *)ctx)->ndrain++;
}

static void ep_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct ep *e = ctx;

	e->nclose++;
	e->code = code;
	e->err = err;
	tb_ws_free(ws);
	e->ws = NULL;
}

static const tb_ws_handler_t ep_h = {ep_open, ep_message, ep_pong, ep_drain, ep_close};

/* A server endpoint on a mock, the 101 already taken off its output. */
static void mock_server(tb_loop_t *loop, struct mock *m, struct ep *e, const uint8_t *rest, size_t n,
			const tb_ws_opts_t *o)
{
	size_t len;
	const uint8_t *p;
	char want[256];
	int wl = tb_ws_response_build(want, sizeof(want), RFC_KEY, 24);

	mock_init(m);
	memset(e, 0, sizeof(*e));
	assert_int_equal(tb_ws_server_new(loop, &m->s, RFC_KEY, 24, rest, n, o, &ep_h, e, &e->ws), 0);
	len = tb_buf_len(&m->out);
	assert_int_equal(len, (size_t)wl);
	p = tb_buf_pullup(&m->out, len);
	assert_memory_equal(p, want, len);
	tb_buf_consume(&m->out, len);
}

static void turns(tb_loop_t *loop, int n)
{
	for (int i = 0; i < n; i++)
		tb_loop_once(loop, 0);
}

static void test_endpoint_server_basics(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	uint8_t in[512];
	struct mock m;
	struct ep e;
	struct rec r = {0};
	size_t n;

	/* Frames that came with the request are parsed from the loop. */
	n = frame(in, 0, true, TB_WS_OP_BINARY, "early", 5, true);
	mock_server(loop, &m, &e, in, n, NULL);
	assert_int_equal(e.nmsg, 0);
	turns(loop, 2);
	assert_int_equal(e.nmsg, 1);
	assert_memory_equal(e.last, "early", 5);
	assert_int_equal(e.nopen, 0);
	/* A ping is answered with its payload; pongs reach the owner. */
	n = frame(in, 0, true, TB_WS_OP_PING, "abc", 3, true);
	n = frame(in, n, true, TB_WS_OP_PONG, "", 0, true);
	mock_in(&m, in, n);
	assert_int_equal(e.npong, 1);
	mock_out(&m, false, &r);
	assert_int_equal(r.nctl, 1);
	assert_int_equal(r.ctl_op[0], TB_WS_OP_PONG);
	assert_memory_equal(r.ctl[0], "abc", 3);
	/* Sends are single unmasked frames; send2 joins two parts. */
	assert_int_equal(tb_ws_send2(e.ws, TB_WS_OP_BINARY, "he", 2, "llo", 3), 0);
	mock_out(&m, false, &r);
	assert_int_equal(r.nmsg, 1);
	assert_memory_equal(r.msg, "hello", 5);
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_CLOSE, "x", 1), TB_EINVAL);
	assert_int_equal(tb_ws_ping(e.ws, in, 126), TB_EINVAL);
	/* The peer's close is echoed, then a half-close and the EOF end it. */
	tb_put_be16(in + 100, 4001);
	n = frame(in, 0, true, TB_WS_OP_CLOSE, in + 100, 2, true);
	n = frame(in, n, true, TB_WS_OP_BINARY, "late", 4, true);
	mock_in(&m, in, n);
	assert_int_equal(e.nmsg, 1); /* nothing after the Close */
	mock_out(&m, false, &r);
	assert_int_equal(r.ctl_op[0], TB_WS_OP_CLOSE);
	assert_int_equal(r.ctl_len[0], 2);
	assert_int_equal(tb_be16(r.ctl[0]), 4001);
	assert_true(m.shut);
	assert_int_equal(e.nclose, 0);
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_BINARY, "x", 1), TB_EPIPE);
	m.s.h->on_eof(m.s.ctx, &m.s);
	assert_int_equal(e.nclose, 1);
	assert_int_equal(e.code, 4001);
	assert_int_equal(e.err, 0);
	assert_true(m.closed);
	rec_reset(&r);
	tb_buf_free(&m.out);
	tb_loop_free(loop);
}

static void test_endpoint_protocol_errors(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_ws_opts_t o = {.max_message = 10};
	uint8_t in[512];
	struct mock m;
	struct ep e;
	struct rec r = {0};
	size_t n;

	/* Unmasked at a server: Close 1002, linger, on_close(1002, EPROTO). */
	mock_server(loop, &m, &e, NULL, 0, &o);
	n = frame(in, 0, true, TB_WS_OP_BINARY, "x", 1, false);
	mock_in(&m, in, n);
	mock_out(&m, false, &r);
	assert_int_equal(r.ctl_op[0], TB_WS_OP_CLOSE);
	assert_int_equal(tb_be16(r.ctl[0]), 1002);
	assert_true(m.shut);
	m.s.h->on_eof(m.s.ctx, &m.s);
	assert_int_equal(e.code, 1002);
	assert_int_equal(e.err, TB_EPROTO);
	tb_buf_free(&m.out);
	/* Too big: 1009; the peer never closes, the linger timer ends it. */
	o.close_timeout_ms = 20;
	mock_server(loop, &m, &e, NULL, 0, &o);
	n = frame(in, 0, true, TB_WS_OP_BINARY, "0123456789x", 11, true);
	mock_in(&m, in, n);
	mock_out(&m, false, &r);
	assert_int_equal(tb_be16(r.ctl[0]), 1009);
	for (int i = 0; i < 100 && !e.nclose; i++)
		tb_loop_once(loop, 5);
	assert_int_equal(e.nclose, 1);
	assert_int_equal(e.code, 1009);
	assert_int_equal(e.err, TB_ERANGE);
	assert_true(m.closed);
	tb_buf_free(&m.out);
	rec_reset(&r);
	tb_loop_free(loop);
}

static void test_endpoint_close_and_abort(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_ws_opts_t o = {.close_timeout_ms = 20};
	uint8_t in[64];
	struct mock m;
	struct ep e;
	struct rec r = {0};
	size_t n;

	/* We close: Close 1000 "bye", messages meanwhile dropped, the
	 * peer's Close ends the handshake. */
	mock_server(loop, &m, &e, NULL, 0, &o);
	assert_int_equal(tb_ws_close(e.ws, 1005, NULL), TB_EINVAL);
	assert_int_equal(tb_ws_close(e.ws, 0, "reason without code"), TB_EINVAL);
	assert_int_equal(tb_ws_close(e.ws, 1000, "bye"), 0);
	mock_out(&m, false, &r);
	assert_int_equal(r.ctl_len[0], 5);
	assert_memory_equal(r.ctl[0],
			    "\x03\xe8"
			    "bye",
			    5);
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_BINARY, "x", 1), TB_EPIPE);
	n = frame(in, 0, true, TB_WS_OP_BINARY, "x", 1, true);
	tb_put_be16(in + 40, 1000);
	n = frame(in, n, true, TB_WS_OP_CLOSE, in + 40, 2, true);
	mock_in(&m, in, n);
	assert_int_equal(e.nmsg, 0);
	assert_int_equal(tb_buf_len(&m.out), 0); /* no second Close */
	assert_true(m.shut);
	m.s.h->on_close(m.s.ctx, &m.s, TB_ECONNRESET);
	assert_int_equal(e.code, 1000);
	assert_int_equal(e.err, 0);
	tb_buf_free(&m.out);
	/* No answer to our Close: 1006, timed out. */
	mock_server(loop, &m, &e, NULL, 0, &o);
	assert_int_equal(tb_ws_close(e.ws, 1001, NULL), 0);
	for (int i = 0; i < 100 && !e.nclose; i++)
		tb_loop_once(loop, 5);
	assert_int_equal(e.code, 1006);
	assert_int_equal(e.err, TB_ETIMEDOUT);
	tb_buf_free(&m.out);
	/* Abort: no Close frame, queued bytes go out (shutdown), then 1006. */
	mock_server(loop, &m, &e, NULL, 0, &o);
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_BINARY, "last", 4), 0);
	tb_ws_abort(e.ws);
	assert_true(m.shut && !m.closed);
	mock_out(&m, false, &r);
	assert_int_equal(r.nctl, 0);
	assert_int_equal(r.nmsg, 1);
	m.s.h->on_eof(m.s.ctx, &m.s);
	assert_int_equal(e.code, 1006);
	assert_int_equal(e.err, 0);
	/* EOF with no Close: 1006, reset. */
	tb_buf_free(&m.out);
	mock_server(loop, &m, &e, NULL, 0, &o);
	m.s.h->on_eof(m.s.ctx, &m.s);
	assert_int_equal(e.code, 1006);
	assert_int_equal(e.err, TB_ECONNRESET);
	tb_buf_free(&m.out);
	rec_reset(&r);
	tb_loop_free(loop);
}

static void test_endpoint_pause_and_free(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	uint8_t in[256];
	struct mock m;
	struct ep e;
	size_t n = 0;

	for (int i = 0; i < 5; i++)
		n = frame(in, n, true, TB_WS_OP_BINARY, "m", 1, true);
	/* Pausing inside on_message keeps the rest for resume; the lower
	 * stream is paused meanwhile, and an EOF waits behind held input. */
	mock_server(loop, &m, &e, NULL, 0, NULL);
	e.pause_in_message = true;
	mock_in(&m, in, n);
	assert_int_equal(e.nmsg, 1);
	assert_true(m.paused);
	m.s.h->on_eof(m.s.ctx, &m.s);
	assert_int_equal(e.nclose, 0);
	for (int i = 2; i <= 5; i++) {
		tb_ws_resume(e.ws);
		assert_int_equal(e.nmsg, (size_t)i - 1); /* never inside resume() */
		turns(loop, 1);
		assert_int_equal(e.nmsg, (size_t)i);
	}
	tb_ws_resume(e.ws);
	turns(loop, 1);
	assert_int_equal(e.nclose, 1);
	assert_int_equal(e.err, TB_ECONNRESET);
	tb_buf_free(&m.out);
	/* Freeing inside on_message with more frames in the same read. */
	mock_server(loop, &m, &e, NULL, 0, NULL);
	e.free_in_message = true;
	mock_in(&m, in, n);
	assert_int_equal(e.nmsg, 1);
	assert_true(m.closed);
	tb_buf_free(&m.out);
	/* Backpressure: TB_ENOBUFS, then on_drain; pings wait behind a full
	 * queue and only the latest is answered. */
	struct rec r = {0};

	mock_server(loop, &m, &e, NULL, 0, NULL);
	m.enobufs = true;
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_BINARY, "x", 1), TB_ENOBUFS);
	m.fake_queued = 5000;
	n = frame(in, 0, true, TB_WS_OP_PING, "1", 1, true);
	n = frame(in, n, true, TB_WS_OP_PING, "2", 1, true);
	mock_in(&m, in, n);
	tb_buf_consume(&m.out, tb_buf_len(&m.out));
	m.enobufs = false;
	m.fake_queued = 0;
	m.s.h->on_drain(m.s.ctx, &m.s);
	assert_int_equal(e.ndrain, 1);
	mock_out(&m, false, &r);
	assert_int_equal(r.nctl, 1);
	assert_memory_equal(r.ctl[0], "2", 1);
	tb_ws_free(e.ws);
	tb_buf_free(&m.out);
	rec_reset(&r);
	tb_loop_free(loop);
}

/* A client endpoint on a mock: the request, the 101 with a frame behind
 * it in the same read, masked fragments when max_frame is set. */
static void test_endpoint_client_mock(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	tb_ws_request_t req = {.host = "h:1", .path = "/socket", .user_agent = "ua"};
	tb_ws_opts_t o = {.max_frame = 4};
	tb_http_request_t *hr = malloc(sizeof(*hr));
	uint8_t in[512], big[10];
	char resp[256];
	struct mock m;
	struct ep e = {0};
	struct rec r = {0};
	tb_http_span_t key;
	const uint8_t *p;
	size_t n;
	int rl;

	mock_init(&m);
	assert_int_equal(tb_ws_client_new(loop, &m.s, &req, &o, &ep_h, &e, &e.ws), 0);
	n = tb_buf_len(&m.out);
	p = tb_buf_pullup(&m.out, n);
	assert_int_equal(tb_http_request_parse(p, n, hr), (int)n);
	assert_int_equal(tb_ws_upgrade_check(hr, &key), 0);
	rl = tb_ws_response_build(resp, sizeof(resp), key.p, key.len);
	tb_buf_consume(&m.out, n);
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_BINARY, "x", 1), TB_EPIPE);
	memcpy(in, resp, (size_t)rl);
	n = frame(in, (size_t)rl, true, TB_WS_OP_BINARY, "\x01\x02\x01", 3, false);
	/* Split inside the head, then the rest with the frame; paused and
	 * resumed in between, the lower stream reads again. */
	tb_ws_pause(e.ws);
	assert_true(m.paused);
	mock_in(&m, in, 20);
	tb_ws_resume(e.ws);
	turns(loop, 1);
	assert_false(m.paused);
	assert_int_equal(e.nopen, 0);
	mock_in(&m, in + 20, n - 20);
	assert_int_equal(e.nopen, 1);
	assert_int_equal(e.nmsg, 1);
	assert_memory_equal(e.last, "\x01\x02\x01", 3);
	/* 10 bytes in frames of 4: 4 + 4 + 2, all masked (a server parses). */
	memset(big, 7, sizeof(big));
	assert_int_equal(tb_ws_send(e.ws, TB_WS_OP_BINARY, big, sizeof(big)), 0);
	n = tb_buf_len(&m.out);
	p = tb_buf_pullup(&m.out, n);
	assert_int_equal(n, 3 * 6 + 10);
	assert_int_equal(p[0], 0x02);
	assert_int_equal(p[10], 0x00);
	assert_int_equal(p[20], 0x80);
	assert_int_equal(parse(true, 0, p, n, &r), 0);
	assert_int_equal(r.msg_len, 10);
	assert_memory_equal(r.msg, big, 10);
	tb_buf_consume(&m.out, n);
	tb_ws_free(e.ws);
	assert_true(m.closed);
	tb_buf_free(&m.out);
	rec_reset(&r);
	free(hr);
	tb_loop_free(loop);
}

static int g_status;
static char g_location[64];

static void keep_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct ep *e = ctx;

	e->nclose++;
	e->code = code;
	e->err = err;
	g_status = tb_ws_http_status(ws);
	snprintf(g_location, sizeof(g_location), "%s", tb_ws_location(ws) ? tb_ws_location(ws) : "");
	tb_ws_free(ws);
}

static void test_endpoint_client_redirect(void **state)
{
	static const char redir[] = "HTTP/1.1 308 Permanent Redirect\r\nLocation: wss://x/socket\r\n\r\n";
	static const tb_ws_handler_t h = {NULL, NULL, NULL, NULL, keep_close};
	tb_loop_t *loop = tb_loop_new();
	tb_ws_request_t req = {.host = "h"};
	struct mock m;
	struct ep e = {0};
	tb_ws_t *ws;

	mock_init(&m);
	assert_int_equal(tb_ws_client_new(loop, &m.s, &req, NULL, &h, &e, &ws), 0);
	mock_in(&m, (const uint8_t *)redir, sizeof(redir) - 1);
	assert_int_equal(e.nclose, 1);
	assert_int_equal(e.err, TB_EDENIED);
	assert_int_equal(g_status, 308);
	assert_string_equal(g_location, "wss://x/socket");
	assert_true(m.closed);
	tb_buf_free(&m.out);
	/* EOF in the middle of the 101. */
	mock_init(&m);
	memset(&e, 0, sizeof(e));
	assert_int_equal(tb_ws_client_new(loop, &m.s, &req, NULL, &h, &e, &ws), 0);
	mock_in(&m, (const uint8_t *)redir, 10);
	m.s.h->on_eof(m.s.ctx, &m.s);
	assert_int_equal(e.nclose, 1);
	assert_int_equal(e.err, TB_ECONNRESET);
	tb_buf_free(&m.out);
	/* A bad request is refused before anything is written. */
	mock_init(&m);
	req.path = "no-slash";
	assert_int_equal(tb_ws_client_new(loop, &m.s, &req, NULL, &h, &e, &ws), TB_EINVAL);
	assert_int_equal(tb_buf_len(&m.out), 0);
	tb_loop_free(loop);
}

/* ---- end to end over loopback TCP ---- */

static const size_t e2e_sizes[] = {0, 1, 125, 126, 65535, 65536, 1u << 20};
#define E2E_N TB_ARRAY_SIZE(e2e_sizes)

static uint8_t pattern(size_t i, size_t m)
{
	return (uint8_t)(i * 31 + m * 7 + (i >> 9));
}

struct srv {
	tb_loop_t *loop;
	tb_stream_t *s; /* before the upgrade */
	tb_buf_t head;
	tb_ws_t *ws;
	size_t echoed, pauses;
	int code, err;
	bool closed, close_first;
	uint16_t close_code;
	tb_ws_opts_t opts;
};

struct cli {
	tb_ws_t *ws;
	size_t sent, got, pongs;
	int code, err;
	bool open, closed, close_first;
	uint16_t close_code;
};

static void srv_message(void *ctx, tb_ws_t *ws, unsigned op, const uint8_t *d, size_t n)
{
	struct srv *s = ctx;
	int rc = tb_ws_send(ws, op, d, n);

	s->echoed++;
	if (rc == TB_ENOBUFS) { /* backpressure: stop reading until drained */
		s->pauses++;
		tb_ws_pause(ws);
	} else {
		assert_int_equal(rc, 0);
	}
	if (s->close_first && s->echoed == E2E_N)
		assert_int_equal(tb_ws_close(ws, s->close_code, "server done"), 0);
}

static void srv_drain(void *ctx, tb_ws_t *ws)
{
	tb_ws_resume(ws);
}

static void srv_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct srv *s = ctx;

	s->closed = true;
	s->code = code;
	s->err = err;
	tb_ws_free(ws);
	s->ws = NULL;
}

static const tb_ws_handler_t srv_h = {NULL, srv_message, NULL, srv_drain, srv_close};

static void srv_data(void *ctx, tb_stream_t *st, const uint8_t *d, size_t n)
{
	struct srv *s = ctx;
	tb_http_request_t *r = malloc(sizeof(*r));
	const uint8_t *p;
	tb_http_span_t key;
	int hl;

	assert_int_equal(tb_buf_append(&s->head, d, n), 0);
	p = tb_buf_pullup(&s->head, tb_buf_len(&s->head));
	hl = tb_http_request_parse(p, tb_buf_len(&s->head), r);
	if (hl == TB_EAGAIN) {
		free(r);
		return;
	}
	assert_true(hl > 0);
	assert_int_equal(tb_ws_upgrade_check(r, &key), 0);
	assert_true(r->target.len == 8 && memcmp(r->target.p, "/e2e?x=1", 8) == 0);
	assert_int_equal(tb_ws_server_new(s->loop, st, key.p, key.len, p + hl,
					  tb_buf_len(&s->head) - (size_t)hl, &s->opts, &srv_h, s, &s->ws),
			 0);
	s->s = NULL;
	tb_buf_free(&s->head);
	free(r);
}

static const tb_stream_handler_t srv_raw_h = {srv_data, NULL, NULL, NULL};

static void srv_accept(void *arg, tb_stream_t *st, const tb_addr_t *peer)
{
	struct srv *s = arg;

	s->s = st;
	tb_stream_set_handler(st, &srv_raw_h, s);
}

static void cli_send_next(struct cli *c)
{
	while (c->sent < E2E_N && c->sent == c->got) { /* one in flight: echoes come in order anyway */
		size_t n = e2e_sizes[c->sent];
		uint8_t *b = malloc(n + 1);
		int rc;

		for (size_t i = 0; i < n; i++)
			b[i] = pattern(i, c->sent);
		rc = tb_ws_send(c->ws, TB_WS_OP_BINARY, b, n);
		assert_true(rc == 0 || rc == TB_ENOBUFS);
		free(b);
		c->sent++;
	}
}

static void cli_open(void *ctx, tb_ws_t *ws)
{
	struct cli *c = ctx;

	c->open = true;
	assert_int_equal(tb_ws_ping(ws, "hi", 2), 0);
	cli_send_next(c);
}

static void cli_message(void *ctx, tb_ws_t *ws, unsigned op, const uint8_t *d, size_t n)
{
	struct cli *c = ctx;

	assert_int_equal(op, TB_WS_OP_BINARY);
	assert_true(c->got < E2E_N);
	assert_int_equal(n, e2e_sizes[c->got]);
	for (size_t i = 0; i < n; i++)
		if (d[i] != pattern(i, c->got))
			fail_msg("message %zu byte %zu differs", c->got, i);
	c->got++;
	if (c->got < E2E_N)
		cli_send_next(c);
	else if (!c->close_first)
		assert_int_equal(tb_ws_close(ws, c->close_code, NULL), 0);
}

static void cli_pong(void *ctx, tb_ws_t *ws, const uint8_t *d, size_t n)
{
	struct cli *c = ctx;

	assert_true(n == 2 && memcmp(d, "hi", 2) == 0);
	c->pongs++;
}

static void cli_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct cli *c = ctx;

	c->closed = true;
	c->code = code;
	c->err = err;
	tb_ws_free(ws);
	c->ws = NULL;
}

static const tb_ws_handler_t cli_h = {cli_open, cli_message, cli_pong, NULL, cli_close};

struct conn_ctx {
	tb_loop_t *loop;
	struct cli *c;
	tb_ws_opts_t opts;
};

static void cli_connected(void *arg, tb_stream_t *s, int err)
{
	struct conn_ctx *cc = arg;
	tb_ws_request_t req = {.host = "127.0.0.1", .path = "/e2e", .query = "x=1", .user_agent = "test_ws"};

	assert_int_equal(err, 0);
	assert_int_equal(tb_ws_client_new(cc->loop, s, &req, &cc->opts, &cli_h, cc->c, &cc->c->ws), 0);
}

/* Both ends ours: every size each way, a ping, the close handshake with
 * the closing side's code reported on both ends. */
static void e2e(size_t cli_frame, size_t srv_frame, bool server_closes, uint16_t code)
{
	tb_loop_t *loop = tb_loop_new();
	struct srv s = {.loop = loop, .close_first = server_closes, .close_code = code};
	struct cli c = {.close_first = server_closes, .close_code = code};
	struct conn_ctx cc = {loop, &c, {.max_frame = cli_frame}};
	tb_tcp_listener_t *l;
	tb_addr_t a;

	s.opts.max_frame = srv_frame;
	tb_buf_init(&s.head);
	assert_int_equal(tb_addr_parse_ip("127.0.0.1", &a), 0);
	a.port = 0;
	assert_int_equal(tb_tcp_listen(loop, &a, NULL, srv_accept, &s, &l), 0);
	tb_tcp_listener_addr(l, &a);
	assert_int_equal(tb_tcp_connect(loop, &a, 2000, cli_connected, &cc, NULL), 0);
	for (int i = 0; i < 3000 && !(s.closed && c.closed); i++)
		tb_loop_once(loop, 10);
	assert_true(c.open);
	assert_int_equal(c.got, E2E_N);
	assert_int_equal(s.echoed, E2E_N);
	assert_int_equal(c.pongs, 1);
	assert_true(s.closed && c.closed);
	assert_int_equal(s.code, code);
	assert_int_equal(c.code, code);
	assert_int_equal(s.err, 0);
	assert_int_equal(c.err, 0);
	tb_tcp_listener_close(l);
	tb_loop_free(loop);
}

static void test_e2e_tcp(void **state)
{
	e2e(0, 0, false, 1000);
}

static void test_e2e_tcp_fragmented(void **state)
{
	/* The reference client's 4096-byte fragments (spec/linksocks.md §2.4);
	 * odd-sized server fragments; the server closes with 4000. */
	e2e(4096, 1000, true, 4000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_fragmented),
		cmocka_unit_test(test_vector_single_frames),
		cmocka_unit_test(test_vector_101),
		cmocka_unit_test(test_vector_request),
		cmocka_unit_test(test_accept_key),
		cmocka_unit_test(test_mask),
		cmocka_unit_test(test_frame_header_lengths),
		cmocka_unit_test(test_frame_decode_rules),
		cmocka_unit_test(test_parser_fragments_and_control),
		cmocka_unit_test(test_parser_protocol_errors),
		cmocka_unit_test(test_parser_close_payloads),
		cmocka_unit_test(test_parser_too_big),
		cmocka_unit_test(test_request_build),
		cmocka_unit_test(test_upgrade_check),
		cmocka_unit_test(test_refusal_build),
		cmocka_unit_test(test_response_check),
		cmocka_unit_test(test_endpoint_server_basics),
		cmocka_unit_test(test_endpoint_protocol_errors),
		cmocka_unit_test(test_endpoint_close_and_abort),
		cmocka_unit_test(test_endpoint_pause_and_free),
		cmocka_unit_test(test_endpoint_client_mock),
		cmocka_unit_test(test_endpoint_client_redirect),
		cmocka_unit_test(test_e2e_tcp),
		cmocka_unit_test(test_e2e_tcp_fragmented),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
