/* test_loop.c: timers, deferred calls, fd events, before-sleep and stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tb/loop.h"
#include "tb/port.h"

#define MAXREC 512
#define STRESS_N 300 /* timers in the stress test */

/* What the callbacks saw, in order. */
struct rec {
	tb_loop_t *loop;
	int order[MAXREC];
	int n;
};

struct tmr {
	tb_timer_t t;
	struct rec *rec;
	int id;
	int rearm;	    /* times left to rearm itself */
	struct tmr *victim; /* timer to stop (and maybe free) when firing */
	bool free_victim, free_self;
};

static void record(struct rec *r, int id)
{
	assert_true(r->n < MAXREC);
	r->order[r->n++] = id;
}

static void tmr_cb(tb_loop_t *loop, void *arg)
{
	struct tmr *t = arg;
	struct rec *r = t->rec;

	record(r, t->id);
	if (t->victim) {
		tb_timer_stop(loop, &t->victim->t);
		if (t->free_victim)
			free(t->victim);
		t->victim = NULL;
	}
	if (t->rearm > 0) {
		t->rearm--;
		tb_timer_start(loop, &t->t, 0);
	}
	if (t->free_self)
		free(t);
}

static struct tmr *tmr_new(struct rec *r, int id)
{
	struct tmr *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->rec = r;
	t->id = id;
	tb_timer_init(&t->t, tmr_cb, t);
	return t;
}

/* Turns the loop until want records exist; fails after too many turns. */
static void run_until(tb_loop_t *loop, struct rec *r, int want)
{
	int turns = 0;

	while (r->n < want) {
		assert_int_equal(tb_loop_once(loop, 1000), 0);
		assert_true(++turns < 1000);
	}
}

static int setup(void **state)
{
	struct rec *r = calloc(1, sizeof(*r));

	if (!r)
		return -1;
	r->loop = tb_loop_new();
	if (!r->loop) {
		free(r);
		return -1;
	}
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct rec *r = *state;

	tb_loop_free(r->loop);
	free(r);
	return 0;
}

static void test_timer_order(void **state)
{
	struct rec *r = *state;
	static const int ms[] = {30, 10, 20, 0, 25};
	static const int want[] = {3, 1, 2, 4, 0};
	struct tmr t[5];
	uint64_t start = tb_loop_update_now(r->loop);
	int i;

	for (i = 0; i < 5; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].rec = r;
		t[i].id = i;
		tb_timer_init(&t[i].t, tmr_cb, &t[i]);
		assert_false(tb_timer_active(&t[i].t));
		tb_timer_start(r->loop, &t[i].t, (uint64_t)ms[i]);
		assert_true(tb_timer_active(&t[i].t));
	}
	run_until(r->loop, r, 5);
	assert_memory_equal(r->order, want, sizeof(want));
	for (i = 0; i < 5; i++)
		assert_false(tb_timer_active(&t[i].t));
	/* The loop slept rather than spun, and no timer fired early. */
	assert_true(tb_loop_now(r->loop) - start >= 30);
}

static void test_timer_equal_deadlines(void **state)
{
	struct rec *r = *state;
	static const int want[] = {0, 2, 3, 5, 1, 4};
	struct tmr t[6];
	int i;

	tb_loop_update_now(r->loop);
	for (i = 0; i < 6; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].rec = r;
		t[i].id = i;
		tb_timer_init(&t[i].t, tmr_cb, &t[i]);
		tb_timer_start(r->loop, &t[i].t, 5);
	}
	/* Restarting moves a timer behind the others with its deadline. */
	tb_timer_start(r->loop, &t[1].t, 5);
	tb_timer_start(r->loop, &t[4].t, 5);
	run_until(r->loop, r, 6);
	assert_memory_equal(r->order, want, sizeof(want));
}

