/* stream.h: the byte stream every module speaks (DESIGN.md idea 1).
 *
 * A TCP socket (POSIX or lwIP), a TLS session, a WebSocket channel, a tunnel
 * flow: all are a tb_stream_t with this vtable. Filters are streams built on
 * another stream.
 *
 * Contract, for implementers and users alike:
 * - write() copies the bytes into the stream's queue (or sends them at once).
 *   It returns 0 while the queue is below the high-water mark, TB_ENOBUFS when
 *   the bytes were taken but the queue is now at or above it (the caller
 *   pauses its source and waits for on_drain), or another negative code when
 *   the stream cannot write any more (nothing was taken).
 * - shutdown() half-closes the write side once the queue has been sent; if
 *   the queue was not empty, on_drain fires when the half-close went out
 *   (so a relay knows every byte was handed to the peer).
 * - close() releases the stream at once, dropping anything queued; no
 *   callback runs after it returns. It is the owner's only free path and is
 *   legal inside any of the stream's own callbacks.
 * - on_data hands over bytes that are only valid during the call (the buffer
 *   belongs to the stream); pause() stops on_data until resume(). on_drain
 *   fires when the queue falls to the low-water mark after a TB_ENOBUFS.
 *   on_eof reports the peer's half-close. on_close reports that the stream
 *   is dead (error or reset, err < 0; 0 after a clean close by both sides);
 *   the owner then calls close(). */
#ifndef TB_STREAM_H
#define TB_STREAM_H

#include "tb/base.h"

typedef struct tb_stream tb_stream_t;

typedef struct tb_stream_ops {
	int (*write)(tb_stream_t *s, const void *data, size_t len);
	int (*shutdown)(tb_stream_t *s);
	void (*close)(tb_stream_t *s);
	void (*pause)(tb_stream_t *s);
	void (*resume)(tb_stream_t *s);
	size_t (*queued)(const tb_stream_t *s); /* bytes not yet sent */
} tb_stream_ops_t;

typedef struct tb_stream_handler {
	void (*on_data)(void *ctx, tb_stream_t *s, const uint8_t *data, size_t len);
	void (*on_drain)(void *ctx, tb_stream_t *s);
	void (*on_eof)(void *ctx, tb_stream_t *s);
	void (*on_close)(void *ctx, tb_stream_t *s, int err);
} tb_stream_handler_t;

struct tb_stream {
	const tb_stream_ops_t *ops;
	const tb_stream_handler_t *h; /* may be NULL until the owner sets it */
	void *ctx;
	size_t hiwat; /* queue high-water mark in bytes */
};

#define TB_STREAM_HIWAT_DEFAULT (CONFIG_STREAM_HIWAT_KB * 1024u)

static inline void tb_stream_set_handler(tb_stream_t *s, const tb_stream_handler_t *h, void *ctx)
{
	s->h = h;
	s->ctx = ctx;
}
static inline int tb_stream_write(tb_stream_t *s, const void *d, size_t n) { return s->ops->write(s, d, n); }
static inline int tb_stream_shutdown(tb_stream_t *s) { return s->ops->shutdown(s); }
static inline void tb_stream_close(tb_stream_t *s) { s->ops->close(s); }
static inline void tb_stream_pause(tb_stream_t *s) { s->ops->pause(s); }
static inline void tb_stream_resume(tb_stream_t *s) { s->ops->resume(s); }
static inline size_t tb_stream_queued(const tb_stream_t *s) { return s->ops->queued(s); }

/* Helpers for implementers: invoke the owner's callbacks if set. */
static inline void tb_stream_emit_data(tb_stream_t *s, const uint8_t *d, size_t n)
{
	if (s->h && s->h->on_data)
		s->h->on_data(s->ctx, s, d, n);
}
static inline void tb_stream_emit_drain(tb_stream_t *s)
{
	if (s->h && s->h->on_drain)
		s->h->on_drain(s->ctx, s);
}
static inline void tb_stream_emit_eof(tb_stream_t *s)
{
	if (s->h && s->h->on_eof)
		s->h->on_eof(s->ctx, s);
}
static inline void tb_stream_emit_close(tb_stream_t *s, int err)
{
	if (s->h && s->h->on_close)
		s->h->on_close(s->ctx, s, err);
}

#endif
