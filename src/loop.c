/* loop.c: the event loop of loop.h, in the manner of Redis ae.
 *
 * One turn: run the deferred calls queued before it, call the before-sleep
 * hook, poll (not at all if more work is already queued, else until the
 * next timer), dispatch fd events, fire expired timers. The backend is the
 * one poll_*.c file the Makefile links in. */
#include "tb/loop.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tb/log.h"
#include "tb/port.h"

struct fd_slot {
	unsigned mask; /* events watched, as the backend knows them */
	tb_fd_cb cb;   /* NULL: not registered */
	void *arg;
	uint32_t batch; /* loop->batch when registered */
};

/* The arming sequence lives in the heap entry, not in tb_timer_t: equal
 * deadlines then fire in arming order without growing every timer. */
struct heap_ent {
	tb_timer_t *t;
	uint64_t seq;
};

struct tb_loop {
	tb_poll_t *poll;
	struct fd_slot *fds; /* indexed by fd */
	int nfds;
	struct heap_ent *heap;
	size_t heap_len, heap_cap;
	uint64_t seq;
	tb_defer_t *defer_head, *defer_tail; /* for the next turn */
	tb_defer_t *running;		     /* what is left of this turn's */
	tb_defer_cb before_sleep;
	void *before_sleep_arg;
	uint64_t now;
	bool now_stale; /* the poll may have slept: refresh before dispatching */
	uint32_t batch; /* counts dispatched batches of fd events */
	bool stop;
};

tb_loop_t *tb_loop_new(void)
{
	tb_loop_t *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->poll = tb_poll_new();
	if (!loop->poll) {
		free(loop);
		return NULL;
	}
	tb_loop_update_now(loop);
	return loop;
}

/* Timers and deferred calls still armed belong to their owners: untouched. */
void tb_loop_free(tb_loop_t *loop)
{
	if (!loop)
		return;
	tb_poll_free(loop->poll);
	free(loop->fds);
	free(loop->heap);
	free(loop);
}

uint64_t tb_loop_now(const tb_loop_t *loop)
{
	return loop->now;
}

uint64_t tb_loop_update_now(tb_loop_t *loop)
{
	uint64_t t = tb_port_now_ms();

	if (t > loop->now)
		loop->now = t;
	loop->now_stale = false;
	return loop->now;
}

void tb_loop_stop(tb_loop_t *loop)
{
	loop->stop = true;
}

void tb_loop_set_before_sleep(tb_loop_t *loop, tb_defer_cb cb, void *arg)
{
	loop->before_sleep = cb;
	loop->before_sleep_arg = arg;
}

/* ---- file events ---- */

static int fd_reserve(tb_loop_t *loop, int fd)
{
	struct fd_slot *p;
	int n = loop->nfds ? loop->nfds : 64;

	if (fd < 0)
		return TB_EINVAL;
	if (fd < loop->nfds)
		return 0;
	while (n <= fd)
		n *= 2;
	p = realloc(loop->fds, (size_t)n * sizeof(*p));
	if (!p)
		return TB_ENOMEM;
	memset(p + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof(*p));
	loop->fds = p;
	loop->nfds = n;
	return 0;
}

static struct fd_slot *fd_slot(tb_loop_t *loop, int fd)
{
	if (fd < 0 || fd >= loop->nfds || !loop->fds[fd].cb)
		return NULL;
	return &loop->fds[fd];
}

static int fd_watch(tb_loop_t *loop, int fd, unsigned mask)
{
	struct fd_slot *s = &loop->fds[fd];
	int rc;

	mask &= TB_EV_READ | TB_EV_WRITE;
	if (s->mask == mask)
		return 0;
	rc = tb_poll_set(loop->poll, fd, s->mask, mask);
	if (rc == 0)
		s->mask = mask;
	return rc;
}

int tb_loop_add_fd(tb_loop_t *loop, int fd, unsigned mask, tb_fd_cb cb, void *arg)
{
	int rc;

	if (!cb)
		return TB_EINVAL;
	rc = fd_reserve(loop, fd);
	if (rc)
		return rc;
	rc = fd_watch(loop, fd, loop->fds[fd].mask | mask);
	if (rc)
		return rc;
	if (!loop->fds[fd].cb)
		loop->fds[fd].batch = loop->batch;
	loop->fds[fd].cb = cb;
	loop->fds[fd].arg = arg;
	return 0;
}