static void test_timer_cancel_in_callback(void **state)
{
	struct rec *r = *state;
	struct tmr a = {.rec = r, .id = 1}, b = {.rec = r, .id = 2}, c = {.rec = r, .id = 3};

	tb_timer_init(&a.t, tmr_cb, &a);
	tb_timer_init(&b.t, tmr_cb, &b);
	tb_timer_init(&c.t, tmr_cb, &c);
	tb_loop_update_now(r->loop);
	/* All three are due in the same turn; a stops b before b's turn. */
	a.victim = &b;
	tb_timer_start(r->loop, &a.t, 2);
	tb_timer_start(r->loop, &b.t, 2);
	tb_timer_start(r->loop, &c.t, 2);
	run_until(r->loop, r, 2);
	assert_int_equal(r->n, 2);
	assert_int_equal(r->order[0], 1);
	assert_int_equal(r->order[1], 3);
	assert_false(tb_timer_active(&b.t));
	/* Nothing left: a bounded turn fires nothing more. */
	assert_int_equal(tb_loop_once(r->loop, 20), 0);
	assert_int_equal(r->n, 2);
	/* Stopping a stopped timer is harmless. */
	tb_timer_stop(r->loop, &b.t);
	tb_timer_stop(r->loop, &b.t);
}

static void test_timer_rearm_self(void **state)
{
	struct rec *r = *state;
	struct tmr a = {.rec = r, .id = 7, .rearm = 3};
	int turns = 0;

	tb_timer_init(&a.t, tmr_cb, &a);
	tb_timer_start(r->loop, &a.t, 0);
	/* A 0 ms rearm from its own callback fires next turn, not in a spin. */
	while (r->n < 4) {
		int before = r->n;

		assert_int_equal(tb_loop_once(r->loop, 1000), 0);
		assert_true(r->n - before <= 1);
		assert_true(++turns < 100);
	}
	assert_false(tb_timer_active(&a.t));
	assert_int_equal(tb_loop_once(r->loop, 10), 0);
	assert_int_equal(r->n, 4);
}

static void test_timer_free_other_and_self(void **state)
{
	struct rec *r = *state;
	struct tmr *a = tmr_new(r, 1), *b = tmr_new(r, 2), *c = tmr_new(r, 3);

	/* a frees b (due in the same turn), then frees itself; c frees itself. */
	a->victim = b;
	a->free_victim = true;
	a->free_self = true;
	c->free_self = true;
	tb_loop_update_now(r->loop);
	tb_timer_start(r->loop, &a->t, 1);
	tb_timer_start(r->loop, &b->t, 1);
	tb_timer_start(r->loop, &c->t, 3);
	run_until(r->loop, r, 2);
	assert_int_equal(r->order[0], 1);
	assert_int_equal(r->order[1], 3);
	/* ASan reports any later touch of the freed timers. */
	assert_int_equal(tb_loop_once(r->loop, 5), 0);
	assert_int_equal(r->n, 2);
}

/* Many timers, stops and restarts: firing follows (deadline, arming order). */
static void test_timer_heap_stress(void **state)
{
	struct rec *r = *state;
	struct tmr *t = calloc(STRESS_N, sizeof(*t));
	int ms[STRESS_N], expect[STRESS_N], ne = 0, i, d;
	uint32_t rnd = 12345;

	assert_non_null(t);
	tb_loop_update_now(r->loop);
	for (i = 0; i < STRESS_N; i++) {
		rnd = rnd * 1103515245u + 12345u;
		ms[i] = (int)(rnd >> 16) % 40;
		t[i].rec = r;
		t[i].id = i;
		tb_timer_init(&t[i].t, tmr_cb, &t[i]);
		tb_timer_start(r->loop, &t[i].t, (uint64_t)ms[i]);
	}
	for (i = 0; i < STRESS_N; i += 3)
		tb_timer_stop(r->loop, &t[i].t);
	for (i = 1; i < STRESS_N; i += 7) { /* restart: now last among its deadline */
		ms[i] = (ms[i] + 13) % 40;
		tb_timer_start(r->loop, &t[i].t, (uint64_t)ms[i]);
	}
	/* Expected order: by deadline; ties by last arming (first pass order,
	 * then the restarted ones, stopped or not, in their restart order). */
	for (d = 0; d < 40; d++) {
		for (i = 0; i < STRESS_N; i++)
			if (i % 3 && i % 7 != 1 && ms[i] == d)
				expect[ne++] = i;
		for (i = 1; i < STRESS_N; i += 7)
			if (ms[i] == d)
				expect[ne++] = i;
	}
	run_until(r->loop, r, ne);
	assert_int_equal(tb_loop_once(r->loop, 50), 0);
	assert_int_equal(r->n, ne);
	assert_memory_equal(r->order, expect, (size_t)ne * sizeof(int));
	free(t);
}

