/* loop.h: the event loop (Redis ae style, one thread).
 *
 * File events on descriptors (the port's backend: epoll or poll, chosen by
 * Kconfig), a min-heap of timers, deferred callbacks that run before the next
 * poll, a before-sleep hook for batched work, and a clean stop. Timers and
 * deferred calls are intrusive: the owner embeds a tb_timer_t or tb_defer_t,
 * so arming them never allocates. */
#ifndef TB_LOOP_H
#define TB_LOOP_H

#include "tb/base.h"

typedef struct tb_loop tb_loop_t;

#define TB_EV_READ 1u
#define TB_EV_WRITE 2u
#define TB_EV_ERROR 4u /* reported with READ/WRITE; never requested */

typedef void (*tb_fd_cb)(tb_loop_t *loop, int fd, unsigned events, void *arg);
typedef void (*tb_timer_cb)(tb_loop_t *loop, void *arg);
typedef void (*tb_defer_cb)(tb_loop_t *loop, void *arg);

typedef struct tb_timer {
	uint64_t when;   /* absolute ms on the loop clock */
	size_t slot;     /* index in the heap + 1; 0 when not armed */
	tb_timer_cb cb;
	void *arg;
} tb_timer_t;

typedef struct tb_defer {
	struct tb_defer *next;
	tb_defer_cb cb;
	void *arg;
	bool queued;
} tb_defer_t;

tb_loop_t *tb_loop_new(void);
void tb_loop_free(tb_loop_t *loop);
/* Runs until tb_loop_stop(); returns 0, or a TB_E* code if the backend failed. */
int tb_loop_run(tb_loop_t *loop);
/* One turn: deferred calls, expired timers, one poll of at most timeout_ms
 * (-1: until the next timer). Used by tests and by ports that drive lwIP. */
int tb_loop_once(tb_loop_t *loop, int timeout_ms);
void tb_loop_stop(tb_loop_t *loop);
/* Cached monotonic milliseconds, refreshed once per turn. */
uint64_t tb_loop_now(const tb_loop_t *loop);
uint64_t tb_loop_update_now(tb_loop_t *loop);

/* Watch fd for events (TB_EV_READ|TB_EV_WRITE); replaces cb/arg, ORs the mask. */
int tb_loop_add_fd(tb_loop_t *loop, int fd, unsigned mask, tb_fd_cb cb, void *arg);
/* Stop watching some events; with mask 0 the fd is forgotten entirely. */
void tb_loop_del_fd(tb_loop_t *loop, int fd, unsigned mask);
/* Set the watched mask exactly (0 keeps the registration, watches nothing). */
int tb_loop_set_fd(tb_loop_t *loop, int fd, unsigned mask);
void tb_loop_forget_fd(tb_loop_t *loop, int fd); /* call before close(fd) */

void tb_timer_init(tb_timer_t *t, tb_timer_cb cb, void *arg);
/* (Re)arms t to fire once after ms; a running timer is moved. */
void tb_timer_start(tb_loop_t *loop, tb_timer_t *t, uint64_t ms);
void tb_timer_stop(tb_loop_t *loop, tb_timer_t *t);
static inline bool tb_timer_active(const tb_timer_t *t) { return t->slot != 0; }

void tb_defer_init(tb_defer_t *d, tb_defer_cb cb, void *arg);
/* Runs cb once at the start of the next turn; queuing twice is a no-op. */
void tb_defer(tb_loop_t *loop, tb_defer_t *d);
void tb_defer_cancel(tb_loop_t *loop, tb_defer_t *d);

/* Called after events are processed, before the loop sleeps again. */
void tb_loop_set_before_sleep(tb_loop_t *loop, tb_defer_cb cb, void *arg);

/* Backend contract (port/posix/poll_epoll.c or poll_poll.c). */
typedef struct tb_poll tb_poll_t;
tb_poll_t *tb_poll_new(void);
void tb_poll_free(tb_poll_t *p);
int tb_poll_set(tb_poll_t *p, int fd, unsigned old_mask, unsigned new_mask);
/* Waits up to timeout_ms (-1 forever); calls fire(fd, events) for each ready fd. */
int tb_poll_wait(tb_poll_t *p, int timeout_ms, void (*fire)(void *ctx, int fd, unsigned ev), void *ctx);
const char *tb_poll_name(void);

#endif
