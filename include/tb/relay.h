/* relay.h: join two streams with backpressure and half-close.
 *
 * Bytes read from one side are written to the other; when the sink's queue
 * reaches its high-water mark the source is paused until the sink drains
 * (the shadowsocks idiom). EOF on one side becomes shutdown() of the other
 * once everything before it is sent; the relay ends when both directions are
 * finished, on any error, or after idle_ms without traffic. The relay owns
 * both streams from tb_relay_start() on and closes them itself. */
#ifndef TB_RELAY_H
#define TB_RELAY_H

#include "tb/loop.h"
#include "tb/stream.h"

typedef struct tb_relay tb_relay_t;

typedef struct tb_relay_stats {
	uint64_t a_to_b, b_to_a; /* bytes */
	int err;                 /* 0, or why the relay ended */
} tb_relay_stats_t;

typedef void (*tb_relay_done_cb)(void *arg, tb_relay_t *r, const tb_relay_stats_t *st);

typedef struct tb_relay_opts {
	uint32_t idle_ms;        /* 0: no idle timeout */
	bool a_eof;              /* a already reported EOF to its previous owner */
	tb_relay_done_cb done;   /* may be NULL */
	void *arg;
} tb_relay_opts_t;

/* Starts relaying; on TB_ENOMEM both streams have been closed. */
int tb_relay_start(tb_loop_t *loop, tb_stream_t *a, tb_stream_t *b, const tb_relay_opts_t *o, tb_relay_t **out);
/* Ends the relay now (closing both streams); the done callback runs. */
void tb_relay_abort(tb_relay_t *r, int err);

#endif