/* ---- deferred calls ---- */

struct dfr {
	tb_defer_t d;
	struct rec *rec;
	int id;
	tb_defer_t *requeue; /* queue this when running */
	tb_defer_t *cancel;  /* cancel this when running */
};

static void dfr_cb(tb_loop_t *loop, void *arg)
{
	struct dfr *d = arg;

	record(d->rec, d->id);
	if (d->requeue)
		tb_defer(loop, d->requeue);
	if (d->cancel)
		tb_defer_cancel(loop, d->cancel);
}

static void dfr_init(struct dfr *d, struct rec *r, int id)
{
	memset(d, 0, sizeof(*d));
	d->rec = r;
	d->id = id;
	tb_defer_init(&d->d, dfr_cb, d);
}

static void test_defer_fifo(void **state)
{
	struct rec *r = *state;
	struct dfr d[4];
	int i;

	for (i = 0; i < 4; i++)
		dfr_init(&d[i], r, i);
	tb_defer(r->loop, &d[2].d);
	tb_defer(r->loop, &d[0].d);
	tb_defer(r->loop, &d[3].d);
	tb_defer(r->loop, &d[1].d);
	tb_defer(r->loop, &d[0].d); /* twice: no-op */
	tb_defer_cancel(r->loop, &d[3].d);
	tb_defer_cancel(r->loop, &d[3].d);
	assert_int_equal(tb_loop_once(r->loop, 0), 0);
	assert_int_equal(r->n, 3);
	assert_int_equal(r->order[0], 2);
	assert_int_equal(r->order[1], 0);
	assert_int_equal(r->order[2], 1);
	assert_false(d[0].d.queued);
	/* Cancelling the tail keeps appends working. */
	tb_defer(r->loop, &d[0].d);
	tb_defer(r->loop, &d[1].d);
	tb_defer_cancel(r->loop, &d[1].d);
	tb_defer(r->loop, &d[3].d);
	assert_int_equal(tb_loop_once(r->loop, 0), 0);
	assert_int_equal(r->n, 5);
	assert_int_equal(r->order[3], 0);
	assert_int_equal(r->order[4], 3);
}

static void test_defer_next_turn(void **state)
{
	struct rec *r = *state;
	struct dfr a, b, c;
	tb_timer_t far;
	uint64_t t0;

	dfr_init(&a, r, 1);
	dfr_init(&b, r, 2);
	dfr_init(&c, r, 3);
	a.requeue = &b.d; /* queued while running: next turn */
	b.requeue = &b.d; /* requeues itself forever */
	a.cancel = &c.d;  /* cancels one still waiting in this turn's list */
	tb_defer(r->loop, &a.d);
	tb_defer(r->loop, &c.d);
	/* Pending work means the poll must not sleep, whatever the timers and
	 * the caller's bound say. */
	tb_timer_init(&far, NULL, NULL);
	tb_timer_start(r->loop, &far, 60000);
	t0 = tb_port_now_ms();
	assert_int_equal(tb_loop_once(r->loop, 2000), 0);
	assert_int_equal(r->n, 1);
	assert_int_equal(tb_loop_once(r->loop, 2000), 0);
	assert_int_equal(r->n, 2);
	assert_int_equal(tb_loop_once(r->loop, 2000), 0);
	assert_int_equal(r->n, 3);
	assert_true(tb_port_now_ms() - t0 < 1000);
	assert_int_equal(r->order[0], 1);
	assert_int_equal(r->order[1], 2);
	assert_int_equal(r->order[2], 2);
	tb_defer_cancel(r->loop, &b.d);
	assert_false(b.d.queued);
	tb_timer_stop(r->loop, &far);
	assert_int_equal(tb_loop_once(r->loop, 0), 0);
	assert_int_equal(r->n, 3);
}

