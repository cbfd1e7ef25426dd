/* linksocks_client.h: the pure parts of the LinkSocks client's dial
 * (spec/linksocks.md §2.2), for linksocks_client.c, the command line and
 * the unit tests.
 *
 * - The server URL: `-u example.org` means wss://example.org/socket.
 * - Redirects: a 301/302/303/307/308 Location (absolute http, https, ws or
 *   wss URL, network-path, absolute-path or relative reference) resolved
 *   against the URL it answered, as RFC 3986 §5.2 and Go's
 *   url.ResolveReference do.
 * - The proxy from the environment, decided as Go's
 *   http.ProxyFromEnvironment (golang.org/x/net/http/httpproxy): ws:// uses
 *   HTTP_PROXY, wss:// HTTPS_PROXY, each read upper case first (the lower
 *   case name counts only when the upper case one is unset or empty);
 *   NO_PROXY skips the proxy; "localhost" and loopback addresses never use
 *   one. */
#ifndef TB_LINKSOCKS_CLIENT_H
#define TB_LINKSOCKS_CLIENT_H

#include "tb/addr.h"

#define TB_LS_PATH_MAX 256    /* the request path, NUL included */
#define TB_LS_QUERY_MAX 1024  /* the raw query (no '?'), NUL included */
#define TB_LS_REDIRECTS_MAX 5 /* §2.2 */
#define TB_LS_PROXY_URL_MAX 600

typedef struct tb_ls_url {
	bool tls; /* wss */
	uint16_t port;
	char host[TB_HOST_MAX + 1];	/* for DNS, SNI and the certificate; IPv6 bare */
	char hosthdr[TB_HOST_MAX + 10]; /* the Host field: the URL's authority */
	char path[TB_LS_PATH_MAX];	/* starts with '/', bytes outside 0x21..0x7e %-encoded */
	char query[TB_LS_QUERY_MAX];	/* raw, no fragment */
} tb_ls_url_t;

/* The configured URL, normalised as §2.2: no "://" means wss://, http and
 * https are ws and wss, an empty path or "/" is /socket. 0, TB_EINVAL
 * (malformed, or another scheme), TB_ERANGE (a part too long). */
int tb_ls_url_parse(const char *url, tb_ls_url_t *u);
/* The target of a redirect: loc resolved against base into *out (which
 * must not be base). No §2.2 normalisation: an empty path is "/". 0,
 * TB_EINVAL (empty or malformed), TB_ENOTSUP (another scheme), TB_ERANGE. */
int tb_ls_url_resolve(const tb_ls_url_t *base, const char *loc, tb_ls_url_t *out);
/* The status codes Go's http.Client follows. */
bool tb_ls_is_redirect(int status);

/* Go's rules for a request to host:port: true when no proxy is used, for
 * "localhost", a loopback address, or a match in no_proxy (may be NULL): a
 * comma list of "*", IP addresses, CIDR prefixes, domains (matching the
 * domain and its subdomains; ".d" and "*.d" subdomains only), IPs and
 * domains with ":port". Case-insensitive; malformed entries are skipped. */
bool tb_ls_proxy_bypass(const char *no_proxy, const char *host, uint16_t port);

enum {
	TB_LS_PROXY_NONE,
	TB_LS_PROXY_HTTP,
	TB_LS_PROXY_SOCKS5
};

/* A proxy value as Go reads one: "http://[user:pass@]host[:port]",
 * "socks5://..." (socks5h:// too), or a bare "host[:port]" meaning http://.
 * Any path is ignored. Writes the canonical form, with the port Go would
 * use (80, 1080), into out. Returns TB_LS_PROXY_NONE for an empty value,
 * TB_LS_PROXY_HTTP or _SOCKS5, TB_ENOTSUP for https:// (TLS to the proxy
 * is not implemented), TB_EINVAL when malformed, TB_ERANGE. */
int tb_ls_proxy_url(const char *in, char *out, size_t cap);
/* http.ProxyFromEnvironment for the WebSocket URL u, given the values of
 * HTTP_PROXY, HTTPS_PROXY and NO_PROXY (each may be NULL): the proxy's
 * canonical URL in out (as tb_ls_proxy_url) and its kind, or
 * TB_LS_PROXY_NONE; errors as tb_ls_proxy_url. */
int tb_ls_proxy_for(const tb_ls_url_t *u, const char *http_proxy, const char *https_proxy,
		    const char *no_proxy, char *out, size_t cap);

#endif
