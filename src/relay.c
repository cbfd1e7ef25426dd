/* relay.c: two streams joined with backpressure and half-close.
 *
 * Side i's bytes are written to side 1-i. A write that fills the sink
 * (TB_ENOBUFS) pauses the source until the sink's on_drain: memory per
 * direction is bounded by the sink's high-water mark plus one read. EOF on
 * side i becomes shutdown() of side 1-i; the relay is done when both
 * directions have ended and both half-closes have been sent. */
#include <stdlib.h>

#include "tb/log.h"
#include "tb/relay.h"

struct tb_relay {
	tb_loop_t *loop;
	tb_stream_t *s[2];
	bool eof[2];     /* side i will send no more */
	bool flushed[2]; /* side i was shut down and its queue is empty */
	bool paused[2];  /* side i is paused because side 1-i is full */
	tb_timer_t idle;
	uint32_t idle_ms;
	uint64_t last;
	tb_relay_stats_t st;
	tb_relay_done_cb done;
	void *arg;
};

static void relay_finish(tb_relay_t *r, int err)
{
	tb_relay_done_cb done = r->done;
	void *arg = r->arg;
	tb_relay_stats_t st = r->st;

	st.err = err;
	tb_timer_stop(r->loop, &r->idle);
	tb_stream_close(r->s[0]);
	tb_stream_close(r->s[1]);
	if (done)
		done(arg, r, &st);
	free(r);
}

static void relay_check_done(tb_relay_t *r)
{
	if (r->flushed[0] && r->flushed[1])
		relay_finish(r, 0);
}

static void relay_data(tb_relay_t *r, int i, const uint8_t *data, size_t len)
{
	tb_stream_t *sink = r->s[1 - i];
	int rc = tb_stream_write(sink, data, len);

	r->last = tb_loop_now(r->loop);
	if (i == 0)
		r->st.a_to_b += len;
	else
		r->st.b_to_a += len;
	if (rc == TB_ENOBUFS) {
		r->paused[i] = true;
		tb_stream_pause(r->s[i]);
	} else if (rc < 0) {
		relay_finish(r, rc);
	}
}

static void relay_drain(tb_relay_t *r, int j)
{
	int i = 1 - j; /* the source that feeds side j */

	if (r->paused[i]) {
		r->paused[i] = false;
		tb_stream_resume(r->s[i]);
	}
	if (r->eof[i] && !r->flushed[j] && tb_stream_queued(r->s[j]) == 0) {
		r->flushed[j] = true;
		relay_check_done(r);
	}
}

static void relay_eof(tb_relay_t *r, int i)
{
	tb_stream_t *sink = r->s[1 - i];

	if (r->eof[i])
		return;
	r->eof[i] = true;
	if (tb_stream_shutdown(sink) < 0) {
		relay_finish(r, TB_EPIPE);
		return;
	}
	if (tb_stream_queued(sink) == 0) {
		r->flushed[1 - i] = true;
		relay_check_done(r);
	}
}

static void relay_closed(tb_relay_t *r, int i, int err)
{
	/* A stream that dies cleanly after both half-closes is just done. */
	if (err == 0 && r->eof[i]) {
		r->flushed[i] = true;
		relay_check_done(r);
		return;
	}
	relay_finish(r, err < 0 ? err : TB_ECONNRESET);
}

#define SIDE_HANDLER(n)                                                                   \
	static void on_data##n(void *ctx, tb_stream_t *s, const uint8_t *d, size_t len)   \
	{                                                                                 \
		relay_data(ctx, n, d, len);                                               \
	}                                                                                 \
	static void on_drain##n(void *ctx, tb_stream_t *s) { relay_drain(ctx, n); }       \
	static void on_eof##n(void *ctx, tb_stream_t *s) { relay_eof(ctx, n); }           \
	static void on_close##n(void *ctx, tb_stream_t *s, int err) { relay_closed(ctx, n, err); } \
	static const tb_stream_handler_t handler##n = {on_data##n, on_drain##n, on_eof##n, on_close##n};

SIDE_HANDLER(0)
SIDE_HANDLER(1)

static void relay_idle(tb_loop_t *loop, void *arg)
{
	tb_relay_t *r = arg;
	uint64_t now = tb_loop_now(loop);

	/* Re-armed lazily: activity only stamps r->last, so the hot path never
	 * touches the timer heap. */
	if (now - r->last >= r->idle_ms) {
		relay_finish(r, TB_ETIMEDOUT);
		return;
	}
	tb_timer_start(loop, &r->idle, r->idle_ms - (now - r->last));
}

int tb_relay_start(tb_loop_t *loop, tb_stream_t *a, tb_stream_t *b, const tb_relay_opts_t *o, tb_relay_t **out)
{
	tb_relay_t *r = calloc(1, sizeof(*r));

	if (!r) {
		tb_stream_close(a);
		tb_stream_close(b);
		return TB_ENOMEM;
	}
	r->loop = loop;
	r->s[0] = a;
	r->s[1] = b;
	r->idle_ms = o ? o->idle_ms : 0;
	r->done = o ? o->done : NULL;
	r->arg = o ? o->arg : NULL;
	r->last = tb_loop_now(loop);
	tb_timer_init(&r->idle, relay_idle, r);
	if (r->idle_ms)
		tb_timer_start(loop, &r->idle, r->idle_ms);
	tb_stream_set_handler(a, &handler0, r);
	tb_stream_set_handler(b, &handler1, r);
	tb_stream_resume(a);
	tb_stream_resume(b);
	if (out)
		*out = r;
	if (o && o->a_eof)
		relay_eof(r, 0); /* only shuts b down: never finishes the relay here */
	return 0;
}

void tb_relay_abort(tb_relay_t *r, int err)
{
	relay_finish(r, err);
}
