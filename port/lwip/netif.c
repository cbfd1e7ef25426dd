/* netif.c: the lwIP port's network interface and its [port.lwip] settings.
 *
 * One netif per process, on a Linux tap (Ethernet frames, ARP through
 * etharp) or tun (bare IP packets) device opened through /dev/net/tun,
 * non-blocking and watched by the loop. The device is created if missing and
 * its link set up; its addresses belong to the kernel side, ours are lwIP's
 * (address, netmask, gateway from the configuration).
 *
 * The settings are read by tb_port_configure() while the gateway loads its
 * file (no side effects, so --check needs no device); the netif comes up on
 * first use: the first listener, connect, UDP socket or resolver.
 *
 * A netif can also be made without a device (tb_lwip_netif_new with fd -1):
 * frames it sends go to a callback, frames come in through
 * tb_lwip_netif_input(). The unit tests and the fuzzer use that seam. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "netif/ethernet.h"
#include "tb/conf.h"
#include "tb/log.h"
#include "tb/port.h"
#include "tb_lwip.h"

#if LWIP_IPV6
#include "lwip/ethip6.h"
#endif

#define NETIF_READS_PER_EVENT 64 /* fairness against the other descriptors */
#define NETIF_MTU_DEFAULT 1500
#define NETIF_MTU_MIN 576        /* RFC 791's every-host minimum (IPv6 netifs want 1280) */
#define NETIF_MTU_MAX 65535      /* lwIP's netif mtu is a u16_t */
#define NETIF_IOV_MAX 16

struct tb_lwip_netif {
	struct netif nif;
	tb_loop_t *loop;
	int fd;     /* -1: no device, frames go to sink */
	bool tap;
	tb_lwip_sink_cb sink;
	void *sink_arg;
	uint16_t mtu;
	size_t frame_max; /* the largest frame in or out: mtu plus the link header */
	uint8_t *frame;   /* frame_max + 1 bytes: reads land here, long chains flatten here */
	uint32_t dropped_in, dropped_out;
};

/* The port's settings and its one netif: lwIP itself is process-global. */
static struct {
	tb_lwip_netif_conf_t conf;
	bool configured;
	tb_lwip_netif_t *nif;
} port;

/* ---- output ---- */

static err_t send_frame(tb_lwip_netif_t *n, struct pbuf *p)
{
	struct iovec iov[NETIF_IOV_MAX];
	int cnt = 0;

	if (p->tot_len > n->frame_max)
		return ERR_BUF;
	if (n->fd < 0) {
		pbuf_copy_partial(p, n->frame, p->tot_len, 0);
		if (n->sink)
			n->sink(n->sink_arg, n->frame, p->tot_len);
		return ERR_OK;
	}
	for (struct pbuf *q = p; q; q = q->next) {
		if (cnt == NETIF_IOV_MAX) {
			/* A longer chain than we gather: one copy into a flat frame. */
			pbuf_copy_partial(p, n->frame, p->tot_len, 0);
			iov[0].iov_base = n->frame;
			iov[0].iov_len = p->tot_len;
			cnt = 1;
			break;
		}
		iov[cnt].iov_base = q->payload;
		iov[cnt].iov_len = q->len;
		cnt++;
	}
	if (writev(n->fd, iov, cnt) < 0) {
		/* A full device queue drops the frame, as a NIC would; TCP resends. */
		n->dropped_out++;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? ERR_OK : ERR_IF;
	}
	return ERR_OK;
}

static err_t tap_linkoutput(struct netif *nif, struct pbuf *p)
{
	return send_frame((tb_lwip_netif_t *)nif->state, p);
}

static err_t tun_output4(struct netif *nif, struct pbuf *p, const ip4_addr_t *ip)
{
	return send_frame((tb_lwip_netif_t *)nif->state, p);
}

#if LWIP_IPV6
static err_t tun_output6(struct netif *nif, struct pbuf *p, const ip6_addr_t *ip)
{
	return send_frame((tb_lwip_netif_t *)nif->state, p);
}
#endif