void tb_loop_del_fd(tb_loop_t *loop, int fd, unsigned mask)
{
	struct fd_slot *s = fd_slot(loop, fd);

	if (!s)
		return;
	if (mask == 0)
		tb_loop_forget_fd(loop, fd);
	else
		fd_watch(loop, fd, s->mask & ~mask);
}

int tb_loop_set_fd(tb_loop_t *loop, int fd, unsigned mask)
{
	if (!fd_slot(loop, fd))
		return TB_ENOENT;
	return fd_watch(loop, fd, mask);
}

void tb_loop_forget_fd(tb_loop_t *loop, int fd)
{
	struct fd_slot *s = fd_slot(loop, fd);

	if (!s)
		return;
	/* Forgetting must not fail: if the backend refuses, the fd is about
	 * to be closed and the kernel drops it anyway. */
	tb_poll_set(loop->poll, fd, s->mask, 0);
	s->mask = 0;
	s->cb = NULL;
	s->arg = NULL;
}

static void fd_fire(void *ctx, int fd, unsigned ev)
{
	tb_loop_t *loop = ctx;
	struct fd_slot *s;

	if (loop->now_stale) { /* first event of this batch */
		tb_loop_update_now(loop);
		loop->batch++;
	}
	/* An earlier callback of this batch may have dropped this fd, or
	 * closed it and registered a new one under the same number: the event
	 * was for the old file (a spurious WRITE would fake a connect). The
	 * backends are level-triggered, so a real event comes back next turn. */
	s = fd_slot(loop, fd);
	if (!s || !s->mask || s->batch == loop->batch)
		return;
	/* An error is seen by reading or writing: hand over what is watched. */
	if (ev & TB_EV_ERROR)
		ev |= s->mask;
	ev &= s->mask | TB_EV_ERROR;
	if (ev)
		s->cb(loop, fd, ev, s->arg);
}

/* ---- timers: a binary min-heap on (when, seq) ---- */

static bool heap_less(const struct heap_ent *a, const struct heap_ent *b)
{
	if (a->t->when != b->t->when)
		return a->t->when < b->t->when;
	return a->seq < b->seq;
}

static void heap_put(tb_loop_t *loop, size_t i, struct heap_ent e)
{
	loop->heap[i] = e;
	e.t->slot = i + 1;
}

static void heap_up(tb_loop_t *loop, size_t i)
{
	struct heap_ent e = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!heap_less(&e, &loop->heap[parent]))
			break;
		heap_put(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_put(loop, i, e);
}

static void heap_down(tb_loop_t *loop, size_t i)
{
	struct heap_ent e = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loop->heap_len)
			break;
		if (c + 1 < loop->heap_len && heap_less(&loop->heap[c + 1], &loop->heap[c]))
			c++;
		if (!heap_less(&loop->heap[c], &e))
			break;
		heap_put(loop, i, loop->heap[c]);
		i = c;
	}
	heap_put(loop, i, e);
}

/* Restores order around t after its key changed, whichever way. */
static void heap_fix(tb_loop_t *loop, tb_timer_t *t)
{
	heap_down(loop, t->slot - 1);
	heap_up(loop, t->slot - 1);
}

static void heap_remove(tb_loop_t *loop, tb_timer_t *t)
{
	size_t i = t->slot - 1, last = --loop->heap_len;

	t->slot = 0;
	if (i == last)
		return;
	heap_put(loop, i, loop->heap[last]);
	heap_fix(loop, loop->heap[i].t);
}

static void heap_reserve(tb_loop_t *loop)
{
	size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
	struct heap_ent *h;

	if (loop->heap_len < loop->heap_cap)
		return;
	h = realloc(loop->heap, cap * sizeof(*h));
	if (!h) {
		/* tb_timer_start cannot fail by contract, and a timer silently
		 * not armed would leak its connection forever. */
		tb_err("loop: out of memory for %zu timers", cap);
		abort();
	}
	loop->heap = h;
	loop->heap_cap = cap;
}

void tb_timer_init(tb_timer_t *t, tb_timer_cb cb, void *arg)
{
	t->when = 0;
	t->slot = 0;
	t->cb = cb;
	t->arg = arg;
}

