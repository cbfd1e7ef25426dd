/* test_linksocks.c: the channel mux over an in-memory transport.
 *
 * The test plays the peer: it reads what the mux sends (decoded with the
 * codec) and feeds it messages built byte by byte as spec/linksocks.md §3.3
 * lays them out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tb/linksocks.h"

/* ---- the fake transport: records messages, can report "full" ---- */

#define MAX_SENT 256

struct wire {
	uint8_t *msg[MAX_SENT];
	size_t len[MAX_SENT];
	size_t n;
	bool full;     /* send returns TB_ENOBUFS */
	int paused;    /* pause() minus resume() */
};

static int fake_send(void *t, const void *hdr, size_t hlen, const void *body, size_t blen)
{
	struct wire *w = t;
	uint8_t *m = malloc(hlen + blen);

	assert_non_null(m);
	assert_true(w->n < MAX_SENT);
	memcpy(m, hdr, hlen);
	if (blen)
		memcpy(m + hlen, body, blen);
	w->msg[w->n] = m;
	w->len[w->n++] = hlen + blen;
	return w->full ? TB_ENOBUFS : 0;
}

static void fake_pause(void *t)
{
	((struct wire *)t)->paused++;
}

static void fake_resume(void *t)
{
	((struct wire *)t)->paused--;
}

static const tb_ls_transport_t fake = {fake_send, fake_pause, fake_resume};

static void wire_clear(struct wire *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->msg[i]);
	w->n = 0;
}

static void last_msg(struct wire *w, tb_ls_msg_t *m)
{
	assert_true(w->n > 0);
	assert_int_equal(tb_ls_msg_decode(w->msg[w->n - 1], w->len[w->n - 1], m), 0);
}

/* ---- the owner of a channel ---- */

struct owner {
	tb_stream_t *s;
	int err;
	bool opened, failed, eof, closed, drained;
	uint8_t got[256];
	size_t ngot;
	int close_err;
};

static void own_data(void *ctx, tb_stream_t *s, const uint8_t *d, size_t n)
{
	struct owner *o = ctx;

	assert_true(o->ngot + n <= sizeof(o->got));
	memcpy(o->got + o->ngot, d, n);
	o->ngot += n;
}

static void own_drain(void *ctx, tb_stream_t *s)
{
	((struct owner *)ctx)->drained = true;
}

static void own_eof(void *ctx, tb_stream_t *s)
{
	((struct owner *)ctx)->eof = true;
}

static void own_close(void *ctx, tb_stream_t *s, int err)
{
	struct owner *o = ctx;

	o->closed = true;
	o->close_err = err;
}

static const tb_stream_handler_t own_h = {own_data, own_drain, own_eof, own_close};

static void opened(void *arg, tb_stream_t *s, int err)
{
	struct owner *o = arg;

	o->err = err;
	o->s = s;
	o->opened = s != NULL;
	o->failed = s == NULL;
	if (s)
		tb_stream_set_handler(s, &own_h, o);
}

/* ---- helpers that build peer messages ---- */

static size_t mk_connect_response(uint8_t *b, const uint8_t id[16], bool ok)
{
	b[0] = 1;
	b[1] = TB_LS_CONNECT_RESPONSE;
	b[2] = ok;
	memcpy(b + 3, id, 16);
	if (ok)
		return 19;
	b[19] = 4;
	memcpy(b + 20, "nope", 4);
	return 24;
}

static size_t mk_data(uint8_t *b, const uint8_t id[16], const char *payload)
{
	size_t n = strlen(payload);

	b[0] = 1;
	b[1] = TB_LS_DATA;
	b[2] = TB_LS_PROTO_TCP;
	memcpy(b + 3, id, 16);
	b[19] = 0;
	tb_put_be32(b + 20, (uint32_t)n);
	memcpy(b + 24, payload, n);
	return 24 + n;
}

static size_t mk_disconnect(uint8_t *b, const uint8_t id[16])
{
	b[0] = 1;
	b[1] = TB_LS_DISCONNECT;
	memcpy(b + 2, id, 16);
	return 18;
}

struct fixture {
	tb_loop_t *loop;
	struct wire w;
	tb_ls_mux_t *m;
	struct owner o;
	uint8_t id[16];
};

static void spin(tb_loop_t *loop)
{
	for (int i = 0; i < 5; i++)
		tb_loop_once(loop, 0);
}

