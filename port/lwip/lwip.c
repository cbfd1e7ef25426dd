/* lwip.c: lwIP's init, timers, diagnostics and error/address mapping for
 * tunnelbox (see tb_lwip.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/timeouts.h"
#include "tb/log.h"
#include "tb_lwip.h"

/* lwIP is global, so is its driver: one loop drives it at a time. */
static struct {
	bool inited;
	unsigned users;
	tb_loop_t *loop;
	tb_timer_t wake;
	void (*flush)(void);
} lw;

void tb_lwip_set_flush(void (*fn)(void))
{
	lw.flush = fn;
}

static void arm(tb_loop_t *loop)
{
	u32_t ms = sys_timeouts_sleeptime();

	if (ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		tb_timer_stop(loop, &lw.wake);
	else
		tb_timer_start(loop, &lw.wake, ms);
}

void tb_lwip_poll_timers(tb_loop_t *loop)
{
	sys_check_timeouts();
	arm(loop);
}

/* Before every poll: the turn's deferred output leaves (tb_lwip_set_flush), and anything queued this turn (a tcp_write that started the
 * TCP timer, a DNS query) gets its timeout honoured by the coming sleep. */
static void before_sleep(tb_loop_t *loop, void *arg)
{
	if (lw.flush)
		lw.flush();
	tb_lwip_poll_timers(loop);
}

static void wake(tb_loop_t *loop, void *arg)
{
	tb_lwip_poll_timers(loop);
}

int tb_lwip_start(tb_loop_t *loop)
{
	if (lw.users > 0 && lw.loop != loop)
		return TB_EINVAL; /* lwIP's timers can follow one loop only */
	if (!lw.inited) {
		lwip_init();
		lw.inited = true;
	}
	if (lw.users++ == 0) {
		lw.loop = loop;
		tb_timer_init(&lw.wake, wake, NULL);
		tb_loop_set_before_sleep(loop, before_sleep, NULL);
		arm(loop);
	}
	return 0;
}

void tb_lwip_stop(tb_loop_t *loop)
{
	if (lw.users == 0 || lw.loop != loop || --lw.users > 0)
		return;
	tb_timer_stop(loop, &lw.wake);
	tb_loop_set_before_sleep(loop, NULL, NULL);
	lw.loop = NULL;
}

void tb_lwip_diag(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	tb_debug("lwip: %s", line);
}

void tb_lwip_assert(const char *msg, const char *file, int line)
{
	tb_log_msg(TB_LOG_ERROR, NULL, "lwip: assertion \"%s\" failed at %s:%d", msg, file, line);
	abort();
}

int tb_lwip_err(err_t e)
{
	switch (e) {
	case ERR_OK:
		return 0;
	case ERR_MEM:
	case ERR_BUF:
		return TB_ENOMEM;
	case ERR_TIMEOUT:
		return TB_ETIMEDOUT;
	case ERR_RTE:
		return TB_ENETUNREACH;
	case ERR_INPROGRESS:
	case ERR_WOULDBLOCK:
		return TB_EAGAIN;
	case ERR_VAL:
	case ERR_ARG:
		return TB_EINVAL;
	case ERR_USE:
	case ERR_ALREADY:
	case ERR_ISCONN:
		return TB_EADDRINUSE;
	case ERR_CONN:
	case ERR_CLSD:
		return TB_EPIPE;
	case ERR_ABRT:
		return TB_ECANCELED;
	case ERR_RST:
		return TB_ECONNRESET;
	case ERR_IF:
		return TB_EIO;
	default:
		return TB_EIO;
	}
}

int tb_lwip_to_ip(const tb_addr_t *a, ip_addr_t *out)
{
	memset(out, 0, sizeof(*out));
	if (a->family == TB_AF_INET) {
		/* a->ip is network order, as is ip4_addr_t's u32: copy bytes, no swap. */
		ip_addr_t v4 = IPADDR4_INIT(0);
		memcpy(&ip_2_ip4(&v4)->addr, a->ip, 4);
		*out = v4;
		return 0;
	}
#if LWIP_IPV6
	if (a->family == TB_AF_INET6) {
		ip_addr_t v6 = IPADDR6_INIT(0, 0, 0, 0);
		memcpy(ip_2_ip6(&v6)->addr, a->ip, 16);
		*out = v6;
		return 0;
	}
#endif
	return TB_EAFNOSUPPORT;
}

void tb_lwip_from_ip(const ip_addr_t *ip, uint16_t port, tb_addr_t *out)
{
	memset(out, 0, sizeof(*out));
	out->port = port;
#if LWIP_IPV6
	if (IP_IS_V6(ip)) {
		const ip6_addr_t *v6 = ip_2_ip6(ip);
		/* An IPv4-mapped address is reported as IPv4, as the POSIX port does. */
		if (ip6_addr_isipv4mappedipv6(v6)) {
			out->family = TB_AF_INET;
			memcpy(out->ip, &v6->addr[3], 4);
		} else {
			out->family = TB_AF_INET6;
			memcpy(out->ip, v6->addr, 16);
		}
		return;
	}
#endif
	out->family = TB_AF_INET;
	memcpy(out->ip, &ip_2_ip4(ip)->addr, 4);
}
