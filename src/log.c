/* log.c: the process logger of log.h.
 *
 * This file holds the only mutable global state outside main.c and the
 * loop: the level, the sink and the table of recent call sites. A line is
 * built whole and written with one write(2), so lines from N worker processes
 * sharing stderr do not interleave. */
#include "tb/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#ifndef CONFIG_LOG_LEVEL_DEFAULT
#define CONFIG_LOG_LEVEL_DEFAULT TB_LOG_INFO
#endif

#define LOG_LINE 1024
/* Direct-mapped; a collision evicts the older site. No table without the
 * option: it would be RAM spent on every router for nothing. */
#define SITES (ENABLE_LOG_RATELIMIT ? 32 : 1)
#define REPEAT_MS 1000
/* Lines one site may print per second before repeats are counted: a flood
 * is cut, distinct events (one per flow) in a normal second are not. */
#define BURST 10

struct log_site {
	const char *site;
	uint64_t last_ms;    /* when this site's second began */
	unsigned count;      /* lines printed in that second */
	unsigned suppressed; /* messages dropped since then */
	int level;
};

/* The level alone is initialised, so the rest stays in .bss. */
static int log_level = CONFIG_LOG_LEVEL_DEFAULT;

static struct {
	bool syslog;
	char ident[32];
	struct log_site sites[SITES];
} logger;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static int clamp_level(int level)
{
	return level < TB_LOG_ERROR ? TB_LOG_ERROR : level > TB_LOG_DEBUG ? TB_LOG_DEBUG : level;
}

void tb_log_init(int level, bool use_syslog, const char *ident)
{
	log_level = clamp_level(level);
	logger.syslog = ENABLE_LOG_SYSLOG && use_syslog;
	if (ENABLE_LOG_SYSLOG && logger.syslog) {
		/* openlog keeps the pointer, so keep our own copy of the name. */
		snprintf(logger.ident, sizeof(logger.ident), "%s", ident ? ident : "tunnelbox");
		openlog(logger.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	}
}

void tb_log_set_level(int level)
{
	log_level = clamp_level(level);
}

int tb_log_level(void)
{
	return log_level;
}

int tb_log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < TB_ARRAY_SIZE(level_names); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return strcmp(name, "warning") == 0 ? TB_LOG_WARN : -1;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned site_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h % SITES;
}

static void emit(int level, const char *msg, unsigned suppressed);

/* Decides whether site may print now; *suppressed gets the count to report. */
static bool site_allows(int level, const char *site, unsigned *suppressed)
{
	struct log_site *e = &logger.sites[site_hash(site)];
	uint64_t now = mono_ms();
	bool same = e->site && strcmp(e->site, site) == 0;

	*suppressed = 0;
	if (same && now - e->last_ms < REPEAT_MS) {
		if (e->count < BURST) {
			e->count++;
			return true;
		}
		e->suppressed++;
		return false;
	}
	if (same) {
		*suppressed = e->suppressed;
	} else if (e->site && e->suppressed) {
		/* Evicting a site that still owes a count: say it now, not never. */
		char msg[LOG_LINE / 2];

		snprintf(msg, sizeof(msg), "%s: earlier message", e->site);
		emit(e->level, msg, e->suppressed);
	}
	e->site = site;
	e->level = level;
	e->last_ms = now;
	e->count = 1;
	e->suppressed = 0;
	return true;
}

/* Control bytes from peers (a domain with '\n') must not forge log lines. */
static void scrub(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static size_t stamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03ld ", ts.tv_nsec / 1000000L);
	return n;
}

static void emit(int level, const char *msg, unsigned suppressed)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[LOG_LINE], tail[48] = "";
	size_t n = 0;
	int w;

	if (suppressed)
		snprintf(tail, sizeof(tail), " (%u repeats suppressed)", suppressed);
	if (ENABLE_LOG_SYSLOG && logger.syslog) {
		syslog(prio[level], "%s%s", msg, tail);
		return;
	}
	n = stamp(line, sizeof(line));
	w = snprintf(line + n, sizeof(line) - n, "%-5s %s%s\n", level_names[level], msg, tail);
	if (w < 0)
		return;
	n += (size_t)w;
	if (n >= sizeof(line)) { /* truncated: keep the line a line */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

void tb_log_msg(int level, const char *site, const char *fmt, ...)
{
	char msg[LOG_LINE - 64];
	unsigned suppressed = 0;
	int saved = errno; /* callers often log and then look at errno */
	va_list ap;

	level = clamp_level(level);
	if (level > log_level)
		return;
	if (ENABLE_LOG_RATELIMIT && site && !site_allows(level, site, &suppressed))
		goto out;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	scrub(msg);
	emit(level, msg, suppressed);
out:
	errno = saved;
}
