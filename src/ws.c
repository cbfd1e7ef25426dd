/* ws.c: WebSocket (RFC 6455) of ws.h.
 *
 * Three layers, each usable alone: the frame codec and the opening
 * handshake (pure functions), the reassembling parser (sans-IO, with
 * callbacks), and the endpoint that joins a parser to a lower stream.
 *
 * The endpoint keeps the bytes it cannot parse yet (the client's handshake,
 * input that arrived while paused) in one tb_buf_t; everything else flows
 * through. A message inside one read reaches on_message without a copy (a
 * server unmasks it into scratch memory, which costs what unmasking in place
 * would). Callbacks may free the endpoint: the in_cb counter defers the free
 * until the outermost entry point returns, as port/posix/tcp.c does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha1.h>
#include <mbedtls/version.h>

#include "tb/log.h"
#include "tb/port.h"
#include "tb/ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* §1.3 */
#define SCRATCH 4096u				       /* stack bytes for (un)masking */
#define SEND_CHUNK 65536u			       /* heap bytes a client masks a big frame through */
#define POOL 64u				       /* random bytes fetched at once: 16 masks */
#define HOLD_MAX (1u << 20) /* input held while paused (a lower stream stops at once) */

static const uint8_t empty[1];

/* ---- base64 (RFC 4648 §4), encoding only: http.c decodes ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

/* ---- frames (§5.2) ---- */

static bool opcode_known(unsigned op)
{
	return op <= TB_WS_OP_BINARY || (op >= TB_WS_OP_CLOSE && op <= TB_WS_OP_PONG);
}

int tb_ws_frame_decode(const uint8_t *p, size_t n, tb_ws_frame_t *f)
{
	unsigned len7;
	size_t need;

	if (n < 1)
		return TB_EAGAIN;
	/* RSV1-3 need a negotiated extension; we never negotiate one. */
	if (p[0] & 0x70)
		return TB_EPROTO;
	f->fin = (p[0] & 0x80) != 0;
	f->opcode = p[0] & 0x0f;
	/* §5.5: control frames are never fragmented. */
	if (!opcode_known(f->opcode) || (f->opcode >= TB_WS_OP_CLOSE && !f->fin))
		return TB_EPROTO;
	if (n < 2)
		return TB_EAGAIN;
	f->masked = (p[1] & 0x80) != 0;
	len7 = p[1] & 0x7f;
	if (f->opcode >= TB_WS_OP_CLOSE && len7 > TB_WS_CONTROL_MAX)
		return TB_EPROTO;
	need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (f->masked ? 4 : 0);
	if (n < need)
		return TB_EAGAIN;
	if (len7 == 126)
		f->len = tb_be16(p + 2);
	else if (len7 == 127)
		f->len = tb_be64(p + 2);
	else
		f->len = len7;
	/* §5.2: "the most significant bit MUST be 0". */
	if (f->len >> 63)
		return TB_EPROTO;
	if (f->masked)
		memcpy(f->mask, p + need - 4, 4);
	else
		memset(f->mask, 0, 4);
	f->header_len = (uint8_t)need;
	return (int)need;
}

size_t tb_ws_frame_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len, const uint8_t *mask)
{
	size_t n = 2;

	out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		out[1] = (uint8_t)len;
	} else if (len <= 0xffff) {
		out[1] = 126;
		tb_put_be16(out + 2, (uint16_t)len);
		n = 4;
	} else {
		out[1] = 127;
		tb_put_be64(out + 2, len);
		n = 10;
	}
	if (mask) {
		out[1] |= 0x80;
		memcpy(out + n, mask, 4);
		n += 4;
	}
	return n;
}

/* Word-wide XOR: the key is rotated to the start offset and repeated into
 * 8 bytes, then applied a word at a time through memcpy (any alignment,
 * either byte order: the key is laid out in memory as the data is). */
