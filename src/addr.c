/* addr.c: IP addresses and proxy targets as plain values.
 *
 * The text forms go through inet_pton/inet_ntop, which every libc we build
 * against has (lwIP builds run on Linux too); nothing socket-shaped leaks
 * into the API. */
#include "tb/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static size_t ip_len(uint8_t family)
{
	return family == TB_AF_INET ? 4 : family == TB_AF_INET6 ? 16 : 0;
}

/* inet_pton needs a NUL-terminated string; hosts from the wire are not. */
static int parse_ip_n(const char *s, size_t n, tb_addr_t *out)
{
	char tmp[64];
	tb_addr_t a = {0};

	if (n == 0 || n >= sizeof(tmp) || memchr(s, '\0', n))
		return TB_EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, a.ip) == 1)
		a.family = TB_AF_INET;
	else if (inet_pton(AF_INET6, tmp, a.ip) == 1)
		a.family = TB_AF_INET6;
	else
		return TB_EINVAL;
	*out = a;
	return 0;
}

/* Decimal 0..65535 with no sign, spaces or leading junk. */
static int parse_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return TB_EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v > 65535)
		return TB_EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int tb_addr_parse_ip(const char *s, tb_addr_t *out)
{
	return parse_ip_n(s, strlen(s), out);
}

int tb_addr_parse(const char *s, tb_addr_t *out, bool port_optional)
{
	const char *host = s, *colon, *port = NULL;
	size_t hlen;
	tb_addr_t a;
	uint16_t p = 0;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end)
			return TB_EINVAL;
		host = s + 1;
		hlen = (size_t)(end - host);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return TB_EINVAL;
		/* Brackets are for IPv6 only: "[1.2.3.4]:80" is a typo, not a v4. */
		if (parse_ip_n(host, hlen, &a) || a.family != TB_AF_INET6)
			return TB_EINVAL;
	} else {
		colon = strchr(s, ':');
		if (colon && !strchr(colon + 1, ':')) { /* exactly one: v4:port */
			hlen = (size_t)(colon - s);
			port = colon + 1;
		} else {
			hlen = strlen(s); /* no colon, or a bare IPv6 */
		}
		if (parse_ip_n(host, hlen, &a))
			return TB_EINVAL;
		if (port && a.family != TB_AF_INET)
			return TB_EINVAL;
	}
	if (port ? parse_port(port, &p) : !port_optional)
		return TB_EINVAL;
	a.port = p;
	*out = a;
	return 0;
}

const char *tb_addr_ip_str(const tb_addr_t *a, char *buf, size_t len)
{
	char tmp[TB_ADDR_STRLEN];
	int af = a->family == TB_AF_INET ? AF_INET : AF_INET6;

	if (!ip_len(a->family) || !inet_ntop(af, a->ip, tmp, sizeof(tmp)))
		snprintf(buf, len, "(none)");
	else
		snprintf(buf, len, "%s", tmp);
	return buf;
}

const char *tb_addr_str(const tb_addr_t *a, char *buf, size_t len)
{
	char ip[TB_ADDR_STRLEN];

	tb_addr_ip_str(a, ip, sizeof(ip));
	if (a->family == TB_AF_INET6)
		snprintf(buf, len, "[%s]:%u", ip, a->port);
	else if (a->family == TB_AF_INET)
		snprintf(buf, len, "%s:%u", ip, a->port);
	else
		snprintf(buf, len, "%s", ip);
	return buf;
}

bool tb_addr_ip_equal(const tb_addr_t *a, const tb_addr_t *b)
{
	return a->family == b->family && memcmp(a->ip, b->ip, ip_len(a->family)) == 0;
}

bool tb_addr_equal(const tb_addr_t *a, const tb_addr_t *b)
{
	return a->port == b->port && tb_addr_ip_equal(a, b);
}

bool tb_addr_in_prefix(const tb_addr_t *a, const tb_addr_t *prefix, unsigned bits)
{
	size_t full = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (a->family != prefix->family || !ip_len(a->family) || bits > ip_len(a->family) * 8)
		return false;
	if (memcmp(a->ip, prefix->ip, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff00u >> rest);
	return ((a->ip[full] ^ prefix->ip[full]) & mask) == 0;
}

int tb_target_set(tb_target_t *t, const char *host, size_t hostlen, uint16_t port)
{
	t->host[0] = '\0';
	t->is_ip = false;
	t->port = port;
	memset(&t->addr, 0, sizeof(t->addr));
	/* HTTP hosts carry IPv6 literals in brackets; store them bare. */
	if (hostlen >= 2 && host[0] == '[' && host[hostlen - 1] == ']') {
		tb_addr_t a;

		if (parse_ip_n(host + 1, hostlen - 2, &a) || a.family != TB_AF_INET6)
			return TB_EINVAL;
		host++;
		hostlen -= 2;
	}
	if (hostlen == 0)
		return TB_EINVAL;
	if (hostlen > TB_HOST_MAX)
		return TB_ERANGE;
	/* A NUL inside a SOCKS5 name would make logs and lookups disagree. */
	if (memchr(host, '\0', hostlen))
		return TB_EINVAL;
	memcpy(t->host, host, hostlen);
	t->host[hostlen] = '\0';
	if (parse_ip_n(host, hostlen, &t->addr) == 0) {
		t->is_ip = true;
		t->addr.port = port;
	}
	return 0;
}

void tb_target_from_addr(tb_target_t *t, const tb_addr_t *a)
{
	tb_addr_ip_str(a, t->host, sizeof(t->host));
	t->port = a->port;
	t->is_ip = true;
	t->addr = *a;
}

const char *tb_target_str(const tb_target_t *t, char *buf, size_t len)
{
	if (t->is_ip && t->addr.family == TB_AF_INET6)
		snprintf(buf, len, "[%s]:%u", t->host, t->port);
	else
		snprintf(buf, len, "%s:%u", t->host, t->port);
	return buf;
}
