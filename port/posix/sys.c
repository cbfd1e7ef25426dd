/* sys.c: clock, randomness and sockaddr conversion for the POSIX port. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "tb/port.h"
#include "posix.h"

#if ENABLE_PORT_POSIX
/* The kernel's stack needs no settings: a [port] table is left unused (warned about). */
int tb_port_configure(const tb_conf_val_t *port_table, tb_conf_err_t *err)
{
	return 0;
}
#endif

uint64_t tb_port_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int tb_port_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return tb_err_from_errno(errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tb_posix_sockaddr(const tb_addr_t *a, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == TB_AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(a->port);
		memcpy(&in->sin_addr, a->ip, 4);
		*len = sizeof(*in);
		return 0;
	}
	if (a->family == TB_AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a->port);
		memcpy(&in6->sin6_addr, a->ip, 16);
		*len = sizeof(*in6);
		return 0;
	}
	return TB_EAFNOSUPPORT;
}

void tb_posix_from_sockaddr(const struct sockaddr *sa, tb_addr_t *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		out->family = TB_AF_INET;
		out->port = ntohs(in->sin_port);
		memcpy(out->ip, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		/* A v4-mapped peer on a dual-stack socket is reported as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			out->family = TB_AF_INET;
			memcpy(out->ip, (const uint8_t *)&in6->sin6_addr + 12, 4);
		} else {
			out->family = TB_AF_INET6;
			memcpy(out->ip, &in6->sin6_addr, 16);
		}
		out->port = ntohs(in6->sin6_port);
	}
}

int tb_posix_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return tb_err_from_errno(errno);
	return 0;
}
