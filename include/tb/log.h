/* log.h: levelled logging to stderr or syslog, with repeat suppression.
 *
 * The logger is process state (like the loop, set up once by main). One call
 * site prints at most 10 lines a second; more are counted instead of printed
 * and the count is reported when the site next logs, so a flood of bad
 * packets cannot fill a router's flash-backed log. A NULL site (tb_log_msg
 * called directly) is never suppressed. */
#ifndef TB_LOG_H
#define TB_LOG_H

#include "tb/base.h"

enum { TB_LOG_ERROR = 0, TB_LOG_WARN, TB_LOG_INFO, TB_LOG_DEBUG };

void tb_log_init(int level, bool use_syslog, const char *ident);
void tb_log_set_level(int level);
int tb_log_level(void);
/* "error", "warn", "info", "debug"; -1 when unknown. */
int tb_log_level_parse(const char *name);
void tb_log_msg(int level, const char *site, const char *fmt, ...) TB_PRINTF(3, 4);

#define TB_LOG_SITE__(l) __FILE__ ":" #l
#define TB_LOG_SITE_(l) TB_LOG_SITE__(l)
#define tb_log(level, ...)                                                     \
	do {                                                                   \
		if ((level) <= tb_log_level())                                 \
			tb_log_msg((level), TB_LOG_SITE_(__LINE__), __VA_ARGS__); \
	} while (0)
#define tb_err(...) tb_log(TB_LOG_ERROR, __VA_ARGS__)
#define tb_warn(...) tb_log(TB_LOG_WARN, __VA_ARGS__)
#define tb_info(...) tb_log(TB_LOG_INFO, __VA_ARGS__)
#define tb_debug(...) tb_log(TB_LOG_DEBUG, __VA_ARGS__)

#endif
