/* fuzz_ws_frame.c: WebSocket frames into the header decoder, the
 * reassembling parser and a whole endpoint (server or client) over a fake
 * lower stream, sans IO: nothing touches a socket.
 *
 * The first byte picks the mode: bit 0 server/client, bits 1-3 the size of
 * the pieces the input is cut into, bit 4 a small message limit (300
 * bytes) so 1009 is reached, bits 5-6 what the endpoint's owner does from
 * its callbacks (echo, pause and resume, free). Invariants are checked with
 * abort(); leaks are LeakSanitizer's.
 *
 * Build (or `make fuzz` with CONFIG_WS=y):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Ibuild/ws/include \
 *     tests/fuzz/fuzz_ws_frame.c src/ws.c src/http.c src/buf.c src/base.c src/addr.c src/log.c \
 *     src/loop.c port/posix/poll_epoll.c port/posix/sys.c -lmbedcrypto */
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
#include "tb/port.h"
#include "tb/ws.h"

static const size_t steps[8] = {0, 1, 2, 3, 7, 64, 1000, 4096};

/* ---- the header decoder ---- */

static void decode(const uint8_t *p, size_t n)
{
	uint8_t h[TB_WS_HEADER_MAX];
	tb_ws_frame_t f, g;
	int rc = tb_ws_frame_decode(p, n, &f);

	if (rc == TB_EAGAIN || rc == TB_EPROTO)
		return;
	if (rc < 2 || rc > TB_WS_HEADER_MAX || (size_t)rc > n || f.len >> 63 ||
	    (f.opcode >= TB_WS_OP_CLOSE && (f.len > TB_WS_CONTROL_MAX || !f.fin)))
		abort();
	/* Rebuilt minimally, it decodes to the same frame. */
	size_t hl = tb_ws_frame_header(h, f.fin, f.opcode, f.len, f.masked ? f.mask : NULL);
	if (tb_ws_frame_decode(h, hl, &g) != (int)hl || g.len != f.len || g.fin != f.fin ||
	    g.opcode != f.opcode || g.masked != f.masked || hl > (size_t)rc || memcmp(g.mask, f.mask, 4) != 0)
		abort();
}

/* ---- the parser ---- */

struct pctx {
	size_t max, calls;
	unsigned stop_every;
	uint8_t sum;
};

static bool touch(struct pctx *c, const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		c->sum ^= d[i];
	c->calls++;
	return !c->stop_every || c->calls % c->stop_every != 0;
}

static bool p_message(void *ctx, unsigned op, const uint8_t *d, size_t n)
{
	struct pctx *c = ctx;

	if (!d || n > c->max || (op != TB_WS_OP_TEXT && op != TB_WS_OP_BINARY))
		abort();
	return touch(c, d, n);
}

static bool p_control(void *ctx, unsigned op, const uint8_t *d, size_t n)
{
	struct pctx *c = ctx;

	if (n > TB_WS_CONTROL_MAX || op < TB_WS_OP_CLOSE || op > TB_WS_OP_PONG ||
	    (op == TB_WS_OP_CLOSE && n == 1))
		abort();
	return touch(c, d, n);
}

static const tb_ws_parser_cb_t p_cb = {p_message, p_control};

static void parse(bool server, size_t max, size_t step, unsigned stop_every, const uint8_t *p, size_t n)
{
	struct pctx c = {max ? max : TB_WS_MAX_MESSAGE, 0, stop_every, 0};
	tb_ws_parser_t ps;
	size_t off = 0, used;

	tb_ws_parser_init(&ps, server, max, &p_cb, &c);
	while (off < n) {
		size_t k = step ? TB_MIN(step, n - off) : n - off;

		if (tb_ws_parser_feed(&ps, p + off, k, &used) < 0)
			break;
		if (used > k)
			abort();
		off += used;
	}
	tb_ws_parser_free(&ps);
}

/* ---- an endpoint over a fake stream ---- */

struct fake {
	tb_stream_t s;
	size_t written;
	uint8_t req[1024]; /* the client's request, for its 101 */
	size_t req_len;
	bool shut, closed;
};

static int f_write(tb_stream_t *s, const void *d, size_t n)
{
	struct fake *f = (struct fake *)s;

	if (f->closed)
		abort(); /* no write after close() */
	if (f->shut)
		return TB_EPIPE;
	if (f->written == 0 && n <= sizeof(f->req)) {
		memcpy(f->req, d, n);
		f->req_len = n;
	}
	f->written += n;
	return f->written > s->hiwat ? TB_ENOBUFS : 0;
}
static int f_shutdown(tb_stream_t *s)
{
	((struct fake *)s)->shut = true;
	return 0;
}
static void f_close(tb_stream_t *s)
{
	((struct fake *)s)->closed = true;
}
static void f_nop(tb_stream_t *s)
{
}
static size_t f_queued(const tb_stream_t *s)
{
	return ((const struct fake *)s)->written % 5000;
}
static const tb_stream_ops_t f_ops = {f_write, f_shutdown, f_close, f_nop, f_nop, f_queued};