void tb_timer_start(tb_loop_t *loop, tb_timer_t *t, uint64_t ms)
{
	t->when = ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + ms;
	if (t->slot) {
		loop->heap[t->slot - 1].seq = loop->seq++;
		heap_fix(loop, t);
		return;
	}
	heap_reserve(loop);
	loop->heap[loop->heap_len] = (struct heap_ent){t, loop->seq++};
	heap_up(loop, loop->heap_len++);
}

void tb_timer_stop(tb_loop_t *loop, tb_timer_t *t)
{
	if (t->slot)
		heap_remove(loop, t);
}

static void run_timers(tb_loop_t *loop)
{
	/* Only timers armed before this pass fire in it: one re-armed for 0 ms
	 * by its own callback waits for the next turn instead of spinning. */
	uint64_t limit = loop->seq;

	while (loop->heap_len) {
		struct heap_ent top = loop->heap[0];

		if (top.t->when > loop->now || top.seq >= limit)
			break;
		/* Unlinked before the call: the callback may rearm or free it. */
		heap_remove(loop, top.t);
		top.t->cb(loop, top.t->arg);
	}
}

/* ---- deferred calls: an intrusive FIFO ---- */

void tb_defer_init(tb_defer_t *d, tb_defer_cb cb, void *arg)
{
	d->next = NULL;
	d->cb = cb;
	d->arg = arg;
	d->queued = false;
}

void tb_defer(tb_loop_t *loop, tb_defer_t *d)
{
	if (d->queued)
		return;
	d->next = NULL;
	d->queued = true;
	if (loop->defer_tail)
		loop->defer_tail->next = d;
	else
		loop->defer_head = d;
	loop->defer_tail = d;
}

static bool defer_unlink(tb_defer_t **head, tb_defer_t **tail, tb_defer_t *d)
{
	tb_defer_t *prev = NULL, **pp;

	for (pp = head; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != d)
			continue;
		*pp = d->next;
		if (tail && *tail == d)
			*tail = prev;
		return true;
	}
	return false;
}

/* O(queue length), which stays short: cancel is the rare path. */
void tb_defer_cancel(tb_loop_t *loop, tb_defer_t *d)
{
	if (!d->queued)
		return;
	if (!defer_unlink(&loop->defer_head, &loop->defer_tail, d))
		defer_unlink(&loop->running, NULL, d);
	d->next = NULL;
	d->queued = false;
}

static void run_deferred(tb_loop_t *loop)
{
	/* Take the whole queue: calls queued from here on run next turn, so a
	 * callback that keeps requeuing itself cannot starve the poll. */
	loop->running = loop->defer_head;
	loop->defer_head = loop->defer_tail = NULL;
	while (loop->running) {
		tb_defer_t *d = loop->running;

		loop->running = d->next;
		d->next = NULL;
		d->queued = false;
		d->cb(loop, d->arg);
	}
}

/* ---- turns ---- */

static int poll_timeout(tb_loop_t *loop, int timeout_ms)
{
	uint64_t when, wait;

	if (loop->defer_head || loop->stop)
		return 0;
	if (timeout_ms < 0)
		timeout_ms = -1;
	if (!loop->heap_len)
		return timeout_ms;
	when = loop->heap[0].t->when;
	wait = when > loop->now ? when - loop->now : 0;
	if (wait > INT_MAX)
		wait = INT_MAX;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < wait)
		return timeout_ms;
	return (int)wait;
}

int tb_loop_once(tb_loop_t *loop, int timeout_ms)
{
	int rc;

	run_deferred(loop);
	if (loop->before_sleep)
		loop->before_sleep(loop, loop->before_sleep_arg);
	tb_loop_update_now(loop);
	loop->now_stale = true;
	rc = tb_poll_wait(loop->poll, poll_timeout(loop, timeout_ms), fd_fire, loop);
	if (loop->now_stale)
		tb_loop_update_now(loop);
	if (rc < 0)
		return rc;
	run_timers(loop);
	return 0;
}

int tb_loop_run(tb_loop_t *loop)
{
	int rc = 0;

	while (!loop->stop && rc == 0)
		rc = tb_loop_once(loop, -1);
	if (rc)
		tb_err("loop: %s backend failed: %s", tb_poll_name(), tb_strerror(rc));
	loop->stop = false;
	return rc;
}
