/* upstream.h: connectors that dial through an upstream proxy.
 *
 * proto "socks5" (RFC 1928, with RFC 1929 username/password when user and
 * pass are set) and proto "http" (HTTP/1.1 CONNECT, with Proxy-Authorization
 * Basic when user and pass are set). Configuration, in a [[connector]] table:
 *
 *   endpoint = "host:port"   the proxy (a name is resolved through env->dns);
 *                            the port defaults to 1080 (socks5), 8080 (http)
 *   user, pass               optional credentials
 *   url = "socks5://[u:p@]host[:port]" or "http://[u:p@]host[:port]"
 *                            instead of endpoint/user/pass (u and p may be
 *                            %-encoded; socks5h:// is accepted as socks5://)
 *
 * connect() dials the proxy and runs the handshake within the environment's
 * connect timeout; a name target is sent unresolved (SOCKS5 ATYP 3). Bytes
 * the proxy sends after its reply are delivered on the returned stream.
 * Errors: the SOCKS5 REP mapped by tb_socks5_err_from_rep, a refused
 * authentication TB_EDENIED; for http, 407 and 403 TB_EDENIED, 504
 * TB_ETIMEDOUT, any other non-2xx status TB_ECONNREFUSED.
 *
 * udp_open(): for socks5, an association (RFC 1928 UDP ASSOCIATE) on a
 * control connection to the proxy; datagrams go to the relay it names (its
 * own address when it names 0.0.0.0) behind the SOCKS5 UDP header, replies
 * from anywhere else are dropped, and up to 16 datagrams (64 KiB) wait while
 * the association is being set up. It ends with the control connection;
 * sends then fail with TB_ENETUNREACH. For http, TB_ENOTSUP: an HTTP proxy
 * carries TCP only. */
#ifndef TB_UPSTREAM_H
#define TB_UPSTREAM_H

#include "tb/connector.h"

/* proto is "socks5" or "http"; TB_ENOENT for anything else, TB_EINVAL (err
 * filled) for a bad table. */
int tb_upstream_connector_new(const tb_connector_env_t *env, const char *name, const char *proto,
			      const tb_conf_val_t *table, tb_connector_t **out, tb_conf_err_t *err);

#endif
