/* poll_poll.c: the poll(2) backend of loop.h, for systems without epoll.
 *
 * The pollfd array is appended to and never reordered while events are
 * being dispatched: a removed fd leaves a hole (fd -1, which poll skips) and
 * holes are squeezed out before the next poll. So a callback may add and
 * remove fds freely without making the dispatch loop skip or repeat one. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "tb/loop.h"

struct tb_poll {
	struct pollfd *pfd;
	size_t n, cap, holes;
	size_t *index; /* index[fd] = position in pfd + 1; 0 when absent */
	size_t nindex;
};

tb_poll_t *tb_poll_new(void)
{
	return calloc(1, sizeof(tb_poll_t));
}

void tb_poll_free(tb_poll_t *p)
{
	if (!p)
		return;
	free(p->pfd);
	free(p->index);
	free(p);
}

static int reserve(tb_poll_t *p, int fd)
{
	size_t want = (size_t)fd + 1, n;

	if (want > p->nindex) {
		size_t *ix;

		for (n = p->nindex ? p->nindex : 64; n < want; n *= 2)
			;
		ix = realloc(p->index, n * sizeof(*ix));
		if (!ix)
			return TB_ENOMEM;
		memset(ix + p->nindex, 0, (n - p->nindex) * sizeof(*ix));
		p->index = ix;
		p->nindex = n;
	}
	if (p->n == p->cap) {
		struct pollfd *q;

		n = p->cap ? p->cap * 2 : 16;
		q = realloc(p->pfd, n * sizeof(*q));
		if (!q)
			return TB_ENOMEM;
		p->pfd = q;
		p->cap = n;
	}
	return 0;
}

int tb_poll_set(tb_poll_t *p, int fd, unsigned old_mask, unsigned new_mask)
{
	short events = (short)((new_mask & TB_EV_READ ? POLLIN : 0) | (new_mask & TB_EV_WRITE ? POLLOUT : 0));
	size_t i;
	int rc;

	if (fd < 0)
		return TB_EINVAL;
	i = (size_t)fd < p->nindex ? p->index[fd] : 0;
	if (i && new_mask) {
		p->pfd[i - 1].events = events;
	} else if (i) {
		p->pfd[i - 1].fd = -1;
		p->index[fd] = 0;
		p->holes++;
	} else if (new_mask) {
		rc = reserve(p, fd);
		if (rc)
			return rc;
		p->pfd[p->n] = (struct pollfd){.fd = fd, .events = events};
		p->index[fd] = ++p->n;
	}
	return 0;
}

static void squeeze(tb_poll_t *p)
{
	size_t i, j = 0;

	for (i = 0; i < p->n; i++) {
		if (p->pfd[i].fd < 0)
			continue;
		p->pfd[j] = p->pfd[i];
		p->index[p->pfd[j].fd] = j + 1;
		j++;
	}
	p->n = j;
	p->holes = 0;
}

static unsigned from_poll(short re)
{
	unsigned ev = 0;

	if (re & POLLIN)
		ev |= TB_EV_READ;
	if (re & POLLOUT)
		ev |= TB_EV_WRITE;
	if (re & POLLHUP) /* read as EOF or written as EPIPE, like epoll */
		ev |= TB_EV_READ | TB_EV_WRITE;
	if (re & (POLLERR | POLLNVAL))
		ev |= TB_EV_ERROR;
	return ev;
}

int tb_poll_wait(tb_poll_t *p, int timeout_ms, void (*fire)(void *ctx, int fd, unsigned ev), void *ctx)
{
	size_t n, i;
	int rc;

	if (p->holes)
		squeeze(p);
	n = p->n; /* fds added by callbacks wait for the next poll */
	rc = poll(p->pfd, (nfds_t)n, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : tb_err_from_errno(errno);
	for (i = 0; i < n; i++) {
		/* Re-read each time: a callback may have grown the array. */
		struct pollfd *q = &p->pfd[i];

		if (q->fd >= 0 && q->revents)
			fire(ctx, q->fd, from_poll(q->revents));
	}
	return rc;
}

const char *tb_poll_name(void)
{
	return "poll";
}
