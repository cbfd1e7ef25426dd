/* poll_epoll.c: the epoll backend of loop.h (Linux). */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "tb/loop.h"

#define BATCH 64 /* events per epoll_wait; more simply wait for the next turn */

struct tb_poll {
	int epfd;
	struct epoll_event ev[BATCH];
};

tb_poll_t *tb_poll_new(void)
{
	tb_poll_t *p = malloc(sizeof(*p));

	if (!p)
		return NULL;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0) {
		free(p);
		return NULL;
	}
	return p;
}

void tb_poll_free(tb_poll_t *p)
{
	if (!p)
		return;
	close(p->epfd);
	free(p);
}

int tb_poll_set(tb_poll_t *p, int fd, unsigned old_mask, unsigned new_mask)
{
	struct epoll_event e = {0};
	int op = old_mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (new_mask == 0) {
		/* An fd closed already has left the set: nothing to undo. */
		if (old_mask && epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &e) < 0 && errno != EBADF &&
		    errno != ENOENT)
			return tb_err_from_errno(errno);
		return 0;
	}
	e.events = (new_mask & TB_EV_READ ? EPOLLIN : 0) | (new_mask & TB_EV_WRITE ? EPOLLOUT : 0);
	e.data.fd = fd;
	if (epoll_ctl(p->epfd, op, fd, &e) == 0)
		return 0;
	/* Our view and the kernel's differ when an fd number was closed and
	 * reused without tb_loop_forget_fd: the kernel forgot it, or a dup
	 * kept it. The other operation then is the right one. */
	if (errno != (op == EPOLL_CTL_ADD ? EEXIST : ENOENT))
		return tb_err_from_errno(errno);
	op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(p->epfd, op, fd, &e) < 0)
		return tb_err_from_errno(errno);
	return 0;
}

static unsigned from_epoll(uint32_t e)
{
	unsigned ev = 0;

	if (e & EPOLLIN)
		ev |= TB_EV_READ;
	if (e & EPOLLOUT)
		ev |= TB_EV_WRITE;
	/* A hang-up is read as EOF or written as EPIPE: not an error itself. */
	if (e & EPOLLHUP)
		ev |= TB_EV_READ | TB_EV_WRITE;
	if (e & EPOLLERR)
		ev |= TB_EV_ERROR;
	return ev;
}

int tb_poll_wait(tb_poll_t *p, int timeout_ms, void (*fire)(void *ctx, int fd, unsigned ev), void *ctx)
{
	int n = epoll_wait(p->epfd, p->ev, BATCH, timeout_ms), i;

	if (n < 0)
		return errno == EINTR ? 0 : tb_err_from_errno(errno);
	for (i = 0; i < n; i++)
		fire(ctx, p->ev[i].data.fd, from_epoll(p->ev[i].events));
	return n;
}

const char *tb_poll_name(void)
{
	return "epoll";
}