/* ---- fd events ---- */

struct fdc {
	struct rec *rec;
	int fd;
	unsigned events;
	int calls;
	int forget; /* fd to forget when called, or -1 */
};

static void fd_cb(tb_loop_t *loop, int fd, unsigned events, void *arg)
{
	struct fdc *c = arg;

	assert_int_equal(fd, c->fd);
	c->events |= events;
	c->calls++;
	record(c->rec, fd);
	if (c->forget >= 0)
		tb_loop_forget_fd(loop, c->forget);
}

static void test_fd_pipe(void **state)
{
	struct rec *r = *state;
	int p[2];
	char ch;
	struct fdc rd = {.rec = r, .forget = -1}, wr = {.rec = r, .forget = -1};

	assert_int_equal(pipe(p), 0);
	rd.fd = p[0];
	wr.fd = p[1];
	assert_int_equal(tb_loop_add_fd(r->loop, p[0], TB_EV_READ, fd_cb, &rd), 0);
	/* Nothing to read: a bounded turn returns without a call. */
	assert_int_equal(tb_loop_once(r->loop, 10), 0);
	assert_int_equal(rd.calls, 0);

	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(tb_loop_once(r->loop, 1000), 0);
	assert_int_equal(rd.calls, 1);
	assert_true(rd.events & TB_EV_READ);
	assert_false(rd.events & TB_EV_WRITE);

	/* Watching nothing keeps the registration but calls nothing. */
	assert_int_equal(tb_loop_set_fd(r->loop, p[0], 0), 0);
	assert_int_equal(tb_loop_once(r->loop, 10), 0);
	assert_int_equal(rd.calls, 1);
	assert_int_equal(tb_loop_set_fd(r->loop, p[0], TB_EV_READ), 0);
	assert_int_equal(tb_loop_once(r->loop, 1000), 0);
	assert_int_equal(rd.calls, 2);
	assert_int_equal(read(p[0], &ch, 1), 1);

	/* The write end is writable at once; removing WRITE silences it. */
	assert_int_equal(tb_loop_add_fd(r->loop, p[1], TB_EV_WRITE, fd_cb, &wr), 0);
	assert_int_equal(tb_loop_once(r->loop, 1000), 0);
	assert_int_equal(wr.calls, 1);
	assert_true(wr.events & TB_EV_WRITE);
	tb_loop_del_fd(r->loop, p[1], TB_EV_WRITE);
	assert_int_equal(tb_loop_once(r->loop, 10), 0);
	assert_int_equal(wr.calls, 1);
	tb_loop_forget_fd(r->loop, p[1]);
	assert_int_equal(tb_loop_set_fd(r->loop, p[1], TB_EV_WRITE), TB_ENOENT);

	/* EOF reaches the reader as a read event. */
	rd.calls = 0;
	close(p[1]);
	assert_int_equal(tb_loop_once(r->loop, 1000), 0);
	assert_int_equal(rd.calls, 1);
	assert_int_equal(read(p[0], &ch, 1), 0);
	tb_loop_del_fd(r->loop, p[0], 0); /* mask 0: forgotten */
	assert_int_equal(tb_loop_set_fd(r->loop, p[0], TB_EV_READ), TB_ENOENT);
	assert_int_equal(tb_loop_once(r->loop, 10), 0);
	assert_int_equal(rd.calls, 1);
	close(p[0]);

	assert_int_equal(tb_loop_add_fd(r->loop, -1, TB_EV_READ, fd_cb, &rd), TB_EINVAL);
}