/* Opens a channel to example.test:443 and answers ConnectResponse ok. */
static void open_channel_opts(struct fixture *f, const tb_ls_mux_opts_t *o)
{
	tb_target_t t;
	tb_ls_msg_t m;
	uint8_t b[64];

	f->loop = tb_loop_new();
	assert_int_equal(tb_ls_mux_new(f->loop, &fake, &f->w, o, NULL, NULL, &f->m), 0);
	assert_int_equal(tb_target_set(&t, "example.test", 12, 443), 0);
	assert_int_equal(tb_ls_mux_open(f->m, &t, false, opened, &f->o, NULL), 0);
	last_msg(&f->w, &m);
	/* §3.3 Connect: tcp, the domain unresolved, the port. */
	assert_int_equal(m.type, TB_LS_CONNECT);
	assert_int_equal(m.connect.proto, TB_LS_PROTO_TCP);
	assert_int_equal(m.connect.addr.len, 12);
	assert_memory_equal(m.connect.addr.p, "example.test", 12);
	assert_int_equal(m.connect.port, 443);
	memcpy(f->id, m.connect.channel, 16);
	assert_false(f->o.opened);
	tb_ls_mux_input(f->m, b, mk_connect_response(b, f->id, true));
	assert_true(f->o.opened);
	assert_int_equal(tb_ls_mux_channels(f->m), 1);
	wire_clear(&f->w);
}

static void open_channel(struct fixture *f)
{
	open_channel_opts(f, NULL);
}

static void close_fixture(struct fixture *f)
{
	if (f->o.s && !f->o.closed)
		tb_stream_close(f->o.s);
	tb_ls_mux_free(f->m, TB_ECONNRESET);
	wire_clear(&f->w);
	tb_loop_free(f->loop);
}

static void test_open_data_both_ways(void **state)
{
	struct fixture f = {0};
	tb_ls_msg_t m;
	uint8_t b[128];

	open_channel(&f);
	tb_ls_mux_input(f.m, b, mk_data(b, f.id, "hello"));
	assert_int_equal(f.o.ngot, 5);
	assert_memory_equal(f.o.got, "hello", 5);
	/* A write is one Data message (24-byte header, the payload), sent
	 * when the loop turn ends. */
	assert_int_equal(tb_stream_write(f.o.s, "world!", 6), 0);
	assert_int_equal(f.w.n, 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 1);
	assert_int_equal(f.w.len[0], 24 + 6);
	last_msg(&f.w, &m);
	assert_int_equal(m.type, TB_LS_DATA);
	assert_memory_equal(m.data.channel, f.id, 16);
	assert_int_equal(m.data.compression, TB_LS_COMP_NONE);
	assert_int_equal(m.data.len, 6);
	assert_memory_equal(m.data.payload, "world!", 6);
	close_fixture(&f);
}

static void test_refused_and_unknown_channels(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	struct wire w = {0};
	tb_ls_mux_t *mux;
	struct owner o = {0};
	tb_target_t t;
	tb_ls_msg_t m;
	uint8_t b[128], other[16] = {9, 9, 9};

	assert_int_equal(tb_ls_mux_new(loop, &fake, &w, NULL, NULL, NULL, &mux), 0);
	assert_int_equal(tb_target_set(&t, "10.0.0.1", 8, 80), 0);
	assert_int_equal(tb_ls_mux_open(mux, &t, false, opened, &o, NULL), 0);
	last_msg(&w, &m);
	/* §4.3: Data, ConnectResponse and Disconnect for unknown channels are
	 * dropped without an answer. */
	size_t before = w.n;
	tb_ls_mux_input(mux, b, mk_data(b, other, "x"));
	tb_ls_mux_input(mux, b, mk_disconnect(b, other));
	tb_ls_mux_input(mux, b, mk_connect_response(b, other, true));
	/* §10.14: a malformed message is dropped, not the connection. */
	tb_ls_mux_input(mux, (const uint8_t *)"\x01\x04\x01", 3);
	/* §3.1: an unknown type is ignored. */
	tb_ls_mux_input(mux, (const uint8_t *)"\x01\x0b\x00\x00\x00\x00", 6);
	assert_int_equal(w.n, before);
	assert_false(o.opened || o.failed);
	/* §5: a refusal is REP 4 for the SOCKS client: host unreachable. */
	tb_ls_mux_input(mux, b, mk_connect_response(b, m.connect.channel, false));
	assert_true(o.failed);
	assert_int_equal(o.err, TB_EHOSTUNREACH);
	assert_int_equal(tb_ls_mux_channels(mux), 0);
	tb_ls_mux_free(mux, 0);
	wire_clear(&w);
	tb_loop_free(loop);
}

