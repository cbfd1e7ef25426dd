/* sys_arch.c: the two platform functions lwIP needs with NO_SYS=1: a
 * millisecond clock and random numbers. They sit alone in this file so that a
 * fuzz target can link its own deterministic pair instead. */
#include "lwip/arch.h"
#include "lwip/sys.h"
#include "tb/port.h"

u32_t sys_now(void)
{
	/* lwIP compares times by u32 subtraction, so the wrap after 49 days is fine. */
	return (u32_t)tb_port_now_ms();
}

uint32_t tb_lwip_rand(void)
{
	uint32_t r = 0;

	/* getrandom() on a 4-byte request does not fail once the pool is seeded;
	 * should it, a zero still gives lwIP a valid (if guessable) value. */
	(void)tb_port_random(&r, sizeof(r));
	return r;
}
