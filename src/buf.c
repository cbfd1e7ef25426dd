/* buf.c: the chunked byte queue of buf.h.
 *
 * Chunks are sized to the append that creates them, between 2 KiB (so a
 * trickle of small writes does not become a malloc per write) and 16 KiB (so
 * one big write does not pin one big block until its last byte is sent).
 * A chunk is freed as soon as it is consumed, so an idle buffer owns nothing. */
#include "tb/buf.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN 2048u
#define CHUNK_MAX 16384u

struct tb_buf_chunk {
	tb_buf_chunk_t *next;
	size_t off, end, cap; /* live bytes are data[off..end) */
	uint8_t data[];
};

static tb_buf_chunk_t *chunk_new(size_t cap)
{
	tb_buf_chunk_t *c = malloc(sizeof(*c) + cap);

	if (!c)
		return NULL;
	c->next = NULL;
	c->off = c->end = 0;
	c->cap = cap;
	return c;
}

static void chain_free(tb_buf_chunk_t *c)
{
	while (c) {
		tb_buf_chunk_t *next = c->next;

		free(c);
		c = next;
	}
}

void tb_buf_init(tb_buf_t *b)
{
	b->head = b->tail = NULL;
	b->len = 0;
}

void tb_buf_free(tb_buf_t *b)
{
	chain_free(b->head);
	tb_buf_init(b);
}

/* Drops the emptied head chunk. */
static void pop_head(tb_buf_t *b)
{
	tb_buf_chunk_t *c = b->head;

	b->head = c->next;
	if (!b->head)
		b->tail = NULL;
	free(c);
}

int tb_buf_append(tb_buf_t *b, const void *data, size_t len)
{
	const uint8_t *p = data;
	tb_buf_chunk_t *first = NULL, **link = &first, *c;
	size_t room = b->tail ? b->tail->cap - b->tail->end : 0;
	size_t fit = TB_MIN(len, room), rest = len - fit, n;

	if (len == 0)
		return 0;
	/* Allocate everything before copying: on failure the queue is unchanged. */
	for (n = rest; n > 0; n -= TB_MIN(n, c->cap)) {
		c = chunk_new(TB_MIN(TB_MAX(n, CHUNK_MIN), CHUNK_MAX));
		if (!c) {
			chain_free(first);
			return TB_ENOMEM;
		}
		*link = c;
		link = &c->next;
	}
	if (fit) {
		memcpy(b->tail->data + b->tail->end, p, fit);
		b->tail->end += fit;
		p += fit;
	}
	for (c = first; c; c = c->next) {
		c->end = TB_MIN(rest, c->cap);
		memcpy(c->data, p, c->end);
		p += c->end;
		rest -= c->end;
		if (b->tail)
			b->tail->next = c;
		else
			b->head = c;
		b->tail = c;
	}
	b->len += len;
	return 0;
}

const uint8_t *tb_buf_peek(const tb_buf_t *b, size_t *len)
{
	if (!b->head) {
		*len = 0;
		return NULL;
	}
	*len = b->head->end - b->head->off;
	return b->head->data + b->head->off;
}

size_t tb_buf_copyout(const tb_buf_t *b, size_t off, void *dst, size_t len)
{
	const tb_buf_chunk_t *c;
	uint8_t *d = dst;
	size_t done = 0;

	for (c = b->head; c && done < len; c = c->next) {
		size_t have = c->end - c->off, n;

		if (off >= have) {
			off -= have;
			continue;
		}
		n = TB_MIN(have - off, len - done);
		memcpy(d + done, c->data + c->off + off, n);
		done += n;
		off = 0;
	}
	return done;
}

void tb_buf_consume(tb_buf_t *b, size_t n)
{
	n = TB_MIN(n, b->len);
	b->len -= n;
	while (n > 0) {
		tb_buf_chunk_t *c = b->head;
		size_t take = TB_MIN(n, c->end - c->off);

		c->off += take;
		n -= take;
		if (c->off == c->end)
			pop_head(b);
	}
}

const uint8_t *tb_buf_pullup(tb_buf_t *b, size_t n)
{
	tb_buf_chunk_t *h = b->head, *c;

	if (n > b->len)
		return NULL;
	if (n == 0 || h->end - h->off >= n)
		return h ? h->data + h->off : NULL;
	if (h->cap >= n) {
		/* The head can hold it: slide its bytes down, no allocation. */
		memmove(h->data, h->data + h->off, h->end - h->off);
		h->end -= h->off;
		h->off = 0;
	} else {
		c = chunk_new(TB_MAX(n, CHUNK_MIN)); /* may pass CHUNK_MAX: n must be whole */
		if (!c)
			return NULL;
		memcpy(c->data, h->data + h->off, h->end - h->off);
		c->end = h->end - h->off;
		c->next = h->next;
		b->head = c;
		if (b->tail == h)
			b->tail = c;
		free(h);
		h = c;
	}
	/* Move bytes from the following chunks into the head, dropping those
	 * that empty; h->next exists because b->len >= n. */
	while (h->end < n) {
		size_t take;

		c = h->next;
		take = TB_MIN(n - h->end, c->end - c->off);

		memcpy(h->data + h->end, c->data + c->off, take);
		h->end += take;
		c->off += take;
		if (c->off == c->end) {
			h->next = c->next;
			if (b->tail == c)
				b->tail = h;
			free(c);
		}
	}
	return h->data;
}