static void test_backpressure_tx(void **state)
{
	struct fixture f = {0};

	open_channel(&f);
	f.w.full = true;
	/* The batch goes out at the end of the turn and finds the WebSocket
	 * over its limit... */
	assert_int_equal(tb_stream_write(f.o.s, "abc", 3), 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 1);
	/* ...so the next write tells the writer to pause... */
	assert_int_equal(tb_stream_write(f.o.s, "def", 3), TB_ENOBUFS);
	assert_false(f.o.drained);
	f.w.full = false;
	/* ...and it is woken when the WebSocket drains. Nothing was dropped. */
	tb_ls_mux_drained(f.m);
	assert_true(f.o.drained);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 2);
	close_fixture(&f);
}

static void test_backpressure_rx(void **state)
{
	struct fixture f = {0};
	uint8_t b[128];

	open_channel(&f);
	/* The owner's sink is full: it pauses the channel, which pauses the
	 * WebSocket's reading (§11); what still arrives waits in the channel. */
	tb_stream_pause(f.o.s);
	assert_int_equal(f.w.paused, 1);
	tb_ls_mux_input(f.m, b, mk_data(b, f.id, "queued"));
	assert_int_equal(f.o.ngot, 0);
	tb_ls_mux_input(f.m, b, mk_disconnect(b, f.id));
	assert_false(f.o.eof);
	tb_stream_resume(f.o.s);
	assert_int_equal(f.w.paused, 0);
	spin(f.loop);
	/* The bytes first, then the end. */
	assert_int_equal(f.o.ngot, 6);
	assert_memory_equal(f.o.got, "queued", 6);
	assert_true(f.o.eof);
	close_fixture(&f);
}

static void test_shutdown_sends_disconnect(void **state)
{
	struct fixture f = {0};
	tb_ls_msg_t m;
	uint8_t b[128];

	open_channel(&f);
	/* §4.3: no half-close on the wire: our EOF is Disconnect{"EOF"}, and
	 * the channel is over both ways. */
	assert_int_equal(tb_stream_shutdown(f.o.s), 0);
	last_msg(&f.w, &m);
	assert_int_equal(m.type, TB_LS_DISCONNECT);
	assert_memory_equal(m.disconnect.channel, f.id, 16);
	assert_int_equal(m.disconnect.error.len, 3);
	assert_memory_equal(m.disconnect.error.p, "EOF", 3);
	spin(f.loop);
	assert_true(f.o.eof);
	/* The reference keeps sending for 5 s (§10.6): dropped quietly. */
	size_t before = f.w.n;
	tb_ls_mux_input(f.m, b, mk_data(b, f.id, "late"));
	assert_int_equal(f.o.ngot, 0);
	tb_stream_close(f.o.s);
	f.o.closed = true;
	assert_int_equal(f.w.n, before); /* no second Disconnect */
	assert_int_equal(tb_ls_mux_channels(f.m), 0);
	close_fixture(&f);
}

static void test_dead_transport_fails_channels(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	struct wire w = {0};
	tb_ls_mux_t *mux;
	struct owner open = {0}, pending = {0};
	tb_target_t t;
	tb_ls_msg_t m;
	uint8_t b[64];

	assert_int_equal(tb_ls_mux_new(loop, &fake, &w, NULL, NULL, NULL, &mux), 0);
	assert_int_equal(tb_target_set(&t, "a.test", 6, 1), 0);
	assert_int_equal(tb_ls_mux_open(mux, &t, false, opened, &open, NULL), 0);
	last_msg(&w, &m);
	tb_ls_mux_input(mux, b, mk_connect_response(b, m.connect.channel, true));
	assert_int_equal(tb_ls_mux_open(mux, &t, false, opened, &pending, NULL), 0);
	/* The WebSocket dies: a SOCKS client must get an error, not a hang. */
	tb_ls_mux_free(mux, TB_ECONNRESET);
	assert_true(open.closed);
	assert_int_equal(open.close_err, TB_ECONNRESET);
	assert_true(pending.failed);
	assert_int_equal(pending.err, TB_ENETUNREACH);
	/* The owner still closes its stream; nothing is sent any more. */
	size_t before = w.n;
	assert_int_equal(tb_stream_write(open.s, "x", 1), TB_EPIPE);
	tb_stream_close(open.s);
	assert_int_equal(w.n, before);
	wire_clear(&w);
	tb_loop_free(loop);
}