static err_t netif_init_cb(struct netif *nif)
{
	tb_lwip_netif_t *n = nif->state;

	nif->mtu = n->mtu; /* TCP's MSS follows it (TCP_CALCULATE_EFF_SEND_MSS) */
	nif->name[0] = n->tap ? 't' : 'u';
	nif->name[1] = 'b';
	if (n->tap) {
#if LWIP_ARP
		nif->hwaddr_len = ETH_HWADDR_LEN;
		memcpy(nif->hwaddr, port.conf.mac, ETH_HWADDR_LEN);
		nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
		nif->output = etharp_output;
		nif->linkoutput = tap_linkoutput;
#if LWIP_IPV6
		nif->output_ip6 = ethip6_output;
#endif
#else
		return ERR_IF;
#endif
	} else {
		nif->output = tun_output4;
#if LWIP_IPV6
		nif->output_ip6 = tun_output6;
#endif
	}
	return ERR_OK;
}

/* ---- input ---- */

void tb_lwip_netif_input(tb_lwip_netif_t *n, const uint8_t *frame, size_t len)
{
	struct pbuf *p;

	/* An Ethernet frame needs its header; anything above the MTU (plus the
	 * link header) did not come from a peer that honours ours. */
	if (len == 0 || len > n->frame_max || len > 0xffff || (n->tap && len < SIZEOF_ETH_HDR)) {
		n->dropped_in++;
		return;
	}
	p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
	if (!p) {
		n->dropped_in++; /* out of receive pbufs: the sender retransmits */
		return;
	}
	pbuf_take(p, frame, (u16_t)len);
	if (n->nif.input(p, &n->nif) != ERR_OK)
		pbuf_free(p);
}

static void device_event(tb_loop_t *loop, int fd, unsigned ev, void *arg)
{
	tb_lwip_netif_t *n = arg;

	for (int i = 0; i < NETIF_READS_PER_EVENT; i++) {
		/* One byte more than the largest frame we accept: a longer one shows as a full read. */
		ssize_t r = read(fd, n->frame, n->frame_max + 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((size_t)r > n->frame_max) {
			n->dropped_in++;
			continue;
		}
		tb_lwip_netif_input(n, n->frame, (size_t)r);
	}
	/* Input may have started or stopped TCP timers: keep the wake-up right. */
	tb_lwip_poll_timers(loop);
}

/* ---- device ---- */

static int device_open(const char *name, bool tap, uint16_t mtu, char *actual)
{
	struct ifreq ifr;
	int fd, s, err;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return tb_err_from_errno(errno);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = (tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = tb_err_from_errno(errno);
		close(fd);
		return err;
	}
	snprintf(actual, IFNAMSIZ, "%s", ifr.ifr_name);
	/* The kernel side's link must be up for frames to pass; its addresses
	 * (none needed) are the administrator's business. */
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0 && mtu) {
		/* A bridge forwards nothing longer than a port's MTU: the device must carry ours. */
		ifr.ifr_mtu = mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
			tb_warn("lwip: cannot set %s mtu %u: %s", actual, (unsigned)mtu, strerror(errno));
	}
	if (s >= 0) {
		if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
			ifr.ifr_flags |= IFF_UP;
			if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
				tb_warn("lwip: cannot set %s up: %s", actual, strerror(errno));
		}
		close(s);
	}
	return fd;
}

