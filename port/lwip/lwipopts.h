/* lwipopts.h: lwIP options for tunnelbox, derived from Kconfig (kconfig/lwip.kconfig).
 *
 * lwIP's opt.h gives every option a default and a reason; this file overrides
 * only what matters for a single-threaded router daemon, one line of why each.
 * The tunables come from generated/config.h; derived sizes are computed here
 * and impossible combinations stop the build with an #error that names the
 * Kconfig symbol to change. lwIP's own sanity checks (core/init.c) still run. */
#ifndef TB_LWIPOPTS_H
#define TB_LWIPOPTS_H

#include "generated/config.h"

/* ---- system: one thread, our event loop, no OS ---- */
#define NO_SYS 1                 /* the loop calls lwIP; there is no tcpip thread */
#define SYS_LIGHTWEIGHT_PROT 0   /* nothing preempts the loop, nothing to protect */
#define LWIP_SOCKET 0            /* raw API only: streams are built on tcp_recv/tcp_sent */
#define LWIP_NETCONN 0           /* needs threads */
#define LWIP_NETIF_API 0         /* needs threads */
#define LWIP_STATS 0             /* counters cost RAM and code; our log reports what matters */
#define LWIP_TIMERS 1            /* sys_check_timeouts() runs from the loop (tb_lwip.h) */
#define MEM_ALIGNMENT 8          /* 64-bit hosts and MIPS alike */

/* ---- protocols ---- */
#define LWIP_IPV4 1
#define LWIP_IPV6 ENABLE_LWIP_IPV6
#define LWIP_IPV6_AUTOCONFIG 0   /* addresses come from the configuration, not from RAs */
#define LWIP_IPV6_DHCP6 0
/* ip6_frag.c keeps a pointer in the fragment header's 8 bytes: too small on 64-bit hosts. */
#define IPV6_FRAG_COPYHEADER (__SIZEOF_POINTER__ > 4)
#define LWIP_ARP ENABLE_PORT_LWIP /* only the lwIP port drives a tap (Ethernet) netif */
#define LWIP_ETHERNET ENABLE_PORT_LWIP
#define ARP_TABLE_SIZE 16        /* a LAN segment's worth of neighbours */
#define LWIP_DHCP 0              /* static addressing from [port.lwip] */
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
#define LWIP_RAW 0               /* ICMP echo is answered by icmp.c without raw PCBs */
#define LWIP_UDP 1
#define LWIP_TCP 1
#define LWIP_DNS ENABLE_LWIP_DNS
#define LWIP_HAVE_LOOPIF 0
#define LWIP_NETIF_LOOPBACK 0

/* ---- DNS (the lwIP port's resolver) ---- */
#if ENABLE_LWIP_DNS
#define DNS_TABLE_SIZE 16        /* concurrent lookups plus cache; lwIP's 4 stalls a busy proxy */
#define DNS_MAX_SERVERS 2
#define DNS_LOCAL_HOSTLIST 1     /* "localhost" and configured names answer without a query */
#define DNS_LOCAL_HOSTLIST_IS_DYNAMIC 1
#endif

/* ---- checksums ---- */
#define CHECKSUM_CHECK_IP ENABLE_LWIP_CHECKSUM_CHECK
#define CHECKSUM_CHECK_UDP ENABLE_LWIP_CHECKSUM_CHECK
#define CHECKSUM_CHECK_TCP ENABLE_LWIP_CHECKSUM_CHECK
#define CHECKSUM_CHECK_ICMP ENABLE_LWIP_CHECKSUM_CHECK
#define CHECKSUM_CHECK_ICMP6 ENABLE_LWIP_CHECKSUM_CHECK
#define CHECKSUM_GEN_IP ENABLE_LWIP_CHECKSUM_GEN
#define CHECKSUM_GEN_UDP ENABLE_LWIP_CHECKSUM_GEN
#define CHECKSUM_GEN_TCP ENABLE_LWIP_CHECKSUM_GEN
#define CHECKSUM_GEN_ICMP ENABLE_LWIP_CHECKSUM_GEN
#define CHECKSUM_GEN_ICMP6 ENABLE_LWIP_CHECKSUM_GEN

/* ---- TCP ---- */
/* The largest MSS any netif may use; each connection's is min(TCP_MSS, its
 * netif's MTU - 40), so a 1500-byte netif still sends 1460-byte segments. */
#define TCP_MSS CONFIG_LWIP_TCP_MSS
#define TCP_CALCULATE_EFF_SEND_MSS 1
#define TCP_WND CONFIG_LWIP_TCP_WND
#define TCP_SND_BUF CONFIG_LWIP_TCP_SND_BUF
/* The MSS of an Ethernet MTU: what queue and pool counts are sized by, since
 * a jumbo-capable build (TCP_MSS above it) still meets 1500-byte links. */