/* Two ready fds; whichever runs first forgets the other, which must then
 * not be called in that same batch. */
static void test_fd_forget_in_batch(void **state)
{
	struct rec *r = *state;
	int a[2], b[2];
	struct fdc ca = {.rec = r}, cb = {.rec = r};

	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	ca.fd = a[0];
	cb.fd = b[0];
	ca.forget = b[0];
	cb.forget = a[0];
	assert_int_equal(tb_loop_add_fd(r->loop, a[0], TB_EV_READ, fd_cb, &ca), 0);
	assert_int_equal(tb_loop_add_fd(r->loop, b[0], TB_EV_READ, fd_cb, &cb), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "x", 1), 1);
	assert_int_equal(tb_loop_once(r->loop, 1000), 0);
	assert_int_equal(ca.calls + cb.calls, 1);
	tb_loop_forget_fd(r->loop, a[0]);
	tb_loop_forget_fd(r->loop, b[0]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

/* Two ready pipes; whichever callback runs first closes the other's read
 * end and registers a fresh, empty pipe under the same fd number. The old
 * fd's pending event must not reach the new registration. */
struct reuse {
	struct rec *rec;
	int rd[2], wr[2];
	int fresh[2];
	int calls, fresh_calls;
};

static void fresh_cb(tb_loop_t *loop, int fd, unsigned events, void *arg)
{
	struct reuse *u = arg;

	u->fresh_calls++;
}

static void reuse_cb(tb_loop_t *loop, int fd, unsigned events, void *arg)
{
	struct reuse *u = arg;
	int other = fd == u->rd[0] ? u->rd[1] : u->rd[0];

	if (u->calls++)
		return;
	tb_loop_forget_fd(loop, other);
	close(other);
	assert_int_equal(pipe(u->fresh), 0);
	assert_int_equal(u->fresh[0], other); /* POSIX: lowest free number */
	assert_int_equal(tb_loop_add_fd(loop, u->fresh[0], TB_EV_READ, fresh_cb, u), 0);
}

static void test_fd_reuse_in_batch(void **state)
{
	struct reuse u = {.rec = *state};
	tb_loop_t *loop = u.rec->loop;
	int a[2], b[2];

	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	u.rd[0] = a[0];
	u.rd[1] = b[0];
	assert_int_equal(tb_loop_add_fd(loop, a[0], TB_EV_READ, reuse_cb, &u), 0);
	assert_int_equal(tb_loop_add_fd(loop, b[0], TB_EV_READ, reuse_cb, &u), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "x", 1), 1);
	assert_int_equal(tb_loop_once(loop, 1000), 0);
	assert_int_equal(u.calls, 1);
	assert_int_equal(u.fresh_calls, 0);
	/* Once data really arrives, the new registration hears it. */
	assert_int_equal(write(u.fresh[1], "y", 1), 1);
	assert_int_equal(tb_loop_once(loop, 1000), 0);
	assert_int_equal(u.fresh_calls, 1);
	tb_loop_forget_fd(loop, a[0]);
	tb_loop_forget_fd(loop, b[0]);
	tb_loop_forget_fd(loop, u.fresh[0]);
	close(u.fresh[0] == a[0] ? b[0] : a[0]);
	close(u.fresh[0]);
	close(u.fresh[1]);
	close(a[1]);
	close(b[1]);
}