int tb_lwip_netif_new(tb_loop_t *loop, const tb_lwip_netif_conf_t *c, int fd, tb_lwip_sink_cb sink, void *arg,
		      tb_lwip_netif_t **out)
{
	tb_lwip_netif_t *n = calloc(1, sizeof(*n));
	ip_addr_t a, m, g;
	int rc;

	if (!n)
		return TB_ENOMEM;
	n->mtu = c->mtu ? c->mtu : NETIF_MTU_DEFAULT;
	n->frame_max = (size_t)n->mtu + (c->tap ? SIZEOF_ETH_HDR : 0);
	if (!(n->frame = malloc(n->frame_max + 1))) {
		free(n);
		return TB_ENOMEM;
	}
	if ((rc = tb_lwip_start(loop)) < 0) {
		free(n->frame);
		free(n);
		return rc;
	}
	n->loop = loop;
	n->fd = fd;
	n->tap = c->tap;
	n->sink = sink;
	n->sink_arg = arg;
	if (c != &port.conf)
		port.conf = *c; /* netif_init_cb reads the MAC from here */
	tb_lwip_to_ip(&c->address, &a);
	tb_lwip_to_ip(&c->netmask, &m);
	tb_lwip_to_ip(&c->gateway, &g);
	if (!netif_add(&n->nif, ip_2_ip4(&a), ip_2_ip4(&m), ip_2_ip4(&g), n, netif_init_cb,
		       c->tap ? ethernet_input : ip_input)) {
		tb_lwip_stop(loop);
		free(n->frame);
		free(n);
		return TB_EINVAL;
	}
#if LWIP_IPV6
	if (c->tap)
		netif_create_ip6_linklocal_address(&n->nif, 1);
#endif
	netif_set_default(&n->nif);
	if (!port.nif)
		port.nif = n; /* the first netif serves the port (a device-less one in tests) */
	netif_set_link_up(&n->nif);
	netif_set_up(&n->nif);
	if (fd >= 0 && (rc = tb_loop_add_fd(loop, fd, TB_EV_READ, device_event, n)) < 0) {
		netif_remove(&n->nif);
		tb_lwip_stop(loop);
		free(n->frame);
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

void tb_lwip_netif_free(tb_lwip_netif_t *n)
{
	if (!n)
		return;
	if (n->fd >= 0) {
		tb_loop_forget_fd(n->loop, n->fd);
		close(n->fd);
	}
	netif_remove(&n->nif);
	tb_lwip_stop(n->loop);
	if (port.nif == n)
		port.nif = NULL;
	free(n->frame);
	free(n);
}

/* ---- the port's netif, from [port.lwip] ---- */

int tb_lwip_port_up(tb_loop_t *loop)
{
	char name[IFNAMSIZ], buf[TB_ADDR_STRLEN];
	int fd, rc;

	if (port.nif)
		return port.nif->loop == loop ? 0 : TB_EINVAL;
	if (!port.configured) {
		tb_err("lwip: no [port.lwip] table in the configuration: no network");
		return TB_ENETUNREACH;
	}
	fd = device_open(port.conf.device, port.conf.tap, port.conf.mtu, name);
	if (fd < 0) {
		tb_err("lwip: cannot open %s device '%s': %s", port.conf.tap ? "tap" : "tun", port.conf.device,
		       tb_strerror(fd));
		return fd;
	}
	if ((rc = tb_lwip_netif_new(loop, &port.conf, fd, NULL, NULL, &port.nif)) < 0) {
		close(fd);
		return rc;
	}
	tb_info("lwip: %s on %s, address %s, mtu %u", port.conf.tap ? "tap" : "tun", name,
		tb_addr_ip_str(&port.conf.address, buf, sizeof(buf)), (unsigned)port.nif->mtu);
	return 0;
}

int tb_lwip_bind_addr(tb_loop_t *loop, const tb_addr_t *a, bool v6only, ip_addr_t *ip, u8_t *type)
{
	int rc;

	if ((rc = tb_lwip_port_up(loop)) < 0 || (rc = tb_lwip_to_ip(a, ip)) < 0)
		return rc;
	*type = IP_GET_TYPE(ip);
#if LWIP_IPV6
	if (*type == IPADDR_TYPE_V6 && ip_addr_isany(ip) && !v6only)
		*type = IPADDR_TYPE_ANY;
#endif
	return 0;
}

const char *tb_lwip_port_dns(void)
{
	return port.configured && port.conf.dns[0] ? port.conf.dns : NULL;
}

static int get_ip4(const tb_conf_val_t *t, const char *key, tb_addr_t *out, bool need, tb_conf_err_t *err)
{
	const char *s = NULL;
	int rc = need ? tb_conf_need_str(t, key, &s, err) : tb_conf_get_str(t, key, &s, err);

	if (rc == TB_ENOENT && !need)
		return 0;
	if (rc < 0)
		return rc;
	if (tb_addr_parse_ip(s, out) < 0 || out->family != TB_AF_INET) {
		tb_conf_set_err(err, tb_conf_get(t, key), "an IPv4 address, like \"192.168.7.2\"");
		return TB_EINVAL;
	}
	return 0;
}

int tb_port_configure(const tb_conf_val_t *port_table, tb_conf_err_t *err)
{
	const tb_conf_val_t *t = port_table ? tb_conf_get(port_table, "lwip") : NULL;
	tb_lwip_netif_conf_t c;
	const char *netif = "tap", *device = "tb0", *dns = NULL;
	int64_t mtu = 0;
	int rc;

	if (port.nif)
		return 0; /* the netif is up: a worker or a reload keeps it as it is */
	if (!t) {
		port.configured = false;
		return 0; /* an error only once something needs the network */
	}
	if (t->type != TB_CONF_TABLE) {
		tb_conf_set_err(err, t, "a table: [port.lwip]");
		return TB_EINVAL;
	}
	memset(&c, 0, sizeof(c));
	if ((rc = tb_conf_get_str(t, "netif", &netif, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (strcmp(netif, "tap") != 0 && strcmp(netif, "tun") != 0) {
		tb_conf_set_err(err, tb_conf_get(t, "netif"), "\"tap\" or \"tun\"");
		return TB_EINVAL;
	}
	c.tap = netif[1] == 'a';
	if ((rc = tb_conf_get_str(t, "device", &device, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (device[0] == '\0' || strlen(device) >= IFNAMSIZ || strchr(device, '/')) {
		tb_conf_set_err(err, tb_conf_get(t, "device"), "an interface name of 1 to %d characters", IFNAMSIZ - 1);
		return TB_EINVAL;
	}
	snprintf(c.device, sizeof(c.device), "%s", device);
	if ((rc = get_ip4(t, "address", &c.address, true, err)) < 0 ||
	    (rc = get_ip4(t, "netmask", &c.netmask, false, err)) < 0 ||
	    (rc = get_ip4(t, "gateway", &c.gateway, false, err)) < 0)
		return rc;
	if (c.netmask.family == 0)
		tb_addr_parse_ip("255.255.255.0", &c.netmask);
	if ((rc = tb_conf_get_int(t, "mtu", &mtu, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (rc != TB_ENOENT && (mtu < NETIF_MTU_MIN || mtu > NETIF_MTU_MAX)) {
		tb_conf_set_err(err, tb_conf_get(t, "mtu"), "an MTU of %d to %d bytes", NETIF_MTU_MIN, NETIF_MTU_MAX);
		return TB_EINVAL;
	}
	c.mtu = (uint16_t)mtu; /* 0: the default, and the device's MTU is left alone */
	if ((rc = tb_conf_get_str(t, "dns", &dns, err)) < 0 && rc != TB_ENOENT)
		return rc;
	if (dns) {
		if (strlen(dns) >= sizeof(c.dns)) {
			tb_conf_set_err(err, tb_conf_get(t, "dns"), "too long");
			return TB_EINVAL;
		}
		snprintf(c.dns, sizeof(c.dns), "%s", dns);
	}
	/* A locally administered unicast MAC: 02 then five bytes derived from the
	 * address, so a restart keeps its ARP entries valid on the LAN. */
	c.mac[0] = 0x02;
	c.mac[1] = 0x74; /* 't' */
	memcpy(c.mac + 2, c.address.ip, 4);
	port.conf = c;
	port.configured = true;
	return 0;
}