size_t tb_ws_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4], size_t off)
{
	uint8_t k[8];
	uint64_t kw, a, b;
	size_t i = 0;

	for (unsigned j = 0; j < 8; j++)
		k[j] = mask[(off + j) & 3];
	memcpy(&kw, k, 8);
	for (; i + 16 <= n; i += 16) {
		memcpy(&a, src + i, 8);
		memcpy(&b, src + i + 8, 8);
		a ^= kw;
		b ^= kw;
		memcpy(dst + i, &a, 8);
		memcpy(dst + i + 8, &b, 8);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ k[i & 7];
	return (off + n) & 3;
}

/* ---- the opening handshake (§4) ---- */

int tb_ws_accept_key(const char *key, size_t key_len, char out[TB_WS_ACCEPT_LEN + 1])
{
	uint8_t buf[64 + sizeof(WS_GUID)], md[20];
	int rc;

	if (key_len > 64)
		return TB_EINVAL;
	if (key_len)
		memcpy(buf, key, key_len);
	memcpy(buf + key_len, WS_GUID, sizeof(WS_GUID) - 1);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	rc = mbedtls_sha1(buf, key_len + sizeof(WS_GUID) - 1, md);
#else
	rc = mbedtls_sha1_ret(buf, key_len + sizeof(WS_GUID) - 1, md);
#endif
	if (rc != 0)
		return TB_EINVAL;
	b64_encode(md, sizeof(md), out);
	return 0;
}

int tb_ws_key_new(char out[TB_WS_KEY_LEN + 1])
{
	uint8_t r[16];
	int rc = tb_port_random(r, sizeof(r));

	if (rc < 0)
		return rc;
	b64_encode(r, sizeof(r), out);
	return 0;
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(int c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* What a request line or a Host field can carry: visible ASCII. */
static bool visible(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* RFC 9110 §5.5 field-value: no control character but HTAB. */
static bool value_ok(const char *s, const char *end)
{
	for (; s < end; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

/* Extra fields: "Name: value" lines, each ended by CRLF, and nothing else
 * (no empty line that would end the head early). */
static bool fields_ok(const char *s)
{
	while (*s) {
		const char *eol = strstr(s, "\r\n"), *colon, *p;

		if (!eol)
			return false;
		colon = memchr(s, ':', (size_t)(eol - s));
		if (!colon || colon == s)
			return false;
		for (p = s; p < colon; p++)
			if (!is_tchar((unsigned char)*p))
				return false;
		if (!value_ok(colon + 1, eol))
			return false;
		s = eol + 2;
	}
	return true;
}

int tb_ws_request_build(char *out, size_t cap, const tb_ws_request_t *req, const char *key)
{
	const char *path = req->path && *req->path ? req->path : "/";
	const char *q = req->query ? req->query : "", *ua = req->user_agent;
	const char *extra = req->headers ? req->headers : "";
	int n;

	if (!req->host || !*req->host || !visible(req->host) || path[0] != '/' || !visible(path) ||
	    !visible(q) || (ua && !value_ok(ua, ua + strlen(ua))) || !fields_ok(extra) ||
	    strlen(key) != TB_WS_KEY_LEN || !visible(key))
		return TB_EINVAL;
	/* spec/linksocks.md §2.4: the reference client's field order. */
	n = snprintf(out, cap,
		     "GET %s%s%s HTTP/1.1\r\nHost: %s\r\n%s%s%sConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n%s\r\n",
		     path, *q ? "?" : "", q, req->host, ua ? "User-Agent: " : "", ua ? ua : "",
		     ua ? "\r\n" : "", key, extra);
	if (n < 0 || (size_t)n >= cap)
		return TB_ERANGE;
	return n;
}

static bool span_is(const tb_http_span_t *s, const char *str)
{
	return s->len == strlen(str) && memcmp(s->p, str, s->len) == 0;
}

/* Does any field called name hold token in its comma-separated list,
 * case-insensitively (RFC 9110 §5.6.1)? "Connection: keep-alive, Upgrade". */
static bool list_has(const tb_http_request_t *r, const char *name, const char *token)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		const tb_http_span_t *v = &r->headers[i].value;
		const char *p = v->p, *end = v->p + v->len;

		if (!tb_http_span_eq(&r->headers[i].name, name))
			continue;
		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma ? comma : end;
			tb_http_span_t t;

			while (p < e && (*p == ' ' || *p == '\t'))
				p++;
			while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			t.p = p;
			t.len = (size_t)(e - p);
			if (tb_http_span_eq(&t, token))
				return true;
			p = comma ? comma + 1 : end;
		}
	}
	return false;
}

static size_t count_fields(const tb_http_request_t *r, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		n += tb_http_span_eq(&r->headers[i].name, name);
	return n;
}

int tb_ws_upgrade_check(const tb_http_request_t *r, tb_http_span_t *key)
{
	const tb_http_span_t *k, *v;
	uint8_t raw[18];

	/* §4.2.1: the method is case-sensitive (RFC 9110 §9.1). */
	if (!span_is(&r->method, "GET"))
		return 405;
	if (r->minor < 1 || count_fields(r, "Host") != 1)
		return 400;
	if (!list_has(r, "Upgrade", "websocket") || !list_has(r, "Connection", "upgrade"))
		return 400;
	v = tb_http_header_get(r, "Sec-WebSocket-Version");
	if (!v)
		return 400;
	/* §4.4: any other version is answered with the one we speak. */
	if (!span_is(v, "13") || count_fields(r, "Sec-WebSocket-Version") != 1)
		return 426;
	k = tb_http_header_get(r, "Sec-WebSocket-Key");
	if (!k || count_fields(r, "Sec-WebSocket-Key") != 1 || k->len != TB_WS_KEY_LEN ||
	    tb_http_base64_decode(k->p, k->len, raw, sizeof(raw)) != 16)
		return 400;
	*key = *k;
	return 0;
}

int tb_ws_refusal_build(char *out, size_t cap, int status)
{
	const char *reason = tb_http_reason(status), *extra = "";
	int n;

	if (status == 405) {
		reason = "Method Not Allowed";
		extra = "Allow: GET\r\n";
	} else if (status == 426) {
		/* RFC 9110 §15.5.22 wants Upgrade; §4.4 the version we speak. */
		reason = "Upgrade Required";
		extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
	}
	if (status < 100 || status > 999)
		return TB_ERANGE;
	n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%sConnection: close\r\nContent-Length: 0\r\n\r\n", status,
		     reason, extra);
	if (n < 0 || (size_t)n >= cap)
		return TB_ERANGE;
	return n;
}

int tb_ws_response_build(char *out, size_t cap, const char *key, size_t key_len)
{
	char acc[TB_WS_ACCEPT_LEN + 1];
	int n;

	if (tb_ws_accept_key(key, key_len, acc) < 0)
		return TB_EINVAL;
	n = snprintf(out, cap,
		     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		     acc);
	if (n < 0 || (size_t)n >= cap)
		return TB_ERANGE;
	return n;
}

int tb_ws_response_check(const uint8_t *p, size_t n, const char *key, int *status, tb_http_span_t *location)
{
	tb_http_request_t r;
	const tb_http_span_t *v;
	char want[TB_WS_ACCEPT_LEN + 1];
	int len = tb_http_response_parse(p, n, &r, status);

	location->p = NULL;
	location->len = 0;
	if (len < 0)
		return len;
	if (*status != 101) {
		/* spec/linksocks.md §2.2: the caller may follow 301-308. */
		v = tb_http_header_get(&r, "Location");
		if (*status >= 300 && *status < 400 && v)
			*location = *v;
		return TB_EDENIED;
	}
	/* §4.1, the client's checks of the server's handshake. */
	if (r.minor < 1 || !list_has(&r, "Upgrade", "websocket") || !list_has(&r, "Connection", "upgrade"))
		return TB_EPROTO;
	if (tb_http_header_get(&r, "Sec-WebSocket-Extensions") ||
	    tb_http_header_get(&r, "Sec-WebSocket-Protocol"))
		return TB_EPROTO; /* we offered none */
	v = tb_http_header_get(&r, "Sec-WebSocket-Accept");
	if (!v || tb_ws_accept_key(key, strlen(key), want) < 0 || !span_is(v, want))
		return TB_EPROTO;
	return len;
}

/* ---- the reassembling parser ---- */

void tb_ws_parser_init(tb_ws_parser_t *ps, bool server, size_t max_message, const tb_ws_parser_cb_t *cb,
		       void *ctx)
{
	memset(ps, 0, sizeof(*ps));
	ps->server = server;
	ps->max_message = max_message ? max_message : TB_WS_MAX_MESSAGE;
	ps->cb = cb;
	ps->ctx = ctx;
	tb_buf_init(&ps->msg);
}

void tb_ws_parser_free(tb_ws_parser_t *ps)
{
	tb_buf_free(&ps->msg);
}

uint16_t tb_ws_close_code(int err)
{
	if (err == TB_EPROTO)
		return TB_WS_CLOSE_PROTOCOL;
	if (err == TB_ERANGE)
		return TB_WS_CLOSE_TOO_BIG;
	return TB_WS_CLOSE_INTERNAL;
}

/* §7.4: 1004-1006 and 1015 are reserved, 1016-2999 are left to future
 * RFCs; 1012-1014 were registered since (IANA). */
static bool close_code_ok(unsigned c)
{
	if (c >= 3000 && c <= 4999)
		return true;
	return c >= 1000 && c <= 1014 && (c < 1004 || c > 1006);
}

/* Checks the frame whose header was just decoded against what came before. */
static int start_frame(tb_ws_parser_t *ps)
{
	const tb_ws_frame_t *f = &ps->f;

	/* §5.1: a client masks every frame, a server none. */
	if (f->masked != ps->server)
		return TB_EPROTO;
	if (f->opcode >= TB_WS_OP_CLOSE) {
		ps->ctl_len = 0;
	} else if (f->opcode == TB_WS_OP_CONT) {
		if (!ps->msg_opcode)
			return TB_EPROTO; /* §5.4: no message to continue */
	} else {
		if (ps->msg_opcode)
			return TB_EPROTO; /* §5.4: a new message inside a fragmented one */
		ps->msg_opcode = f->opcode;
	}
	/* Before anything is stored; tb_buf_len(msg) <= max_message holds. */
	if (f->opcode < TB_WS_OP_CLOSE && f->len > ps->max_message - tb_buf_len(&ps->msg))
		return TB_ERANGE;
	ps->in_frame = true;
	ps->left = f->len;
	ps->mask_off = 0;
	return 0;
}

static int take_header(tb_ws_parser_t *ps, const uint8_t *p, size_t n, size_t *used)
{
	size_t k;
	int rc;

	if (ps->hdr_len == 0) {
		rc = tb_ws_frame_decode(p, n, &ps->f);
		if (rc > 0) {
			*used = (size_t)rc;
			return start_frame(ps);
		}
		if (rc != TB_EAGAIN)
			return rc;
	}
	/* The header straddles reads: collect it. */
	k = TB_MIN(n, sizeof(ps->hdr) - ps->hdr_len);
	memcpy(ps->hdr + ps->hdr_len, p, k);
	rc = tb_ws_frame_decode(ps->hdr, ps->hdr_len + k, &ps->f);
	if (rc == TB_EAGAIN) {
		ps->hdr_len = (uint8_t)(ps->hdr_len + k);
		*used = k;
		return 0;
	}
	if (rc < 0)
		return rc;
	*used = (size_t)rc - ps->hdr_len; /* > 0: hdr_len bytes were too few */
	ps->hdr_len = 0;
	return start_frame(ps);
}

/* A whole message in one read goes out without a copy; a server's is
 * unmasked on the way, into scratch memory. */
static int deliver_direct(tb_ws_parser_t *ps, const uint8_t *p, size_t k, bool *go)
{
	unsigned op = ps->msg_opcode;
	uint8_t stack[SCRATCH], *tmp = stack;

	ps->msg_opcode = 0;
	if (k == 0)
		p = empty;
	if (!ps->server) {
		*go = ps->cb->message(ps->ctx, op, p, k);
		return 0;
	}
	if (k > sizeof(stack) && !(tmp = malloc(k)))
		return TB_ENOMEM;
	tb_ws_mask(tmp, p, k, ps->f.mask, 0);
	*go = ps->cb->message(ps->ctx, op, tmp, k);
	if (tmp != stack)
		free(tmp);
	return 0;
}

static int append_payload(tb_ws_parser_t *ps, const uint8_t *p, size_t k)
{
	uint8_t tmp[SCRATCH];

	if (!ps->server)
		return tb_buf_append(&ps->msg, p, k);
	while (k > 0) {
		size_t c = TB_MIN(k, sizeof(tmp));

		ps->mask_off = (uint8_t)tb_ws_mask(tmp, p, c, ps->f.mask, ps->mask_off);
		if (tb_buf_append(&ps->msg, tmp, c) < 0)
			return TB_ENOMEM;
		p += c;
		k -= c;
	}
	return 0;
}

static int deliver_buffered(tb_ws_parser_t *ps, bool *go)
{
	size_t len = tb_buf_len(&ps->msg);
	const uint8_t *d = len ? tb_buf_pullup(&ps->msg, len) : empty;
	unsigned op = ps->msg_opcode;

	if (!d)
		return TB_ENOMEM;
	ps->msg_opcode = 0;
	*go = ps->cb->message(ps->ctx, op, d, len);
	tb_buf_free(&ps->msg);
	return 0;
}

/* §5.5.1: a close body is empty or a valid code and a reason. */
static int end_control(tb_ws_parser_t *ps, bool *go)
{
	if (ps->f.opcode == TB_WS_OP_CLOSE && ps->ctl_len > 0 &&
	    (ps->ctl_len < 2 || !close_code_ok(tb_be16(ps->ctl))))
		return TB_EPROTO;
	*go = ps->cb->control(ps->ctx, ps->f.opcode, ps->ctl, ps->ctl_len);
	return 0;
}

static int take_payload(tb_ws_parser_t *ps, const uint8_t *p, size_t n, size_t *used, bool *go)
{
	const tb_ws_frame_t *f = &ps->f;
	size_t k = (size_t)TB_MIN((uint64_t)n, ps->left);
	int rc;

	*used = k;
	if (f->opcode >= TB_WS_OP_CLOSE) {
		ps->mask_off = (uint8_t)tb_ws_mask(ps->ctl + ps->ctl_len, p, k, f->mask, ps->mask_off);
		ps->ctl_len = (uint8_t)(ps->ctl_len + k);
	} else if (f->fin && k == f->len && ps->left == f->len && tb_buf_len(&ps->msg) == 0) {
		ps->in_frame = false;
		return deliver_direct(ps, p, k, go);
	} else if ((rc = append_payload(ps, p, k)) < 0) {
		return rc;
	}
	ps->left -= k;
	if (ps->left > 0)
		return 0;
	ps->in_frame = false;
	if (f->opcode >= TB_WS_OP_CLOSE)
		return end_control(ps, go);
	return f->fin ? deliver_buffered(ps, go) : 0;
}

int tb_ws_parser_feed(tb_ws_parser_t *ps, const uint8_t *p, size_t n, size_t *used)
{
	size_t off = 0, k = 0;
	bool go = true;
	int rc = 0;

	if (n == 0)
		p = empty; /* no arithmetic on NULL below */
	/* A frame with an empty payload ends right after its header. */
	while (go && rc == 0 && (off < n || (ps->in_frame && ps->left == 0))) {
		if (!ps->in_frame)
			rc = take_header(ps, p + off, n - off, &k);
		else
			rc = take_payload(ps, p + off, n - off, &k, &go);
		off += k;
	}
	*used = off;
	return rc;
}

/* ---- the endpoint ---- */

enum {
	WS_CONNECTING,
	WS_OPEN,
	WS_CLOSING,
	WS_LINGER,
	WS_DONE
};

struct tb_ws {
	tb_loop_t *loop;
	tb_stream_t *lower; /* NULL once closed */
	const tb_ws_handler_t *h;
	void *ctx;
	tb_ws_parser_t ps;
	tb_buf_t in;	  /* not parsed yet: the 101, or input held while paused */
	tb_timer_t timer; /* close handshake, then linger */
	tb_defer_t defer; /* parses held input outside the call that released it */
	size_t max_frame;
	uint32_t close_ms;
	int code, err; /* what on_close will report */
	int http_status;
	char *location;
	uint8_t state, in_cb, pool_pos, pong_len;
	bool server, paused, eof, want_drain, pong_pending, freed;
	char key[TB_WS_KEY_LEN + 1];	 /* client: checked against the Accept */
	uint8_t pool[POOL];		 /* random bytes for masks */
	uint8_t pong[TB_WS_CONTROL_MAX]; /* the latest ping not answered yet */
};

static void ws_destroy(tb_ws_t *ws)
{
	tb_timer_stop(ws->loop, &ws->timer);
	tb_defer_cancel(ws->loop, &ws->defer);
	tb_ws_parser_free(&ws->ps);
	tb_buf_free(&ws->in);
	free(ws->location);
	free(ws);
}

/* Entry points from the loop (lower callbacks, timer, deferred call) open a
 * section; the endpoint is freed when the outermost one ends. */
static void enter(tb_ws_t *ws)
{
	ws->in_cb++;
}

static void leave(tb_ws_t *ws)
{
	if (--ws->in_cb == 0 && ws->freed)
		ws_destroy(ws);
}

static bool parsing(const tb_ws_t *ws)
{
	return !ws->freed && (ws->state == WS_OPEN || ws->state == WS_CLOSING);
}

static void drop_lower(tb_ws_t *ws)
{
	if (ws->lower) {
		tb_stream_close(ws->lower);
		ws->lower = NULL;
	}
}

/* The end: close the lower stream and tell the owner, once. */
static void finish(tb_ws_t *ws, int code, int err)
{
	if (ws->state == WS_DONE)
		return;
	ws->state = WS_DONE;
	tb_timer_stop(ws->loop, &ws->timer);
	tb_defer_cancel(ws->loop, &ws->defer);
	drop_lower(ws);
	if (ws->h->on_close)
		ws->h->on_close(ws->ctx, ws, code, err);
}

/* No more frames either way (§7.1.1): half-close, keep reading (and
 * dropping) until the peer's EOF, then close. Closing with unread input
 * would reset the connection and could destroy our last frames. */
static void linger(tb_ws_t *ws, int code, int err)
{
	ws->state = WS_LINGER;
	ws->code = code;
	ws->err = err;
	tb_stream_resume(ws->lower);
	tb_timer_start(ws->loop, &ws->timer, ws->close_ms);
	if (tb_stream_shutdown(ws->lower) < 0)
		tb_timer_start(ws->loop, &ws->timer, 0); /* report from the loop */
}

/* ---- sending ---- */

/* The message's bytes: up to two parts (tb_ws_send2's header and data). */
typedef struct cursor {
	const uint8_t *p[2];
	size_t n[2];
	unsigned i;
} cursor_t;

static size_t cursor_take(cursor_t *c, size_t want, const uint8_t **out)
{
	size_t k;

	while (c->i < 2 && c->n[c->i] == 0)
		c->i++;
	if (c->i == 2)
		return 0;
	k = TB_MIN(want, c->n[c->i]);
	*out = c->p[c->i];
	c->p[c->i] += k;
	c->n[c->i] -= k;
	return k;
}

/* §5.3: a fresh unpredictable key per frame, from a pool refilled 16 keys
 * at a time (not a system call per frame). */
static int next_mask(tb_ws_t *ws, uint8_t mask[4])
{
	if (ws->pool_pos + 4u > POOL) {
		int rc = tb_port_random(ws->pool, POOL);

		if (rc < 0)
			return rc;
		ws->pool_pos = 0;
	}
	memcpy(mask, ws->pool + ws->pool_pos, 4);
	ws->pool_pos += 4;
	return 0;
}

/* A write that took the bytes counts as done; TB_ENOBUFS is remembered. */
static int put(tb_ws_t *ws, const uint8_t *d, size_t n, int *res)
{
	int rc = tb_stream_write(ws->lower, d, n);

	if (rc == TB_ENOBUFS)
		*res = rc;
	return rc == TB_ENOBUFS ? 0 : rc;
}

/* One frame of len payload bytes from c. The header rides with the first
 * bytes (one segment for a small frame); a server then writes the rest
 * straight from the caller's memory, a client masks it through scratch. */
static int send_frame(tb_ws_t *ws, unsigned op, bool fin, cursor_t *c, size_t len)
{
	uint8_t stack[SCRATCH], mask[4], *buf = stack;
	size_t cap = sizeof(stack), fill, moff = 0, k;
	bool masked = !ws->server;
	const uint8_t *src;
	int rc = 0, res = 0;

	if (masked && (rc = next_mask(ws, mask)) < 0)
		return rc;
	if (masked && len > cap - TB_WS_HEADER_MAX) {
		uint8_t *big = malloc(TB_MIN(len + TB_WS_HEADER_MAX, (size_t)SEND_CHUNK));

		if (big) {
			buf = big;
			cap = TB_MIN(len + TB_WS_HEADER_MAX, (size_t)SEND_CHUNK);
		}
	}
	fill = tb_ws_frame_header(buf, fin, op, len, masked ? mask : NULL);
	do {
		while (len > 0 && fill < cap && (k = cursor_take(c, TB_MIN(len, cap - fill), &src)) > 0) {
			if (masked)
				moff = tb_ws_mask(buf + fill, src, k, mask, moff);
			else
				memcpy(buf + fill, src, k);
			fill += k;
			len -= k;
		}
		rc = put(ws, buf, fill, &res);
		fill = 0;
		while (rc == 0 && !masked && len > 0 && (k = cursor_take(c, len, &src)) > 0) {
			rc = put(ws, src, k, &res);
			len -= k;
		}
	} while (rc == 0 && len > 0);
	if (buf != stack)
		free(buf);
	return rc < 0 ? rc : res;
}

/* Cut into frames of max_frame bytes when set (§5.4). */
static int send_msg(tb_ws_t *ws, unsigned op, cursor_t *c, size_t total)
{
	size_t per = ws->max_frame ? ws->max_frame : total;
	int rc, res = 0;

	do {
		size_t n = TB_MIN(per, total);

		total -= n;
		rc = send_frame(ws, op, total == 0, c, n);
		if (rc < 0 && rc != TB_ENOBUFS)
			return rc;
		if (rc)
			res = rc;
		op = TB_WS_OP_CONT;
	} while (total > 0);
	return res;
}

static int send_control(tb_ws_t *ws, unsigned op, const void *d, size_t n)
{
	cursor_t c = {{d, NULL}, {n, 0}, 0};

	return send_frame(ws, op, true, &c, n);
}

/* A user's send: remember to report on_drain. */
static int user_result(tb_ws_t *ws, int rc)
{
	if (rc == TB_ENOBUFS)
		ws->want_drain = true;
	return rc;
}

int tb_ws_send2(tb_ws_t *ws, unsigned opcode, const void *hdr, size_t hlen, const void *data, size_t len)
{
	cursor_t c = {{hdr, data}, {hlen, len}, 0};

	if ((opcode != TB_WS_OP_BINARY && opcode != TB_WS_OP_TEXT) || hlen + len < len)
		return TB_EINVAL;
	if (ws->state != WS_OPEN)
		return TB_EPIPE;
	return user_result(ws, send_msg(ws, opcode, &c, hlen + len));
}

int tb_ws_send(tb_ws_t *ws, unsigned opcode, const void *data, size_t len)
{
	return tb_ws_send2(ws, opcode, NULL, 0, data, len);
}

static int send_user_control(tb_ws_t *ws, unsigned op, const void *d, size_t n)
{
	if (n > TB_WS_CONTROL_MAX)
		return TB_EINVAL;
	if (ws->state != WS_OPEN)
		return TB_EPIPE;
	return user_result(ws, send_control(ws, op, d, n));
}

int tb_ws_ping(tb_ws_t *ws, const void *data, size_t len)
{
	return send_user_control(ws, TB_WS_OP_PING, data, len);
}

int tb_ws_pong(tb_ws_t *ws, const void *data, size_t len)
{
	return send_user_control(ws, TB_WS_OP_PONG, data, len);
}

int tb_ws_close(tb_ws_t *ws, uint16_t code, const char *reason)
{
	uint8_t body[TB_WS_CONTROL_MAX];
	size_t rl = reason ? strlen(reason) : 0, n = 0;
	int rc;

	if (ws->state == WS_CONNECTING) {
		tb_ws_abort(ws);
		return 0;
	}
	if (ws->state != WS_OPEN)
		return TB_EPIPE;
	if ((code && !close_code_ok(code)) || (!code && rl) || rl > TB_WS_CONTROL_MAX - 2)
		return TB_EINVAL;
	if (code) {
		tb_put_be16(body, code);
		if (rl)
			memcpy(body + 2, reason, rl);
		n = 2 + rl;
	}
	rc = send_control(ws, TB_WS_OP_CLOSE, body, n);
	ws->state = WS_CLOSING;
	tb_timer_start(ws->loop, &ws->timer, ws->close_ms);
	return rc == TB_ENOBUFS ? 0 : rc;
}

void tb_ws_abort(tb_ws_t *ws)
{
	if (ws->state <= WS_CLOSING)
		linger(ws, TB_WS_CLOSE_ABNORMAL, 0);
}

void tb_ws_free(tb_ws_t *ws)
{
	if (!ws || ws->freed)
		return;
	ws->freed = true;
	ws->state = WS_DONE;
	tb_timer_stop(ws->loop, &ws->timer);
	tb_defer_cancel(ws->loop, &ws->defer);
	drop_lower(ws);
	if (ws->in_cb == 0)
		ws_destroy(ws);
}

/* ---- receiving ---- */

/* Fails the connection (§7.1.7): a Close with the code if we have not sent
 * one yet, then linger. */
static void fail(tb_ws_t *ws, int err)
{
	uint16_t code = tb_ws_close_code(err);
	uint8_t body[2];

	tb_debug("ws: failing the connection (%s): close %u", tb_strerror(err), code);
	if (ws->state == WS_OPEN) {
		tb_put_be16(body, code);
		send_control(ws, TB_WS_OP_CLOSE, body, sizeof(body));
	}
	linger(ws, code, err);
}

static bool going(const tb_ws_t *ws)
{
	return parsing(ws) && !ws->paused;
}

static bool ep_message(void *ctx, unsigned op, const uint8_t *d, size_t n)
{
	tb_ws_t *ws = ctx;

	/* After our Close, messages are dropped (§1.4). */
	if (ws->state == WS_OPEN && ws->h->on_message)
		ws->h->on_message(ws->ctx, ws, op, d, n);
	return going(ws);
}

/* §5.5.2: every ping gets a pong with its payload. When the lower stream
 * is over its mark, only the latest one is kept, for on_drain (§5.5.3 lets
 * us skip older ones): a peer that pings and never reads cannot grow our
 * queue. */
static void answer_ping(tb_ws_t *ws, const uint8_t *d, size_t n)
{
	if (ws->state != WS_OPEN)
		return;
	if (tb_stream_queued(ws->lower) < ws->lower->hiwat) {
		send_control(ws, TB_WS_OP_PONG, d, n);
		return;
	}
	memcpy(ws->pong, d, n);
	ws->pong_len = (uint8_t)n;
	ws->pong_pending = true;
}

/* §5.5.1: answer a Close with a Close echoing its code, then linger. */
static void peer_close(tb_ws_t *ws, const uint8_t *d, size_t n)
{
	int code = n >= 2 ? tb_be16(d) : TB_WS_CLOSE_NO_STATUS;
	uint8_t body[2];

	if (ws->state == WS_OPEN) {
		tb_put_be16(body, (uint16_t)code);
		send_control(ws, TB_WS_OP_CLOSE, body, n >= 2 ? 2 : 0);
	}
	linger(ws, code, 0);
}

static bool ep_control(void *ctx, unsigned op, const uint8_t *d, size_t n)
{
	tb_ws_t *ws = ctx;

	if (op == TB_WS_OP_PING)
		answer_ping(ws, d, n);
	else if (op == TB_WS_OP_PONG && ws->h->on_pong)
		ws->h->on_pong(ws->ctx, ws, d, n);
	else if (op == TB_WS_OP_CLOSE)
		peer_close(ws, d, n);
	return going(ws);
}

static const tb_ws_parser_cb_t ep_cb = {ep_message, ep_control};

static void feed(tb_ws_t *ws, const uint8_t *d, size_t n, size_t *used)
{
	int rc = tb_ws_parser_feed(&ws->ps, d, n, used);

	if (rc < 0 && parsing(ws))
		fail(ws, rc);
}

/* The client's handshake (§4.1): true when it completed and frames follow. */
static bool handshake(tb_ws_t *ws)
{
	size_t n = TB_MIN(tb_buf_len(&ws->in), (size_t)TB_HTTP_RESP_HEAD_MAX);
	const uint8_t *p = n ? tb_buf_pullup(&ws->in, n) : NULL;
	tb_http_span_t loc;
	int rc;

	if (!p) {
		if (n)
			finish(ws, TB_WS_CLOSE_ABNORMAL, TB_ENOMEM);
		return false;
	}
	rc = tb_ws_response_check(p, n, ws->key, &ws->http_status, &loc);
	if (rc == TB_EAGAIN)
		return false;
	if (rc < 0) {
		/* Bounded by the head; not strndup: the head has no NUL. */
		if (loc.len && (ws->location = malloc(loc.len + 1)) != NULL) {
			memcpy(ws->location, loc.p, loc.len);
			ws->location[loc.len] = '\0';
		}
		finish(ws, TB_WS_CLOSE_ABNORMAL, rc);
		return false;
	}
	tb_buf_consume(&ws->in, (size_t)rc);
	ws->state = WS_OPEN;
	if (ws->h->on_open)
		ws->h->on_open(ws->ctx, ws);
	return !ws->freed;
}

/* The peer's EOF, once every byte before it has been parsed. */
static void end_of_input(tb_ws_t *ws)
{
	if (ws->state == WS_LINGER)
		finish(ws, ws->code, ws->err);
	else
		finish(ws, TB_WS_CLOSE_ABNORMAL, TB_ECONNRESET);
}

/* Parses what is held in ws->in, chunk by chunk, until it is empty or the
 * owner pauses. */
static void process_held(tb_ws_t *ws)
{
	const uint8_t *p;
	size_t len, used;

	if (ws->paused || (ws->state == WS_CONNECTING && !handshake(ws)))
		goto out;
	while (going(ws) && (p = tb_buf_peek(&ws->in, &len)) != NULL) {
		feed(ws, p, len, &used);
		if (ws->freed)
			return;
		tb_buf_consume(&ws->in, used);
	}
out:
	if (ws->freed || ws->state == WS_DONE)
		return;
	if (ws->state == WS_LINGER)
		tb_buf_free(&ws->in);
	if (ws->eof && !ws->paused && (tb_buf_len(&ws->in) == 0 || ws->state == WS_CONNECTING))
		end_of_input(ws); /* a partial 101 never completes */
}

static void input(tb_ws_t *ws, const uint8_t *d, size_t n)
{
	size_t used = 0;

	if (ws->state >= WS_LINGER)
		return; /* lingering: dropped */
	if (ws->state != WS_CONNECTING && !ws->paused && tb_buf_len(&ws->in) == 0) {
		feed(ws, d, n, &used);
		if (used == n || !parsing(ws))
			return;
	}
	if (tb_buf_len(&ws->in) + (n - used) > HOLD_MAX + TB_HTTP_RESP_HEAD_MAX ||
	    tb_buf_append(&ws->in, d + used, n - used) < 0) {
		if (ws->state == WS_CONNECTING)
			finish(ws, TB_WS_CLOSE_ABNORMAL, TB_ENOMEM);
		else
			fail(ws, TB_ENOMEM);
		return;
	}
	if (!ws->paused)
		process_held(ws);
}

static void lower_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	tb_ws_t *ws = ctx;

	enter(ws);
	input(ws, d, n);
	leave(ws);
}

static void lower_drain(void *ctx, tb_stream_t *s)
{
	tb_ws_t *ws = ctx;

	enter(ws);
	if (ws->pong_pending && ws->state == WS_OPEN) {
		ws->pong_pending = false;
		send_control(ws, TB_WS_OP_PONG, ws->pong, ws->pong_len);
	}
	if (ws->want_drain && ws->state == WS_OPEN && !ws->freed) {
		ws->want_drain = false;
		if (ws->h->on_drain)
			ws->h->on_drain(ws->ctx, ws);
	}
	leave(ws);
}

static void lower_eof(void *ctx, tb_stream_t *s)
{
	tb_ws_t *ws = ctx;

	enter(ws);
	ws->eof = true;
	/* Held input is parsed first: its messages came before the EOF. */
	if (tb_buf_len(&ws->in) == 0 || ws->state == WS_LINGER || (ws->state == WS_CONNECTING && !ws->paused))
		end_of_input(ws);
	leave(ws);
}

static void lower_close(void *ctx, tb_stream_t *s, int err)
{
	tb_ws_t *ws = ctx;

	enter(ws);
	if (ws->state == WS_LINGER)
		finish(ws, ws->code, ws->err);
	else
		finish(ws, TB_WS_CLOSE_ABNORMAL, err ? err : TB_ECONNRESET);
	leave(ws);
}

static const tb_stream_handler_t lower_h = {lower_data, lower_drain, lower_eof, lower_close};

static void on_timer(tb_loop_t *loop, void *arg)
{
	tb_ws_t *ws = arg;

	enter(ws);
	if (ws->state == WS_CLOSING)
		finish(ws, TB_WS_CLOSE_ABNORMAL, TB_ETIMEDOUT); /* no Close came back */
	else
		finish(ws, ws->code, ws->err);
	leave(ws);
}

static void on_defer(tb_loop_t *loop, void *arg)
{
	tb_ws_t *ws = arg;

	enter(ws);
	process_held(ws);
	/* Not paused again: everything held was parsed (or is a partial 101). */
	if (!ws->freed && !ws->paused && ws->state <= WS_CLOSING)
		tb_stream_resume(ws->lower);
	leave(ws);
}

void tb_ws_pause(tb_ws_t *ws)
{
	ws->paused = true;
	if (ws->state <= WS_CLOSING)
		tb_stream_pause(ws->lower);
}

void tb_ws_resume(tb_ws_t *ws)
{
	if (!ws->paused)
		return;
	ws->paused = false;
	if (ws->state > WS_CLOSING)
		return;
	/* Held input is parsed from the loop, never inside this call. */
	if (tb_buf_len(&ws->in) > 0 || ws->eof)
		tb_defer(ws->loop, &ws->defer);
	else
		tb_stream_resume(ws->lower);
}

size_t tb_ws_queued(const tb_ws_t *ws)
{
	return ws->lower ? tb_stream_queued(ws->lower) : 0;
}

int tb_ws_http_status(const tb_ws_t *ws)
{
	return ws->http_status;
}

const char *tb_ws_location(const tb_ws_t *ws)
{
	return ws->location;
}

/* ---- constructors ---- */

static tb_ws_t *ws_new(tb_loop_t *loop, tb_stream_t *lower, bool server, const tb_ws_opts_t *o,
		       const tb_ws_handler_t *h, void *ctx)
{
	tb_ws_t *ws = calloc(1, sizeof(*ws));

	if (!ws)
		return NULL;
	ws->loop = loop;
	ws->lower = lower;
	ws->h = h;
	ws->ctx = ctx;
	ws->server = server;
	ws->max_frame = o ? o->max_frame : 0;
	ws->close_ms = o && o->close_timeout_ms ? o->close_timeout_ms : TB_WS_CLOSE_TIMEOUT_MS;
	ws->pool_pos = POOL; /* empty: filled on the first frame */
	tb_ws_parser_init(&ws->ps, server, o ? o->max_message : 0, &ep_cb, ws);
	tb_buf_init(&ws->in);
	tb_timer_init(&ws->timer, on_timer, ws);
	tb_defer_init(&ws->defer, on_defer, ws);
	return ws;
}

static size_t len_or_0(const char *s)
{
	return s ? strlen(s) : 0;
}

int tb_ws_client_new(tb_loop_t *loop, tb_stream_t *lower, const tb_ws_request_t *req,
		     const tb_ws_opts_t *opts, const tb_ws_handler_t *h, void *ctx, tb_ws_t **out)
{
	size_t cap = 256 + len_or_0(req->host) + len_or_0(req->path) + len_or_0(req->query) +
		     len_or_0(req->user_agent) + len_or_0(req->headers);
	tb_ws_t *ws = ws_new(loop, lower, false, opts, h, ctx);
	char *buf = malloc(cap);
	int n = TB_ENOMEM, rc;

	if (ws && buf && (n = tb_ws_key_new(ws->key)) == 0)
		n = tb_ws_request_build(buf, cap, req, ws->key);
	rc = n < 0 ? n : tb_stream_write(lower, buf, (size_t)n);
	free(buf);
	if (rc < 0 && rc != TB_ENOBUFS) {
		if (ws)
			ws_destroy(ws);
		return rc;
	}
	ws->state = WS_CONNECTING;
	tb_stream_set_handler(lower, &lower_h, ws);
	*out = ws;
	return 0;
}

int tb_ws_server_new(tb_loop_t *loop, tb_stream_t *lower, const char *key, size_t key_len,
		     const uint8_t *rest, size_t rest_len, const tb_ws_opts_t *opts, const tb_ws_handler_t *h,
		     void *ctx, tb_ws_t **out)
{
	char resp[160];
	int n = tb_ws_response_build(resp, sizeof(resp), key, key_len), rc;
	tb_ws_t *ws;

	if (n < 0)
		return n;
	ws = ws_new(loop, lower, true, opts, h, ctx);
	if (!ws)
		return TB_ENOMEM;
	rc = tb_buf_append(&ws->in, rest, rest_len);
	if (rc == 0)
		rc = tb_stream_write(lower, resp, (size_t)n);
	if (rc < 0 && rc != TB_ENOBUFS) {
		ws_destroy(ws);
		return rc;
	}
	ws->state = WS_OPEN;
	tb_stream_set_handler(lower, &lower_h, ws);
	/* Frames that came with the request are parsed from the loop. */
	if (rest_len)
		tb_defer(loop, &ws->defer);
	*out = ws;
	return 0;
}
