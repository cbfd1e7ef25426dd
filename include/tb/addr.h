/* addr.h: socket addresses and proxy targets, independent of the port.
 *
 * tb_addr_t is an IP address and port in network terms (no struct sockaddr),
 * so the POSIX and lwIP ports share it. tb_target_t is what a client asks a
 * proxy for: a domain name or an IP literal, and a port. */
#ifndef TB_ADDR_H
#define TB_ADDR_H

#include "tb/base.h"

#define TB_AF_INET 4
#define TB_AF_INET6 6
#define TB_HOST_MAX 255  /* longest domain a SOCKS5 request can carry */
#define TB_ADDR_STRLEN 48 /* "[ffff:...:ffff]:65535" plus NUL */

typedef struct tb_addr {
	uint8_t family; /* TB_AF_INET or TB_AF_INET6, 0 when unset */
	uint16_t port;  /* host byte order */
	uint8_t ip[16]; /* network byte order; IPv4 uses the first 4 bytes */
} tb_addr_t;

typedef struct tb_target {
	char host[TB_HOST_MAX + 1]; /* NUL-terminated; an IP literal when is_ip */
	uint16_t port;
	bool is_ip;
	tb_addr_t addr; /* valid when is_ip */
} tb_target_t;

/* "1.2.3.4:80", "[::1]:80"; a bare IP when port_optional (port 0). */
int tb_addr_parse(const char *s, tb_addr_t *out, bool port_optional);
/* An IP literal without port; 0 on success. */
int tb_addr_parse_ip(const char *s, tb_addr_t *out);
/* Formats "1.2.3.4:80" or "[::1]:80" into buf (TB_ADDR_STRLEN). */
const char *tb_addr_str(const tb_addr_t *a, char *buf, size_t len);
/* IP only, no port, no brackets. */
const char *tb_addr_ip_str(const tb_addr_t *a, char *buf, size_t len);
bool tb_addr_equal(const tb_addr_t *a, const tb_addr_t *b); /* ip and port */
bool tb_addr_ip_equal(const tb_addr_t *a, const tb_addr_t *b);
/* Is a inside prefix/bits (same family)? */
bool tb_addr_in_prefix(const tb_addr_t *a, const tb_addr_t *prefix, unsigned bits);

/* Fill a target from a host (IP literal or name) and port; TB_ERANGE when the
 * name is longer than TB_HOST_MAX, TB_EINVAL when empty. */
int tb_target_set(tb_target_t *t, const char *host, size_t hostlen, uint16_t port);
void tb_target_from_addr(tb_target_t *t, const tb_addr_t *a);
/* "host:port" or "[v6]:port" for logs. */
const char *tb_target_str(const tb_target_t *t, char *buf, size_t len);

#endif
