/* dns_cares.c: name resolution inside the loop with c-ares.
 *
 * c-ares tells us which sockets to watch (ARES_OPT_SOCK_STATE_CB) and when its
 * next timeout is (ares_timeout); the loop does the waiting, so a lookup never
 * blocks the process. ares_getaddrinfo may answer synchronously (hosts file,
 * bad names), so every answer is delivered through a deferred call when it
 * arrives inside tb_dns_resolve(): callers can rely on port.h's "never from
 * inside the call" rule. */
#include <ares.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tb/log.h"
#include "tb/port.h"
#include "posix.h"

struct tb_dns {
	tb_loop_t *loop;
	ares_channel channel;
	tb_timer_t timer;
};

struct tb_dns_query {
	tb_dns_t *d;
	tb_dns_cb cb;
	void *arg;
	tb_defer_t defer;
	int err;
	size_t n;
	tb_addr_t addrs[TB_DNS_MAX_ADDRS];
	bool starting, canceled, in_ares;
};

static void dns_rearm(tb_dns_t *d)
{
	struct timeval tv, *tvp = ares_timeout(d->channel, NULL, &tv);

	if (!tvp) {
		tb_timer_stop(d->loop, &d->timer);
		return;
	}
	tb_timer_start(d->loop, &d->timer, (uint64_t)tvp->tv_sec * 1000u + (uint64_t)tvp->tv_usec / 1000u + 1);
}

static void dns_fd_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_dns_t *d = arg;

	ares_process_fd(d->channel, (ev & (TB_EV_READ | TB_EV_ERROR)) ? fd : ARES_SOCKET_BAD,
			(ev & TB_EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void dns_timeout(tb_loop_t *loop, void *arg)
{
	tb_dns_t *d = arg;

	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(d);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	tb_dns_t *d = data;
	unsigned mask = (readable ? TB_EV_READ : 0) | (writable ? TB_EV_WRITE : 0);

	if (mask == 0) {
		tb_loop_forget_fd(d->loop, fd);
		return;
	}
	tb_loop_add_fd(d->loop, fd, mask, dns_fd_event, d);
	tb_loop_set_fd(d->loop, fd, mask);
}

int tb_dns_new(tb_loop_t *loop, const char *servers, tb_dns_t **out)
{
	struct ares_options o;
	tb_dns_t *d;
	int rc;

	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS)
		return TB_EIO;
	d = calloc(1, sizeof(*d));
	if (!d)
		return TB_ENOMEM;
	d->loop = loop;
	tb_timer_init(&d->timer, dns_timeout, d);
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = d;
	o.timeout = 2000; /* ms per try, 3 tries: a dead server fails in ~6 s */
	o.tries = 3;
	rc = ares_init_options(&d->channel, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		tb_err("dns: c-ares init: %s", ares_strerror(rc));
		free(d);
		return TB_EIO;
	}
	if (servers && servers[0] && (rc = ares_set_servers_ports_csv(d->channel, servers)) != ARES_SUCCESS) {
		tb_err("dns: bad server list '%s': %s", servers, ares_strerror(rc));
		ares_destroy(d->channel);
		free(d);
		return TB_EINVAL;
	}
	*out = d;
	return 0;
}

void tb_dns_free(tb_dns_t *d)
{
	if (!d)
		return;
	tb_timer_stop(d->loop, &d->timer);
	ares_destroy(d->channel); /* runs every pending callback with ARES_EDESTRUCTION */
	free(d);
}

static void query_deliver(tb_dns_query_t *q)
{
	tb_dns_cb cb = q->cb;
	void *arg = q->arg;
	tb_addr_t addrs[TB_DNS_MAX_ADDRS];
	size_t n = q->n;
	int err = q->err;

	memcpy(addrs, q->addrs, n * sizeof(addrs[0]));
	tb_defer_cancel(q->d->loop, &q->defer);
	free(q);
	cb(arg, err, addrs, n);
}

static void query_deferred(tb_loop_t *loop, void *arg)
{
	query_deliver(arg);
}

static int status_to_err(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ETIMEOUT:
	case ARES_ECONNREFUSED:
		return TB_ETIMEDOUT;
	case ARES_ENOMEM:
		return TB_ENOMEM;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return TB_ECANCELED;
	default:
		return TB_EHOSTUNREACH;
	}
}

/* Keeps IPv4 answers first (the order rog and curl users expect). */
static void collect(tb_dns_query_t *q, const struct ares_addrinfo *ai)
{
	for (int pass = 0; pass < 2; pass++) {
		int fam = pass == 0 ? AF_INET : AF_INET6;
		for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n; n = n->ai_next) {
			if (n->ai_family != fam || q->n >= TB_DNS_MAX_ADDRS)
				continue;
			tb_posix_from_sockaddr(n->ai_addr, &q->addrs[q->n++]);
		}
	}
}

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	tb_dns_query_t *q = arg;

	q->in_ares = false;
	q->err = status_to_err(status);
	if (q->err == 0)
		collect(q, ai);
	if (q->err == 0 && q->n == 0)
		q->err = TB_EHOSTUNREACH;
	ares_freeaddrinfo(ai);
	if (q->canceled || status == ARES_EDESTRUCTION) {
		free(q);
		return;
	}
	if (q->starting)
		tb_defer(q->d->loop, &q->defer);
	else
		query_deliver(q);
}

int tb_dns_resolve(tb_dns_t *d, const char *host, int family, tb_dns_cb cb, void *arg, tb_dns_query_t **out)
{
	struct ares_addrinfo_hints hints;
	tb_dns_query_t *q = calloc(1, sizeof(*q));

	if (!q)
		return TB_ENOMEM;
	q->d = d;
	q->cb = cb;
	q->arg = arg;
	tb_defer_init(&q->defer, query_deferred, q);
	if (out)
		*out = q;
	if (tb_addr_parse_ip(host, &q->addrs[0]) == 0) {
		q->n = 1;
		tb_defer(d->loop, &q->defer);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family == TB_AF_INET ? AF_INET : family == TB_AF_INET6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	q->starting = true;
	q->in_ares = true;
	ares_getaddrinfo(d->channel, host, NULL, &hints, ares_done, q);
	q->starting = false;
	dns_rearm(d);
	return 0;
}

void tb_dns_cancel(tb_dns_query_t *q)
{
	if (!q)
		return;
	if (q->in_ares) {
		/* c-ares cannot drop one query: it is freed when it completes. */
		q->canceled = true;
		return;
	}
	tb_defer_cancel(q->d->loop, &q->defer);
	free(q);
}