#define TB_MSS_BASE (TCP_MSS < 1460 ? TCP_MSS : 1460)
/* lwIP's default at that MSS: four segments' worth of pbufs per MSS of send buffer. */
#define TCP_SND_QUEUELEN ((4 * TCP_SND_BUF + TB_MSS_BASE - 1) / TB_MSS_BASE)
#define TCP_MSL CONFIG_LWIP_TCP_MSL_MS   /* TIME_WAIT holds a PCB for 2*MSL */
#define LWIP_TCP_KEEPALIVE 1     /* per-PCB keep_idle for tb_tcp_set_keepalive() */
#define TCP_LISTEN_BACKLOG 1     /* a paused listener must not let SYNs pile up PCBs */
#define LWIP_TCP_TIMESTAMPS 0
#define TCP_QUEUE_OOSEQ 1        /* keep out-of-order segments: a lost frame costs one RTT, not a window */
/* Writes are signalled "send buffer has room" at half the buffer (or two
 * segments), and never so high that the 16-bit checks in init.c overflow. */
#define TB_SNDLOWAT_WANT (TCP_SND_BUF / 2 > 2 * TCP_MSS + 1 ? TCP_SND_BUF / 2 : 2 * TCP_MSS + 1)
#define TB_SNDLOWAT_CAP (TCP_SND_BUF - 1 < 0xffff - 4 * TCP_MSS - 1 ? TCP_SND_BUF - 1 : 0xffff - 4 * TCP_MSS - 1)
#define TCP_SNDLOWAT (TB_SNDLOWAT_WANT < TB_SNDLOWAT_CAP ? TB_SNDLOWAT_WANT : TB_SNDLOWAT_CAP)

#if ENABLE_LWIP_WND_SCALE
#define LWIP_WND_SCALE 1
/* The smallest shift that brings the window into 16 bits. */
#if TCP_WND <= 0xffff
#define TCP_RCV_SCALE 0
#elif TCP_WND <= (0xffff << 1)
#define TCP_RCV_SCALE 1
#elif TCP_WND <= (0xffff << 2)
#define TCP_RCV_SCALE 2
#elif TCP_WND <= (0xffff << 3)
#define TCP_RCV_SCALE 3
#elif TCP_WND <= (0xffff << 4)
#define TCP_RCV_SCALE 4
#elif TCP_WND <= (0xffff << 5)
#define TCP_RCV_SCALE 5
#else
#define TCP_RCV_SCALE 6
#endif
#else
#define LWIP_WND_SCALE 0
#if TCP_WND > 0xffff
#error "CONFIG_LWIP_TCP_WND above 65535 needs CONFIG_LWIP_WND_SCALE (RFC 7323)"
#endif
#if TCP_SND_BUF > 0xffff
#error "CONFIG_LWIP_TCP_SND_BUF above 65535 needs CONFIG_LWIP_WND_SCALE (lwIP's snd_buf is 16 bits without it)"
#endif
#endif

#if TCP_MSS > 16000
#error "CONFIG_LWIP_TCP_MSS above 16000: lwIP's init.c wants TCP_SNDLOWAT 4 segments below 64 KiB"
#endif
#if TCP_WND < 2 * TCP_MSS
#error "CONFIG_LWIP_TCP_WND must hold two segments (2 * CONFIG_LWIP_TCP_MSS) or delayed ACKs stall the sender"
#endif
#if TCP_SND_BUF < 2 * TCP_MSS
#error "CONFIG_LWIP_TCP_SND_BUF must hold two segments (2 * CONFIG_LWIP_TCP_MSS)"
#endif
#if TCP_SND_QUEUELEN > 0xffff
#error "TCP_SND_QUEUELEN (4 * send buffer / MSS) must fit 16 bits: lower CONFIG_LWIP_TCP_SND_BUF"
#endif

/* ---- memory: counts from Kconfig, sizes derived from them ---- */
#define MEMP_NUM_TCP_PCB CONFIG_LWIP_TCP_PCBS
#define MEMP_NUM_TCP_PCB_LISTEN CONFIG_LWIP_TCP_LISTEN_PCBS
#define MEMP_NUM_UDP_PCB CONFIG_LWIP_UDP_PCBS

#if CONFIG_LWIP_TCP_SEGS > 0
#define MEMP_NUM_TCP_SEG CONFIG_LWIP_TCP_SEGS
#else
/* Four connections may fill their send queues at once; every other one gets 8
 * segments; lwIP counts a pool in 16 bits. */
#define TB_TCP_SEG_WANT (TCP_SND_QUEUELEN * (MEMP_NUM_TCP_PCB < 4 ? MEMP_NUM_TCP_PCB : 4) + 8 * MEMP_NUM_TCP_PCB)
#define MEMP_NUM_TCP_SEG (TB_TCP_SEG_WANT < 0xffff ? TB_TCP_SEG_WANT : 0xffff)
#endif
#if MEMP_NUM_TCP_SEG < TCP_SND_QUEUELEN
#error "CONFIG_LWIP_TCP_SEGS is below one full send queue (4 * TCP_SND_BUF / TCP_MSS): raise it, or lower the send buffer"
#endif