static void test_connect_wait_times_out(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	struct wire w = {0};
	tb_ls_mux_opts_t o = {.connect_wait_ms = 20};
	tb_ls_mux_t *mux;
	struct owner own = {0};
	tb_target_t t;

	assert_int_equal(tb_ls_mux_new(loop, &fake, &w, &o, NULL, NULL, &mux), 0);
	assert_int_equal(tb_target_set(&t, "slow.test", 9, 1), 0);
	assert_int_equal(tb_ls_mux_open(mux, &t, false, opened, &own, NULL), 0);
	for (int i = 0; i < 100 && !own.failed; i++)
		tb_loop_once(loop, 5);
	/* §4.1: no ConnectResponse in time: REP 4, and a Disconnect. */
	assert_true(own.failed);
	assert_int_equal(own.err, TB_EHOSTUNREACH);
	tb_ls_msg_t m;
	last_msg(&w, &m);
	assert_int_equal(m.type, TB_LS_DISCONNECT);
	tb_ls_mux_free(mux, 0);
	wire_clear(&w);
	tb_loop_free(loop);
}

static void test_fast_open(void **state)
{
	tb_loop_t *loop = tb_loop_new();
	struct wire w = {0};
	tb_ls_mux_t *mux;
	struct owner own = {0};
	tb_target_t t;
	tb_ls_msg_t m;
	uint8_t b[64];

	assert_int_equal(tb_ls_mux_new(loop, &fake, &w, NULL, NULL, NULL, &mux), 0);
	assert_int_equal(tb_target_set(&t, "fast.test", 9, 1), 0);
	assert_int_equal(tb_ls_mux_open(mux, &t, true, opened, &own, NULL), 0);
	last_msg(&w, &m);
	assert_false(own.opened); /* never inside the call */
	spin(loop);
	/* §4.1 fast-open: usable before the ConnectResponse. */
	assert_true(own.opened);
	assert_int_equal(tb_stream_write(own.s, "early", 5), 0);
	/* A refusal afterwards fails the stream. */
	tb_ls_mux_input(mux, b, mk_connect_response(b, m.connect.channel, false));
	assert_true(own.closed);
	assert_int_equal(own.close_err, TB_EHOSTUNREACH);
	tb_stream_close(own.s);
	tb_ls_mux_free(mux, 0);
	wire_clear(&w);
	tb_loop_free(loop);
}

/* Concatenates the payloads of the Data messages on the wire (inflating
 * gzip ones) into out; returns the number of bytes; counts gzip ones. */
static size_t wire_payload(struct wire *w, const uint8_t id[16], uint8_t *out, size_t cap, size_t *ngzip)
{
	tb_ls_inflater_t *z = tb_ls_inflater_new(0);
	size_t n = 0;

	assert_non_null(z);
	*ngzip = 0;
	for (size_t i = 0; i < w->n; i++) {
		tb_ls_msg_t m;
		assert_int_equal(tb_ls_msg_decode(w->msg[i], w->len[i], &m), 0);
		if (m.type != TB_LS_DATA)
			continue;
		assert_memory_equal(m.data.channel, id, 16);
		if (m.data.compression == TB_LS_COMP_GZIP) {
			uint8_t chunk[8192];
			int k;
			(*ngzip)++;
			assert_int_equal(tb_ls_inflate_begin(z, m.data.payload, m.data.len), 0);
			while ((k = tb_ls_inflate_read(z, chunk, sizeof(chunk))) > 0) {
				assert_true(n + (size_t)k <= cap);
				memcpy(out + n, chunk, (size_t)k);
				n += (size_t)k;
			}
			assert_int_equal(k, 0);
		} else {
			assert_true(n + m.data.len <= cap);
			memcpy(out + n, m.data.payload, m.data.len);
			n += m.data.len;
		}
	}
	tb_ls_inflater_free(z);
	return n;
}

