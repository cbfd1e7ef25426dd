/* port.h: what a port (port/posix, port/lwip) provides to the core.
 *
 * Nothing here assumes a file descriptor: a TCP connection is a tb_stream_t,
 * a UDP socket and a TUN device are objects with callbacks. Buffer ownership
 * is explicit on every callback: data handed to a callback is borrowed for the
 * duration of the call; data passed to a send function is copied (or sent)
 * before the function returns. All functions run on the loop's thread and
 * never block; results arrive through callbacks, never from inside the call
 * that started the operation (so callers need not guard against reentrancy). */
#ifndef TB_PORT_H
#define TB_PORT_H

#include "tb/addr.h"
#include "tb/conf.h"
#include "tb/loop.h"
#include "tb/stream.h"

/* ---- settings ---- */
/* The configuration's [port] table (NULL when absent), read while the
 * gateway loads its file, before any listener opens. Only validates and
 * stores (so --check touches no device); keys it reads are marked used, the
 * rest are warned about. The POSIX port has none; the lwIP port reads
 * [port.lwip] (netif, device, address, netmask, gateway, dns). */
int tb_port_configure(const tb_conf_val_t *port_table, tb_conf_err_t *err);

/* ---- clock and randomness ---- */
uint64_t tb_port_now_ms(void); /* monotonic */
int tb_port_random(void *buf, size_t len);

/* ---- TCP ---- */
typedef struct tb_tcp_listener tb_tcp_listener_t;
typedef struct tb_tcp_connect tb_tcp_connect_t;

/* The new stream belongs to the callee; peer is the client's address. */
typedef void (*tb_tcp_accept_cb)(void *arg, tb_stream_t *s, const tb_addr_t *peer);
/* On success s is the connected stream (err 0), owned by the callee; on
 * failure s is NULL and err is TB_ECONNREFUSED, TB_ETIMEDOUT, ... The
 * tb_tcp_connect_t handle is freed before the callback runs. */
typedef void (*tb_tcp_connect_cb)(void *arg, tb_stream_t *s, int err);

typedef struct tb_tcp_listen_opts {
	int backlog;      /* 0: a sensible default */
	bool reuseport;   /* SO_REUSEPORT for N worker processes */
	bool v6only;
} tb_tcp_listen_opts_t;

int tb_tcp_listen(tb_loop_t *loop, const tb_addr_t *bind, const tb_tcp_listen_opts_t *opts,
		  tb_tcp_accept_cb cb, void *arg, tb_tcp_listener_t **out);
/* The bound address (with the port the system picked for port 0). */
void tb_tcp_listener_addr(const tb_tcp_listener_t *l, tb_addr_t *out);
void tb_tcp_listener_pause(tb_tcp_listener_t *l, bool paused);
void tb_tcp_listener_close(tb_tcp_listener_t *l);

int tb_tcp_connect(tb_loop_t *loop, const tb_addr_t *dst, uint32_t timeout_ms,
		   tb_tcp_connect_cb cb, void *arg, tb_tcp_connect_t **out);
void tb_tcp_connect_cancel(tb_tcp_connect_t *c); /* the callback will not run */

/* Only for streams made by tb_tcp_listen/tb_tcp_connect. */
int tb_tcp_local_addr(const tb_stream_t *s, tb_addr_t *out);
int tb_tcp_peer_addr(const tb_stream_t *s, tb_addr_t *out);
void tb_tcp_set_nodelay(tb_stream_t *s, bool on);
void tb_tcp_set_keepalive(tb_stream_t *s, unsigned idle_s);

/* ---- UDP ---- */
typedef struct tb_udp tb_udp_t;
typedef void (*tb_udp_recv_cb)(void *arg, tb_udp_t *u, const tb_addr_t *from,
			       const uint8_t *data, size_t len);

int tb_udp_open(tb_loop_t *loop, const tb_addr_t *bind, tb_udp_recv_cb cb, void *arg, tb_udp_t **out);
/* Best effort, like the network: TB_EAGAIN when the socket buffer is full. */
int tb_udp_send(tb_udp_t *u, const tb_addr_t *to, const void *data, size_t len);
void tb_udp_local_addr(const tb_udp_t *u, tb_addr_t *out);
void tb_udp_close(tb_udp_t *u);

/* ---- DNS ---- */
typedef struct tb_dns tb_dns_t;
typedef struct tb_dns_query tb_dns_query_t;

#define TB_DNS_MAX_ADDRS 8
/* addrs is borrowed for the call; err is TB_EHOSTUNREACH when the name does
 * not resolve, TB_ETIMEDOUT when the servers do not answer. The query handle
 * is freed before the callback runs. */
typedef void (*tb_dns_cb)(void *arg, int err, const tb_addr_t *addrs, size_t n);

/* servers: NULL for the system's resolv.conf, else "ip[:port],..." */
int tb_dns_new(tb_loop_t *loop, const char *servers, tb_dns_t **out);
void tb_dns_free(tb_dns_t *d); /* pending queries are canceled, no callbacks */
/* family: 0 any (IPv4 first), TB_AF_INET, TB_AF_INET6. An IP literal answers
 * at once (through a deferred call, never inside this function). */
int tb_dns_resolve(tb_dns_t *d, const char *host, int family, tb_dns_cb cb, void *arg, tb_dns_query_t **out);
void tb_dns_cancel(tb_dns_query_t *q);

/* ---- TUN (IP packets, no headers) ---- */
typedef struct tb_tun tb_tun_t;
typedef void (*tb_tun_recv_cb)(void *arg, const uint8_t *pkt, size_t len);

/* Opens or creates the named device (name may be "" for the kernel's choice;
 * the actual name is written back, IFNAMSIZ bytes). */
int tb_tun_open(tb_loop_t *loop, char *name, size_t namelen, tb_tun_recv_cb cb, void *arg, tb_tun_t **out);
int tb_tun_write(tb_tun_t *t, const void *pkt, size_t len);
void tb_tun_close(tb_tun_t *t);

#endif
