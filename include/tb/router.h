/* router.h: [[router]] and [[data]] (spec/rogv2.md §6, rog's matching rules).
 *
 * A router picks a connector name for a target. Rules are tried in order and
 * the first match wins; a rule names a [[data]] set, an `exclude` list and a
 * `select`ed connector. Data formats: `cidr`, `regex` (POSIX extended regex,
 * unanchored search), `lan` (built-in private IPv4 ranges) and tunnelbox's
 * `domain` (suffix match on label boundaries, case-insensitive; "*.a.b",
 * ".a.b" and "a.b." all mean "a.b"). In every format a CIDR or bare IP line
 * matches IP hosts. Sources: `url` (file:// only for now; http(s) skips the
 * set with a warning, as rog does when a fetch fails), tunnelbox's `file`,
 * or inline `data`; one entry per line, blank lines and lines starting with
 * '#' dropped. A relative path is taken from the config file's directory.
 * A rule whose set is missing or unusable never matches. Matching is pure: a
 * caller that must resolve names first (rules with domain_to_ip) asks
 * tb_router_wants_ips and passes the answers to tb_router_select. */
#ifndef TB_ROUTER_H
#define TB_ROUTER_H

#include "tb/addr.h"
#include "tb/conf.h"

typedef struct tb_routing tb_routing_t; /* every [[data]] and [[router]] of a config */
typedef struct tb_router tb_router_t;

/* Builds all data sets and routers; data files and file:// URLs are read
 * now. Unknown keys are logged as warnings. TB_EINVAL with err on a bad config. */
int tb_routing_load(const tb_conf_t *conf, tb_routing_t **out, tb_conf_err_t *err);
void tb_routing_free(tb_routing_t *r);
const tb_router_t *tb_routing_find(const tb_routing_t *r, const char *name);

const char *tb_router_name(const tb_router_t *r);
/* Calls fn for the default and every rule's `select`, in order, with the
 * position of the key (a copy owned by the routing: valid after the conf
 * tree is freed), so the caller can check that each names a connector.
 * Stops at, and returns, the first non-zero value fn returns. */
int tb_router_foreach_connector(const tb_router_t *r,
				int (*fn)(void *arg, const char *name, const tb_conf_val_t *where),
				void *arg);

/* True when the target is a name and the first rule that could still decide
 * it wants resolved IPs: domain_to_ip on a set that has IP lines, and no
 * earlier rule matches the name itself. *dns (when dns is not NULL) gets that
 * rule's `dns` server, or NULL for the system resolver. */
bool tb_router_wants_ips(const tb_router_t *r, const tb_target_t *t, const char **dns);
/* The connector name for t; ips are the resolved addresses (may be none),
 * tested by rules with domain_to_ip after the name itself (§6). */
const char *tb_router_select(const tb_router_t *r, const tb_target_t *t, const tb_addr_t *ips, size_t nips);

#endif