static void test_batching(void **state)
{
	struct fixture f = {0};
	tb_ls_msg_t m;

	open_channel(&f);
	/* §4.2, without the reference's delay: writes of one loop turn become
	 * one message when the turn ends; nothing waits for more data. */
	assert_int_equal(tb_stream_write(f.o.s, "ab", 2), 0);
	assert_int_equal(tb_stream_write(f.o.s, "cd", 2), 0);
	assert_int_equal(tb_stream_write(f.o.s, "ef", 2), 0);
	assert_int_equal(f.w.n, 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 1);
	last_msg(&f.w, &m);
	assert_int_equal(m.data.len, 6);
	assert_memory_equal(m.data.payload, "abcdef", 6);
	/* The next turn's write is the next message. */
	assert_int_equal(tb_stream_write(f.o.s, "g", 1), 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 2);
	last_msg(&f.w, &m);
	assert_int_equal(m.data.len, 1);
	/* A batch goes out before the Disconnect of a shutdown... */
	assert_int_equal(tb_stream_write(f.o.s, "tail", 4), 0);
	assert_int_equal(tb_stream_shutdown(f.o.s), 0);
	assert_int_equal(f.w.n, 4);
	assert_int_equal(tb_ls_msg_decode(f.w.msg[2], f.w.len[2], &m), 0);
	assert_int_equal(m.type, TB_LS_DATA);
	assert_memory_equal(m.data.payload, "tail", 4);
	last_msg(&f.w, &m);
	assert_int_equal(m.type, TB_LS_DISCONNECT);
	/* ...and nothing is sent after it. */
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 4);
	close_fixture(&f);
}

static void test_batch_close_flushes(void **state)
{
	struct fixture f = {0};
	tb_ls_msg_t m;

	open_channel(&f);
	/* What a write took goes out even when the owner closes at once. */
	assert_int_equal(tb_stream_write(f.o.s, "last", 4), 0);
	tb_stream_close(f.o.s);
	f.o.closed = true;
	assert_int_equal(f.w.n, 2);
	assert_int_equal(tb_ls_msg_decode(f.w.msg[0], f.w.len[0], &m), 0);
	assert_int_equal(m.type, TB_LS_DATA);
	assert_memory_equal(m.data.payload, "last", 4);
	last_msg(&f.w, &m);
	assert_int_equal(m.type, TB_LS_DISCONNECT);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 2);
	close_fixture(&f);
}

static void test_batch_max(void **state)
{
	tb_ls_mux_opts_t o = {.batch_max = 1024, .compress_min = 0};
	struct fixture f = {0};
	static uint8_t in[5000], out[5000];
	size_t ngz;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 31 + 7);
	open_channel_opts(&f, &o);
	/* A small write waits for the turn; a big one first sends what waits,
	 * then full messages at once; only its tail waits. */
	assert_int_equal(tb_stream_write(f.o.s, in, 300), 0);
	assert_int_equal(f.w.n, 0);
	assert_int_equal(tb_stream_write(f.o.s, in + 300, 2500), 0);
	assert_int_equal(f.w.n, 3);
	assert_int_equal(f.w.len[0], 24 + 300);
	assert_int_equal(f.w.len[1], 24 + 1024);
	assert_int_equal(f.w.len[2], 24 + 1024);
	assert_int_equal(tb_stream_write(f.o.s, in + 2800, 2200), 0);
	assert_int_equal(f.w.n, 6); /* 452 left from before, 1024, 1024 */
	assert_int_equal(f.w.len[3], 24 + 452);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 7); /* the last 152 */
	assert_int_equal(f.w.len[6], 24 + 152);
	for (size_t i = 0; i < f.w.n; i++)
		assert_true(f.w.len[i] <= 24 + 1024);
	assert_int_equal(wire_payload(&f.w, f.id, out, sizeof(out), &ngz), sizeof(in));
	assert_int_equal(ngz, 0);
	assert_memory_equal(out, in, sizeof(in));
	close_fixture(&f);
}

