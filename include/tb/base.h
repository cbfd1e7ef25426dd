/* base.h: error codes, byte-order helpers, constant-time compare.
 *
 * Every module includes this. Errors are values (DESIGN.md idea 6): functions
 * return 0 or a negative TB_E* code. Wire integers go through the load/store
 * helpers below, never through casts of packed structs, so the code is right
 * on big-endian MIPS routers. */
#ifndef TB_BASE_H
#define TB_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "generated/config.h"

enum {
	TB_OK = 0,
	TB_ENOMEM = -1,       /* allocation failed or a byte limit was hit */
	TB_EINVAL = -2,       /* bad argument or bad configuration */
	TB_EAGAIN = -3,       /* need more input */
	TB_EPROTO = -4,       /* peer violated the protocol */
	TB_ECONNREFUSED = -5, /* target refused the connection */
	TB_ENETUNREACH = -6,  /* no route to the target's network */
	TB_EHOSTUNREACH = -7, /* host unreachable, or its name did not resolve */
	TB_ETIMEDOUT = -8,    /* connect or idle timeout */
	TB_ECONNRESET = -9,   /* peer reset */
	TB_EPIPE = -10,       /* write after shutdown or close */
	TB_ENOTSUP = -11,     /* command or address type not supported */
	TB_EDENIED = -12,     /* refused by a rule (block connector, auth) */
	TB_ENOENT = -13,      /* no such name (file, router, connector) */
	TB_ERANGE = -14,      /* a length read from the wire is out of bounds */
	TB_EAFNOSUPPORT = -15,/* address family not supported */
	TB_ECANCELED = -16,   /* operation canceled by its owner */
	TB_EIO = -17,         /* other I/O error */
	TB_ENOBUFS = -18,     /* a queue is full: the caller must pause its source */
	TB_EADDRINUSE = -19,  /* a listener's address is taken */
	TB_ELAST = TB_EADDRINUSE,
};

const char *tb_strerror(int err);
/* Map a positive errno value to a TB_E* code. */
int tb_err_from_errno(int e);

#define TB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define tb_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define TB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define TB_UNUSED __attribute__((unused))
#else
#define TB_PRINTF(f, a)
#define TB_UNUSED
#endif

static inline uint16_t tb_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t tb_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t tb_be64(const uint8_t *p)
{
	return (uint64_t)tb_be32(p) << 32 | tb_be32(p + 4);
}
static inline uint16_t tb_le16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[1] << 8 | p[0]);
}
static inline uint32_t tb_le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}
static inline uint64_t tb_le64(const uint8_t *p)
{
	return (uint64_t)tb_le32(p + 4) << 32 | tb_le32(p);
}
static inline void tb_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void tb_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void tb_put_be64(uint8_t *p, uint64_t v)
{
	tb_put_be32(p, (uint32_t)(v >> 32));
	tb_put_be32(p + 4, (uint32_t)v);
}
static inline void tb_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void tb_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline void tb_put_le64(uint8_t *p, uint64_t v)
{
	tb_put_le32(p, (uint32_t)v);
	tb_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* A hex digit's value (either case), -1 for anything else. */
static inline int tb_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Constant-time equality: the time taken depends only on the lengths,
 * never on where the first difference is. Use it for every secret. */
bool tb_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
