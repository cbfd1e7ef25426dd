/* arch/cc.h: lwIP's compiler and platform glue for tunnelbox (NO_SYS=1, no OS).
 *
 * lwIP reads this through lwip/arch.h. Types come from <stdint.h> and the
 * printf formats from <inttypes.h> (lwIP's defaults); only what differs from
 * lwIP's defaults is here. */
#ifndef TB_LWIP_ARCH_CC_H
#define TB_LWIP_ARCH_CC_H

#include <stdint.h>
#include <stdlib.h>

/* The C library's <endian.h> (through stdlib.h) usually defines it; else the
 * compiler knows the target's byte order: right on big-endian MIPS and s390x. */
#ifndef BYTE_ORDER
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BYTE_ORDER BIG_ENDIAN
#else
#define BYTE_ORDER LITTLE_ENDIAN
#endif
#endif

/* lwIP's diagnostics go to our log (port/lwip/sys_arch.c); an assertion is a
 * bug in the stack's state, so it stops the process with a message. */
void tb_lwip_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tb_lwip_assert(const char *msg, const char *file, int line) __attribute__((noreturn));
#define LWIP_PLATFORM_DIAG(x)                                                                  \
	do {                                                                                   \
		tb_lwip_diag x;                                                                \
	} while (0)
#define LWIP_PLATFORM_ASSERT(x) tb_lwip_assert((x), __FILE__, __LINE__)

/* ISNs, DNS ids and ephemeral ports come from getrandom() (sys_arch.c). */
uint32_t tb_lwip_rand(void);
#define LWIP_RAND() tb_lwip_rand()

#endif