static void test_compress_on_send(void **state)
{
	tb_ls_mux_opts_t o = {.batch_max = 256 * 1024, .compress_min = 4096};
	struct fixture f = {0};
	static uint8_t text[200000], noise[8192], out[300000];
	size_t ngz, n = 0;
	uint32_t x = 12345;

	/* Compressible: repeated words. Incompressible: an LCG's high bytes. */
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = "tunnelbox carries bytes "[i % 24];
	for (size_t i = 0; i < sizeof(noise); i++) {
		x = x * 1103515245u + 12345u;
		noise[i] = (uint8_t)(x >> 23);
	}
	open_channel_opts(&f, &o);
	/* Below the threshold: sent as is. */
	assert_int_equal(tb_stream_write(f.o.s, text, 100), 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 1);
	/* At or above it and smaller gzipped: gzip (§3.5), one member each. */
	for (size_t off = 100; off < sizeof(text); off += 32768)
		assert_int_equal(tb_stream_write(f.o.s, text + off, TB_MIN(32768, sizeof(text) - off)), 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 8); /* 6 writes of 32 KiB, then the last 3292 bytes */
	tb_ls_msg_t m;
	for (size_t i = 1; i < 7; i++) {
		assert_int_equal(tb_ls_msg_decode(f.w.msg[i], f.w.len[i], &m), 0);
		assert_int_equal(m.data.compression, TB_LS_COMP_GZIP);
		assert_true(m.data.len < 2000);
		/* The header Go writes: magic, deflate, no flags, mtime 0, OS ff. */
		assert_memory_equal(m.data.payload, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
		assert_int_equal(m.data.payload[9], 0xff);
	}
	last_msg(&f.w, &m);
	assert_int_equal(m.data.len, 3292); /* under the threshold: as is */
	assert_int_equal(m.data.compression, TB_LS_COMP_NONE);
	/* Above the threshold but not smaller gzipped: sent as is. */
	assert_int_equal(tb_stream_write(f.o.s, noise, sizeof(noise)), 0);
	tb_loop_once(f.loop, 0);
	assert_int_equal(f.w.n, 9);
	last_msg(&f.w, &m);
	assert_int_equal(m.data.compression, TB_LS_COMP_NONE);
	n = wire_payload(&f.w, f.id, out, sizeof(out), &ngz);
	assert_int_equal(ngz, 6);
	assert_int_equal(n, sizeof(text) + sizeof(noise));
	assert_memory_equal(out, text, sizeof(text));
	assert_memory_equal(out + sizeof(text), noise, sizeof(noise));
	close_fixture(&f);
}

static void test_mux_opts_conf(void **state)
{
	static const char good[] = "batch_max = 65536\ncompress_threshold = 0\ncompress_level = 1\n";
	static const char bad[][48] = {"batch_max = 10\n", "batch_max = 99999999\n", "compress_threshold = -1\n",
				       "compress_level = 0\n", "compress_level = 10\n"};
	tb_ls_mux_opts_t o = {0};
	tb_conf_err_t err;
	tb_conf_t *c;

	assert_int_equal(tb_conf_parse("", 0, "t", &c, &err), 0);
	assert_int_equal(tb_ls_mux_opts_conf(&o, c->root, &err), 0);
	assert_int_equal(o.batch_max, 1u << 20);
	assert_int_equal(o.compress_min, ENABLE_ZLIB ? TB_LS_COMPRESS_MIN_DEFAULT : 0);
	tb_conf_free(c);
	assert_int_equal(tb_conf_parse(good, strlen(good), "t", &c, &err), 0);
	assert_int_equal(tb_ls_mux_opts_conf(&o, c->root, &err), 0);
	assert_int_equal(o.batch_max, 65536);
	assert_int_equal(o.compress_min, 0);
	assert_int_equal(o.compress_level, 1);
	tb_conf_free(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tb_conf_parse(bad[i], strlen(bad[i]), "t", &c, &err), 0);
		assert_int_equal(tb_ls_mux_opts_conf(&o, c->root, &err), TB_EINVAL);
		tb_conf_free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_data_both_ways),
		cmocka_unit_test(test_refused_and_unknown_channels),
		cmocka_unit_test(test_backpressure_tx),
		cmocka_unit_test(test_backpressure_rx),
		cmocka_unit_test(test_shutdown_sends_disconnect),
		cmocka_unit_test(test_dead_transport_fails_channels),
		cmocka_unit_test(test_connect_wait_times_out),
		cmocka_unit_test(test_fast_open),
		cmocka_unit_test(test_batching),
		cmocka_unit_test(test_batch_close_flushes),
		cmocka_unit_test(test_batch_max),
		cmocka_unit_test(test_compress_on_send),
		cmocka_unit_test(test_mux_opts_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