struct owner {
	tb_ws_t *ws;
	unsigned mode, n;
	bool closed;
};

static void o_message(void *ctx, tb_ws_t *ws, unsigned op, const uint8_t *d, size_t n)
{
	struct owner *o = ctx;

	o->n++;
	if (o->mode == 1)
		tb_ws_send2(ws, op, d, n / 2, d + n / 2, n - n / 2);
	else if (o->mode == 2 && o->n % 2)
		tb_ws_pause(ws);
	else if (o->mode == 3 && o->n == 3) {
		tb_ws_free(ws);
		o->ws = NULL;
	}
}

static void o_pong(void *ctx, tb_ws_t *ws, const uint8_t *d, size_t n)
{
	struct owner *o = ctx;

	if (o->mode == 1)
		tb_ws_close(ws, 1000, "pong seen");
}

static void o_drain(void *ctx, tb_ws_t *ws)
{
	tb_ws_ping(ws, "p", 1);
}

static void o_close(void *ctx, tb_ws_t *ws, int code, int err)
{
	struct owner *o = ctx;

	if (o->closed)
		abort(); /* on_close once */
	o->closed = true;
	tb_ws_free(ws);
	o->ws = NULL;
}

static const tb_ws_handler_t o_h = {NULL, o_message, o_pong, o_drain, o_close};

static tb_loop_t *loop;

static void in(struct fake *f, struct owner *o, const uint8_t *p, size_t n, size_t step)
{
	size_t off = 0;

	while (off < n && o->ws && !f->closed) {
		size_t k = step ? TB_MIN(step, n - off) : n - off;

		f->s.h->on_data(f->s.ctx, &f->s, p + off, k);
		off += k;
		if (o->mode == 2 && o->ws) {
			tb_ws_resume(o->ws);
			tb_loop_once(loop, 0); /* held input is parsed from the loop */
		}
	}
}

/* The 101 for the request the client wrote. */
static size_t answer(const struct fake *f, char *out, size_t cap)
{
	const char *k = memmem(f->req, f->req_len, "Sec-WebSocket-Key: ", 19);
	int n;

	if (!k)
		abort();
	n = tb_ws_response_build(out, cap, k + 19, TB_WS_KEY_LEN);
	if (n < 0)
		abort();
	return (size_t)n;
}

static void endpoint(bool server, size_t max, size_t step, unsigned mode, const uint8_t *p, size_t n)
{
	struct fake f = {.s = {.ops = &f_ops, .hiwat = 100000}};
	struct owner o = {.mode = mode};
	tb_ws_opts_t opts = {.max_message = max, .max_frame = mode == 1 ? 100 : 0, .close_timeout_ms = 1};
	tb_ws_request_t req = {.host = "h", .path = "/socket"};
	size_t first = TB_MIN(n, (size_t)(p[0] & 0x1f)); /* bytes that came with the request */
	char resp[256];
	int rc;

	if (server)
		rc = tb_ws_server_new(loop, &f.s, "dGhlIHNhbXBsZSBub25jZQ==", 24, p, first, &opts, &o_h, &o,
				      &o.ws);
	else
		rc = tb_ws_client_new(loop, &f.s, &req, &opts, &o_h, &o, &o.ws);
	if (rc < 0)
		return;
	if (server) {
		p += first;
		n -= first;
	} else {
		in(&f, &o, (const uint8_t *)resp, answer(&f, resp, sizeof(resp)), step);
	}
	in(&f, &o, p, n, step);
	/* Deferred input; the close timer (1 ms) only for 1 input in 16:
	 * waiting for it on every one would make the target slow. */
	for (int i = 0; i < 3 && o.ws; i++)
		tb_loop_once(loop, n % 16 == 0 ? 2 : 0);
	if (o.ws && !f.closed)
		f.s.h->on_eof(f.s.ctx, &f.s);
	if (o.ws)
		tb_ws_free(o.ws);
	tb_loop_once(loop, 0);
	if (!f.closed)
		abort(); /* the endpoint owned the stream */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	unsigned m;

	if (size < 2)
		return 0;
	if (!loop && !(loop = tb_loop_new()))
		return 0;
	m = data[0];
	/* An exact-size heap copy, so ASan sees any read past the end. */
	copy = malloc(size - 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	decode(copy, size - 1);
	parse(m & 1, m & 0x10 ? 300 : 0, steps[(m >> 1) & 7], (m >> 5) & 3, copy, size - 1);
	endpoint(m & 1, m & 0x10 ? 300 : 0, steps[(m >> 1) & 7], (m >> 5) & 3, copy, size - 1);
	free(copy);
	return 0;
}
#endif