/* Received frames: pool pbufs hold a 1500-byte frame and its Ethernet header
 * (1460 bytes after IP and TCP headers, as init.c counts); a jumbo frame is
 * a chain of them, so the pool's memory does not grow with TCP_MSS. */
#define TB_PBUF_PAYLOAD TB_MSS_BASE
#define PBUF_POOL_BUFSIZE (TB_PBUF_PAYLOAD + 20 + 20 + 14)
#if CONFIG_LWIP_PBUF_POOL_SIZE > 0
#define PBUF_POOL_SIZE CONFIG_LWIP_PBUF_POOL_SIZE
#else
/* Two windows in flight (one held by a slow consumer, one arriving) plus slack for ARP/ICMP/UDP. */
#define PBUF_POOL_SIZE (2 * ((TCP_WND + TB_PBUF_PAYLOAD - 1) / TB_PBUF_PAYLOAD) + 16)
#endif
#if PBUF_POOL_SIZE > 0xffff
#error "PBUF_POOL_SIZE must fit lwIP's 16-bit pool count: lower CONFIG_LWIP_TCP_WND or set CONFIG_LWIP_PBUF_POOL_SIZE"
#endif
#if PBUF_POOL_SIZE * TB_PBUF_PAYLOAD < TCP_WND
#error "CONFIG_LWIP_PBUF_POOL_SIZE cannot hold one receive window (TCP_WND / TCP_MSS pbufs): raise it or set 0"
#endif
/* Pbufs that reference caller memory (PBUF_REF/ROM): UDP sends and lwIP's ICMP/ARP replies. */
#define MEMP_NUM_PBUF (MEMP_NUM_UDP_PCB < 0xffff - 16 ? 16 + MEMP_NUM_UDP_PCB : 0xffff)

/* Rough object sizes on a 64-bit host, for the derived heap only. */
#define TB_SZ_TCP_PCB 256
#define TB_SZ_TCP_SEG 48
#define TB_SZ_UDP_PCB 64
#define TB_SZ_POOL_PBUF (PBUF_POOL_BUFSIZE + 64)

#if ENABLE_LWIP_MEM_HEAP
#define MEMP_MEM_MALLOC 1        /* pools are carved from lwIP's heap: one bounded budget */
#define TB_MEM_POOLS_WORST                                                                         \
	(MEMP_NUM_TCP_PCB * TB_SZ_TCP_PCB + MEMP_NUM_TCP_SEG * TB_SZ_TCP_SEG +                     \
	 MEMP_NUM_UDP_PCB * TB_SZ_UDP_PCB + PBUF_POOL_SIZE * TB_SZ_POOL_PBUF)
#else
#define MEMP_MEM_MALLOC 0        /* fixed pools per type, sized by the counts above */
#define TB_MEM_POOLS_WORST 0
#endif

#if CONFIG_LWIP_MEM_SIZE_KB > 0
#define MEM_SIZE (CONFIG_LWIP_MEM_SIZE_KB * 1024)
#else
/* Send data (copied into PBUF_RAM) for a quarter of the connections at a full
 * buffer, at least two full buffers, at most 64 MiB (counted in KiB so the
 * sum stays in an int), plus 16 KiB for UDP and control replies. */
#define TB_MEM_SEND_KB (((MEMP_NUM_TCP_PCB + 3) / 4) * ((TCP_SND_BUF + 1023) / 1024))
#define TB_MEM_SEND_KB_MIN (2 * ((TCP_SND_BUF + 1023) / 1024))
#define TB_MEM_SEND_KB_CAPPED (TB_MEM_SEND_KB < 65536 ? TB_MEM_SEND_KB : 65536)
#define MEM_SIZE                                                                                   \
	((TB_MEM_SEND_KB_CAPPED > TB_MEM_SEND_KB_MIN ? TB_MEM_SEND_KB_CAPPED : TB_MEM_SEND_KB_MIN) * 1024 + \
	 16 * 1024 + TB_MEM_POOLS_WORST)
#endif
#if MEM_SIZE < 2 * TCP_SND_BUF
#error "CONFIG_LWIP_MEM_SIZE_KB cannot hold two send buffers: raise it or set 0 (derived)"
#endif

/* ---- hooks: behaviour lwIP lacks comes through its hook macros, never a patch ---- */
#if ENABLE_TUN2SOCKS
/* port/lwip/, owned by src/tun2socks.c (the guard: a tree where it has not landed yet) */
#if !defined(__has_include) || __has_include("tun2socks_hooks.h")
#include "tun2socks_hooks.h"
#endif
#endif

#endif
