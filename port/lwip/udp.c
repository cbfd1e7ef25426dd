/* udp.c: UDP sockets on lwIP's raw API for the lwIP port.
 *
 * A datagram arrives as a pbuf (often one, a chain when it was reassembled):
 * handed over in place when contiguous, else copied once into a buffer on
 * the heap (at most 64 KiB, freed at once). Sends copy into a PBUF_RAM;
 * lwIP out of memory reads as a full socket buffer (TB_EAGAIN). */
#include <stdlib.h>
#include <string.h>

#include "lwip/pbuf.h"
#include "lwip/udp.h"
#include "tb/port.h"
#include "tb_lwip.h"

struct tb_udp {
	tb_loop_t *loop;
	struct udp_pcb *pcb;
	tb_addr_t local;
	tb_udp_recv_cb cb;
	void *arg;
	uint8_t in_cb;
	bool closed;
};

static void on_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *ip, u16_t port)
{
	tb_udp_t *u = arg;
	tb_addr_t from;
	uint8_t *copy = NULL;
	const uint8_t *data = p->payload;

	if (!u || u->closed) {
		pbuf_free(p);
		return;
	}
	if (p->next) {
		copy = malloc(p->tot_len ? p->tot_len : 1);
		if (!copy) {
			pbuf_free(p);
			return; /* dropped, as a full socket buffer would */
		}
		pbuf_copy_partial(p, copy, p->tot_len, 0);
		data = copy;
	}
	tb_lwip_from_ip(ip, port, &from);
	u->in_cb++;
	u->cb(u->arg, u, &from, data, p->tot_len);
	free(copy);
	pbuf_free(p);
	if (--u->in_cb == 0 && u->closed)
		free(u);
}

int tb_udp_open(tb_loop_t *loop, const tb_addr_t *bind, tb_udp_recv_cb cb, void *arg, tb_udp_t **out)
{
	tb_udp_t *u;
	ip_addr_t ip;
	u8_t type;
	err_t e;
	int rc;

	if ((rc = tb_lwip_bind_addr(loop, bind, false, &ip, &type)) < 0)
		return rc;
	u = calloc(1, sizeof(*u));
	if (!u)
		return TB_ENOMEM;
	u->pcb = udp_new_ip_type(type);
	if (!u->pcb) {
		free(u);
		return TB_ENOMEM;
	}
	e = type == IPADDR_TYPE_ANY ? udp_bind(u->pcb, IP_ANY_TYPE, bind->port) : udp_bind(u->pcb, &ip, bind->port);
	if (e != ERR_OK) {
		udp_remove(u->pcb);
		free(u);
		return e == ERR_USE ? TB_EADDRINUSE : tb_lwip_err(e);
	}
	u->loop = loop;
	u->cb = cb;
	u->arg = arg;
	u->local = *bind;
	u->local.port = u->pcb->local_port;
	udp_recv(u->pcb, on_recv, u);
	*out = u;
	return 0;
}

int tb_udp_send(tb_udp_t *u, const tb_addr_t *to, const void *data, size_t len)
{
	struct pbuf *p;
	ip_addr_t ip;
	err_t e;
	int rc;

	if (u->closed)
		return TB_EPIPE;
	if (len > 0xffff - 8)
		return TB_ERANGE;
	if ((rc = tb_lwip_to_ip(to, &ip)) < 0)
		return rc;
	p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)len, PBUF_RAM);
	if (!p)
		return TB_EAGAIN;
	pbuf_take(p, data, (u16_t)len);
	e = udp_sendto(u->pcb, p, &ip, to->port);
	pbuf_free(p);
	if (e == ERR_MEM || e == ERR_BUF)
		return TB_EAGAIN;
	return e == ERR_OK ? 0 : tb_lwip_err(e);
}

void tb_udp_local_addr(const tb_udp_t *u, tb_addr_t *out)
{
	*out = u->local;
}

void tb_udp_close(tb_udp_t *u)
{
	if (!u || u->closed)
		return;
	u->closed = true;
	udp_recv(u->pcb, NULL, NULL);
	udp_remove(u->pcb);
	u->pcb = NULL;
	if (u->in_cb == 0)
		free(u);
}
