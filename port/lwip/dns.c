/* dns.c: the lwIP port's resolver, lwIP's own dns.c driven by our loop.
 *
 * lwIP answers IP literals and cached names at once (ERR_OK): we still
 * answer through a deferred call, as the port contract requires. lwIP has
 * no way to cancel a lookup, so a canceled query stays allocated (marked
 * canceled) until lwIP calls back, which its retry limit bounds; lwIP's
 * table (DNS_TABLE_SIZE) bounds how many are in flight. One address comes
 * back per lookup. lwIP's servers are process-global: the last
 * tb_dns_new() with servers sets them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/dns.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb_lwip.h"

struct tb_dns {
	tb_loop_t *loop;
	tb_dns_query_t *queries; /* pending in lwIP, for tb_dns_free */
};

struct tb_dns_query {
	tb_dns_query_t *next, **pprev;
	tb_dns_t *d;
	tb_loop_t *loop;
	tb_defer_t defer;
	tb_dns_cb cb;
	void *arg;
	tb_addr_t addr;
	int err;
	bool in_lwip, canceled;
};

static void q_unlink(tb_dns_query_t *q)
{
	if (q->pprev) {
		*q->pprev = q->next;
		if (q->next)
			q->next->pprev = q->pprev;
		q->pprev = NULL;
		q->next = NULL;
	}
}

static void answer(tb_loop_t *loop, void *arg)
{
	tb_dns_query_t *q = arg;
	tb_dns_cb cb = q->cb;
	void *cbarg = q->arg;
	tb_addr_t a = q->addr;
	int err = q->err;

	q_unlink(q);
	free(q);
	cb(cbarg, err, err ? NULL : &a, err ? 0 : 1);
}

static void found(const char *name, const ip_addr_t *ip, void *arg)
{
	tb_dns_query_t *q = arg;

	q->in_lwip = false;
	if (q->canceled) {
		free(q);
		return;
	}
	if (ip) {
		tb_lwip_from_ip(ip, 0, &q->addr);
		q->err = 0;
	} else {
		q->err = TB_EHOSTUNREACH; /* lwIP does not tell NXDOMAIN from silence */
	}
	tb_defer(q->loop, &q->defer); /* lwIP may call us inside dns_gethostbyname */
}

static int set_servers(const char *servers)
{
	char buf[256], *save = NULL;
	u8_t i = 0;

	if (strlen(servers) >= sizeof(buf))
		return TB_EINVAL;
	snprintf(buf, sizeof(buf), "%s", servers);
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		tb_addr_t a;
		ip_addr_t ip;

		if (tb_addr_parse(tok, &a, true) < 0 || tb_lwip_to_ip(&a, &ip) < 0)
			return TB_EINVAL;
		if (a.port != 0 && a.port != 53)
			tb_warn("lwip dns: %s: lwIP queries port 53 only; port ignored", tok);
		if (i < DNS_MAX_SERVERS)
			dns_setserver(i++, &ip);
	}
	return i > 0 ? 0 : TB_EINVAL;
}

int tb_dns_new(tb_loop_t *loop, const char *servers, tb_dns_t **out)
{
	tb_dns_t *d;
	int rc;

	if (!servers)
		servers = tb_lwip_port_dns(); /* [port.lwip] dns; there is no resolv.conf here */
	if (servers && (rc = set_servers(servers)) < 0)
		return rc;
	d = calloc(1, sizeof(*d));
	if (!d)
		return TB_ENOMEM;
	d->loop = loop;
	*out = d;
	return 0;
}

void tb_dns_free(tb_dns_t *d)
{
	if (!d)
		return;
	while (d->queries)
		tb_dns_cancel(d->queries);
	free(d);
}

int tb_dns_resolve(tb_dns_t *d, const char *host, int family, tb_dns_cb cb, void *arg, tb_dns_query_t **out)
{
	tb_dns_query_t *q;
	ip_addr_t ip;
	u8_t type = family == TB_AF_INET	 ? LWIP_DNS_ADDRTYPE_IPV4
		    : family == TB_AF_INET6 ? LWIP_DNS_ADDRTYPE_IPV6
					    : LWIP_DNS_ADDRTYPE_IPV4_IPV6;
	err_t e;
	int rc;

	if (strlen(host) >= DNS_MAX_NAME_LENGTH)
		return TB_EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return TB_ENOMEM;
	q->d = d;
	q->loop = d->loop;
	q->cb = cb;
	q->arg = arg;
	tb_defer_init(&q->defer, answer, q);
	if (tb_addr_parse_ip(host, &q->addr) == 0) {
		q->err = 0; /* a literal needs neither lwIP nor the netif */
	} else {
		/* Names go out on the netif: bring it up (and lwIP's timers) first. */
		if ((rc = tb_lwip_port_up(d->loop)) < 0) {
			free(q);
			return rc;
		}
		q->in_lwip = true;
		e = dns_gethostbyname_addrtype(host, &ip, found, q, type);
		if (e == ERR_OK) {
			q->in_lwip = false;
			tb_lwip_from_ip(&ip, 0, &q->addr);
		} else if (e == ERR_INPROGRESS) {
			q->pprev = &d->queries;
			q->next = d->queries;
			if (d->queries)
				d->queries->pprev = &q->next;
			d->queries = q;
			if (out)
				*out = q;
			return 0;
		} else {
			q->in_lwip = false;
			q->err = TB_EHOSTUNREACH; /* no server, table full, bad name */
		}
	}
	tb_defer(d->loop, &q->defer);
	if (out)
		*out = q;
	return 0;
}

void tb_dns_cancel(tb_dns_query_t *q)
{
	if (!q)
		return;
	q_unlink(q);
	tb_defer_cancel(q->loop, &q->defer);
	if (q->in_lwip)
		q->canceled = true; /* freed by found() */
	else
		free(q);
}
