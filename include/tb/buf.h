/* buf.h: a bounded byte queue made of heap chunks, allocated lazily.
 *
 * An empty tb_buf_t owns no memory, so an idle connection costs only the
 * struct (keep_data_small). Appends copy; readers peek the first contiguous
 * span and consume from the front. The limit is the caller's: tb_buf_len()
 * tells how full the queue is, and the owner pauses its source above its
 * high-water mark. */
#ifndef TB_BUF_H
#define TB_BUF_H

#include "tb/base.h"

typedef struct tb_buf_chunk tb_buf_chunk_t;

typedef struct tb_buf {
	tb_buf_chunk_t *head, *tail;
	size_t len; /* bytes queued */
} tb_buf_t;

#define TB_BUF_INIT {NULL, NULL, 0}

void tb_buf_init(tb_buf_t *b);
void tb_buf_free(tb_buf_t *b); /* drop everything, release memory */
static inline size_t tb_buf_len(const tb_buf_t *b) { return b->len; }
/* Copies len bytes to the tail; TB_ENOMEM when allocation fails. */
int tb_buf_append(tb_buf_t *b, const void *data, size_t len);
/* The first contiguous span, or NULL with *len = 0 when empty. */
const uint8_t *tb_buf_peek(const tb_buf_t *b, size_t *len);
/* Copies up to len bytes from offset off without consuming; returns bytes copied. */
size_t tb_buf_copyout(const tb_buf_t *b, size_t off, void *dst, size_t len);
/* Drops n bytes (n <= len) from the front; frees chunks as they empty. */
void tb_buf_consume(tb_buf_t *b, size_t n);
/* Ensures the first n bytes (n <= len) are contiguous and returns them. */
const uint8_t *tb_buf_pullup(tb_buf_t *b, size_t n);

#endif
