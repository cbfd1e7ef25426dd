/* tun.c: Linux TUN devices (IFF_TUN | IFF_NO_PI: bare IP packets). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tb/port.h"
#include "posix.h"

#define TUN_READS_PER_EVENT 64
#define TUN_MAX_PACKET 65535

struct tb_tun {
	tb_loop_t *loop;
	int fd;
	tb_tun_recv_cb cb;
	void *arg;
	uint8_t in_cb;
	bool closed;
};

static void tun_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_tun_t *t = arg;
	uint8_t pkt[TUN_MAX_PACKET];

	t->in_cb++;
	for (int i = 0; i < TUN_READS_PER_EVENT && !t->closed; i++) {
		ssize_t n = read(fd, pkt, sizeof(pkt));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		t->cb(t->arg, pkt, (size_t)n);
	}
	if (--t->in_cb == 0 && t->closed)
		free(t);
}

int tb_tun_open(tb_loop_t *loop, char *name, size_t namelen, tb_tun_recv_cb cb, void *arg, tb_tun_t **out)
{
	struct ifreq ifr;
	int err, fd;
	tb_tun_t *t;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return tb_err_from_errno(errno);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	if (name && name[0])
		strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = tb_err_from_errno(errno);
		close(fd);
		return err;
	}
	if (name && namelen > 0) {
		strncpy(name, ifr.ifr_name, namelen - 1);
		name[namelen - 1] = '\0';
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return TB_ENOMEM;
	}
	t->loop = loop;
	t->fd = fd;
	t->cb = cb;
	t->arg = arg;
	if ((err = tb_loop_add_fd(loop, fd, TB_EV_READ, tun_event, t)) < 0) {
		close(fd);
		free(t);
		return err;
	}
	*out = t;
	return 0;
}

int tb_tun_write(tb_tun_t *t, const void *pkt, size_t len)
{
	ssize_t n = write(t->fd, pkt, len);

	if (n < 0)
		return errno == EAGAIN ? TB_EAGAIN : tb_err_from_errno(errno);
	return 0;
}

void tb_tun_close(tb_tun_t *t)
{
	if (!t || t->closed)
		return;
	t->closed = true;
	tb_loop_forget_fd(t->loop, t->fd);
	close(t->fd);
	if (t->in_cb == 0)
		free(t);
}
