/* base.c: error strings, errno mapping and constant-time compare. */
#include "tb/base.h"

#include <errno.h>

static const char *const tb_errstr[] = {
	[0] = "success",
	[-TB_ENOMEM] = "out of memory or over a byte limit",
	[-TB_EINVAL] = "invalid argument",
	[-TB_EAGAIN] = "need more input",
	[-TB_EPROTO] = "protocol violation",
	[-TB_ECONNREFUSED] = "connection refused",
	[-TB_ENETUNREACH] = "network unreachable",
	[-TB_EHOSTUNREACH] = "host unreachable",
	[-TB_ETIMEDOUT] = "timed out",
	[-TB_ECONNRESET] = "connection reset",
	[-TB_EPIPE] = "broken pipe",
	[-TB_ENOTSUP] = "not supported",
	[-TB_EDENIED] = "denied",
	[-TB_ENOENT] = "not found",
	[-TB_ERANGE] = "length out of range",
	[-TB_EAFNOSUPPORT] = "address family not supported",
	[-TB_ECANCELED] = "canceled",
	[-TB_EIO] = "I/O error",
	[-TB_ENOBUFS] = "queue full",
	[-TB_EADDRINUSE] = "address already in use",
};

const char *tb_strerror(int err)
{
	if (err > 0 || err <= -(int)TB_ARRAY_SIZE(tb_errstr) || !tb_errstr[-err])
		return "unknown error";
	return tb_errstr[-err];
}

int tb_err_from_errno(int e)
{
	switch (e) {
	case 0:
		return TB_OK;
	case ENOMEM:
	case EMFILE: /* out of descriptors is a resource limit like memory */
	case ENFILE:
		return TB_ENOMEM;
	case EINVAL:
	case EBADF:
		return TB_EINVAL;
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
	case EINPROGRESS:
	case EINTR:
		return TB_EAGAIN;
	case EPROTO:
		return TB_EPROTO;
	case ECONNREFUSED:
		return TB_ECONNREFUSED;
	case ENETUNREACH:
	case ENETDOWN:
		return TB_ENETUNREACH;
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case EADDRNOTAVAIL:
		return TB_EHOSTUNREACH;
	case ETIMEDOUT:
		return TB_ETIMEDOUT;
	case ECONNRESET:
	case ECONNABORTED:
		return TB_ECONNRESET;
	case EPIPE:
	case ENOTCONN:
		return TB_EPIPE;
	case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
	case EOPNOTSUPP:
#endif
	case EPROTONOSUPPORT:
	case ENOSYS:
		return TB_ENOTSUP;
	case EACCES:
	case EPERM:
		return TB_EDENIED;
	case ENOENT:
		return TB_ENOENT;
	case ERANGE:
	case EMSGSIZE:
		return TB_ERANGE;
	case EAFNOSUPPORT:
		return TB_EAFNOSUPPORT;
	case ECANCELED:
		return TB_ECANCELED;
	case ENOBUFS:
		return TB_ENOBUFS;
	case EADDRINUSE:
		return TB_EADDRINUSE;
	default:
		return TB_EIO;
	}
}

bool tb_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const uint8_t *x = a, *y = b;
	/* volatile keeps the compiler from turning the loop into an early exit. */
	volatile uint8_t diff = 0;
	size_t i;

	/* Walk all of a whatever b holds, so only the lengths show in the time. */
	for (i = 0; i < alen; i++)
		diff |= (uint8_t)(x[i] ^ (i < blen ? y[i] : 0));
	return diff == 0 && alen == blen;
}