/* A high fd number grows the table. */
static void test_fd_high(void **state)
{
	struct rec *r = *state;
	int p[2], hi;
	struct fdc c = {.rec = r, .forget = -1};

	assert_int_equal(pipe(p), 0);
	hi = dup2(p[0], 700);
	assert_int_equal(hi, 700);
	c.fd = hi;
	assert_int_equal(tb_loop_add_fd(r->loop, hi, TB_EV_READ, fd_cb, &c), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(tb_loop_once(r->loop, 1000), 0);
	assert_int_equal(c.calls, 1);
	tb_loop_forget_fd(r->loop, hi);
	close(hi);
	close(p[0]);
	close(p[1]);
}

/* ---- before-sleep and stop ---- */

struct bs {
	int calls;
	struct dfr d;
};

static void before_sleep(tb_loop_t *loop, void *arg)
{
	struct bs *b = arg;

	/* Work queued here runs next turn, and the poll must not block. */
	if (b->calls++ == 0)
		tb_defer(loop, &b->d.d);
}

static void test_before_sleep(void **state)
{
	struct rec *r = *state;
	struct bs b = {0};
	uint64_t t0 = tb_port_now_ms();

	dfr_init(&b.d, r, 9);
	tb_loop_set_before_sleep(r->loop, before_sleep, &b);
	assert_int_equal(tb_loop_once(r->loop, 2000), 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(r->n, 0);
	assert_int_equal(tb_loop_once(r->loop, 5), 0);
	assert_int_equal(b.calls, 2);
	assert_int_equal(r->n, 1);
	assert_true(tb_port_now_ms() - t0 < 1000);
	tb_loop_set_before_sleep(r->loop, NULL, NULL);
	assert_int_equal(tb_loop_once(r->loop, 0), 0);
	assert_int_equal(b.calls, 2);
}

static void stop_cb(tb_loop_t *loop, void *arg)
{
	struct tmr *t = arg;

	record(t->rec, t->id);
	if (t->rec->n < 3)
		tb_timer_start(loop, &t->t, 1);
	else
		tb_loop_stop(loop);
}

static void stop_defer_cb(tb_loop_t *loop, void *arg)
{
	(void)arg;
	tb_loop_stop(loop);
}

static void test_stop(void **state)
{
	struct rec *r = *state;
	struct tmr t = {.rec = r, .id = 1};
	tb_defer_t d;
	tb_timer_t far;
	uint64_t t0;

	tb_timer_init(&t.t, stop_cb, &t);
	tb_timer_start(r->loop, &t.t, 1);
	assert_int_equal(tb_loop_run(r->loop), 0);
	assert_int_equal(r->n, 3);

	/* A stop from a deferred call ends the run without sleeping on the
	 * far timer; the loop can then run again. */
	tb_timer_init(&far, NULL, NULL);
	tb_timer_start(r->loop, &far, 3000); /* a wrong sleep shows, not hangs */
	tb_defer_init(&d, stop_defer_cb, NULL);
	tb_defer(r->loop, &d);
	t0 = tb_port_now_ms();
	assert_int_equal(tb_loop_run(r->loop), 0);
	tb_defer(r->loop, &d);
	assert_int_equal(tb_loop_run(r->loop), 0);
	assert_true(tb_port_now_ms() - t0 < 1000);
	tb_timer_stop(r->loop, &far);
}

static void test_clock(void **state)
{
	struct rec *r = *state;
	uint64_t a = tb_loop_update_now(r->loop), b;

	assert_int_equal(tb_loop_now(r->loop), a);
	/* A bounded wait with nothing to do sleeps about that long. */
	assert_int_equal(tb_loop_once(r->loop, 20), 0);
	b = tb_loop_now(r->loop);
	assert_true(b - a >= 19);
	assert_true(b - a < 1000);
	assert_non_null(tb_poll_name());
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timer_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_equal_deadlines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_cancel_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearm_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_free_other_and_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_heap_stress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_next_turn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_forget_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_reuse_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_high, setup, teardown),
		cmocka_unit_test_setup_teardown(test_before_sleep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock, setup, teardown),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
