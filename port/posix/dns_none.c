/* dns_none.c: the resolver when c-ares is not compiled in (CONFIG_DNS_CARES=n).
 *
 * IP literals "resolve" to themselves; names fail with TB_EHOSTUNREACH, so
 * a SOCKS5 client asking for a name gets REP 4. A tiny router build that
 * only ever sees IP targets (tun2socks, IP-only clients) saves libcares. */
#include <stdlib.h>

#include "tb/port.h"

struct tb_dns {
	tb_loop_t *loop;
};

struct tb_dns_query {
	tb_defer_t defer;
	tb_loop_t *loop;
	tb_dns_cb cb;
	void *arg;
	tb_addr_t addr;
	int err;
};

int tb_dns_new(tb_loop_t *loop, const char *servers, tb_dns_t **out)
{
	tb_dns_t *d = calloc(1, sizeof(*d));

	if (!d)
		return TB_ENOMEM;
	d->loop = loop;
	*out = d;
	return 0;
}

void tb_dns_free(tb_dns_t *d)
{
	free(d);
}

static void answer(tb_loop_t *loop, void *arg)
{
	tb_dns_query_t *q = arg;
	tb_dns_cb cb = q->cb;
	void *cbarg = q->arg;
	tb_addr_t a = q->addr;
	int err = q->err;

	free(q);
	cb(cbarg, err, err ? NULL : &a, err ? 0 : 1);
}

int tb_dns_resolve(tb_dns_t *d, const char *host, int family, tb_dns_cb cb, void *arg, tb_dns_query_t **out)
{
	tb_dns_query_t *q = calloc(1, sizeof(*q));

	if (!q)
		return TB_ENOMEM;
	q->loop = d->loop;
	q->cb = cb;
	q->arg = arg;
	q->err = tb_addr_parse_ip(host, &q->addr) == 0 ? 0 : TB_EHOSTUNREACH;
	tb_defer_init(&q->defer, answer, q);
	tb_defer(d->loop, &q->defer);
	if (out)
		*out = q;
	return 0;
}

void tb_dns_cancel(tb_dns_query_t *q)
{
	if (!q)
		return;
	tb_defer_cancel(q->loop, &q->defer);
	free(q);
}
