/* udp.c: non-blocking UDP sockets for the POSIX port. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tb/log.h"
#include "tb/port.h"
#include "posix.h"

#define UDP_READS_PER_EVENT 32
#define UDP_MAX_DATAGRAM 65536

struct tb_udp {
	tb_loop_t *loop;
	int fd;
	tb_addr_t local;
	tb_udp_recv_cb cb;
	void *arg;
	uint8_t in_cb;
	bool closed;
};

static void udp_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_udp_t *u = arg;
	uint8_t buf[UDP_MAX_DATAGRAM];

	u->in_cb++;
	for (int i = 0; i < UDP_READS_PER_EVENT && !u->closed; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, &len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN, or an ICMP error queued on the socket */
		}
		tb_addr_t from;
		tb_posix_from_sockaddr((struct sockaddr *)&ss, &from);
		u->cb(u->arg, u, &from, buf, (size_t)n);
	}
	if (--u->in_cb == 0 && u->closed)
		free(u);
}

int tb_udp_open(tb_loop_t *loop, const tb_addr_t *bind_addr, tb_udp_recv_cb cb, void *arg, tb_udp_t **out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int err, fd;
	tb_udp_t *u;

	if ((err = tb_posix_sockaddr(bind_addr, &ss, &len)) < 0)
		return err;
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tb_err_from_errno(errno);
	if (ss.ss_family == AF_INET6) {
		int off = 0;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		err = tb_err_from_errno(errno);
		close(fd);
		return err;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return TB_ENOMEM;
	}
	u->loop = loop;
	u->fd = fd;
	u->cb = cb;
	u->arg = arg;
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	tb_posix_from_sockaddr((struct sockaddr *)&ss, &u->local);
	if ((err = tb_loop_add_fd(loop, fd, TB_EV_READ, udp_event, u)) < 0) {
		close(fd);
		free(u);
		return err;
	}
	*out = u;
	return 0;
}

int tb_udp_send(tb_udp_t *u, const tb_addr_t *to, const void *data, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	tb_addr_t dst = *to;
	int err;

	/* An IPv4 destination on an IPv6 socket goes out v4-mapped. */
	if (u->local.family == TB_AF_INET6 && to->family == TB_AF_INET) {
		memset(dst.ip, 0, 16);
		dst.ip[10] = dst.ip[11] = 0xff;
		memcpy(dst.ip + 12, to->ip, 4);
		dst.family = TB_AF_INET6;
	}
	if ((err = tb_posix_sockaddr(&dst, &ss, &sl)) < 0)
		return err;
	for (;;) {
		ssize_t n = sendto(u->fd, data, len, 0, (struct sockaddr *)&ss, sl);
		if (n >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return TB_EAGAIN;
		return tb_err_from_errno(errno);
	}
}

void tb_udp_local_addr(const tb_udp_t *u, tb_addr_t *out)
{
	*out = u->local;
}

void tb_udp_close(tb_udp_t *u)
{
	if (!u || u->closed)
		return;
	u->closed = true;
	tb_loop_forget_fd(u->loop, u->fd);
	close(u->fd);
	if (u->in_cb == 0)
		free(u);
}
