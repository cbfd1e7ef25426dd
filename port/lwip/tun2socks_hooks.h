/* tun2socks_hooks.h: lwIP hooks and sizes for the tun2socks listener
 * (src/tun2socks.c), so lwIP accepts TCP to every destination without a
 * patched source.
 *
 * lwipopts.h includes this last when ENABLE_TUN2SOCKS, before lwIP's types
 * exist: the hook functions are declared on incomplete types only.
 *
 * - ip4_input/ip6_input call LWIP_HOOK_IP{4,6}_INPUT right after the
 *   version check, before the "is it for us" test. On a tun2socks netif the
 *   hook validates the header, fills ip_data as ip4_input would and hands a
 *   TCP segment to tcp_input; a listen PCB for its port is made first when
 *   it is a SYN. The new PCB copies its local address from ip_data's
 *   destination (tcp_listen_input), so lwIP answers as the original server.
 *   Other netifs and other protocols return 0: lwIP's normal path.
 * - ip4_route/ip6_route ask LWIP_HOOK_IP{4,6}_ROUTE when no netif's subnet
 *   matches (the tun2socks netif has no address): the answer is the netif the
 *   current packet came in on, else a tun2socks netif. PCBs made from a SYN
 *   are bound to their netif (netif_idx), so this only serves resets sent
 *   without a PCB.
 * - tcp_next_iss is predictable in lwIP 2.1.3 (a counter); the ISN hook takes
 *   random numbers instead (LWIP_RAND, port/lwip/sys_arch.c). */
#ifndef TB_TUN2SOCKS_HOOKS_H
#define TB_TUN2SOCKS_HOOKS_H

#include <stdint.h>

struct pbuf;
struct netif;

int tb_t2s_lwip_ip4_input(struct pbuf *p, struct netif *inp);
int tb_t2s_lwip_ip6_input(struct pbuf *p, struct netif *inp);
struct netif *tb_t2s_lwip_route(void);
uint32_t tb_lwip_rand(void);

#define LWIP_HOOK_IP4_INPUT(p, inp) tb_t2s_lwip_ip4_input((p), (inp))
#define LWIP_HOOK_IP6_INPUT(p, inp) tb_t2s_lwip_ip6_input((p), (inp))
#define LWIP_HOOK_IP4_ROUTE_SRC(src, dest) tb_t2s_lwip_route()
#define LWIP_HOOK_IP6_ROUTE(src, dest) tb_t2s_lwip_route()
#define LWIP_HOOK_TCP_ISN(lip, lport, rip, rport) tb_lwip_rand()

/* Fragments never reach lwIP's reassembly (the hooks drop IPv4 fragments,
 * UDP is answered outside lwIP), and TCP sends MSS-sized segments: no
 * reassembly buffers, no fragmenting. */
#define IP_REASSEMBLY 0
#define IP_FRAG 0
#define LWIP_IPV6_REASS 0
#define LWIP_IPV6_FRAG 0

/* One listen PCB per destination port in use, shared by every accepted
 * connection on it: connections to port 80 of any host keep it bound while a
 * new listener for 80 is made, which lwIP allows only with SO_REUSE. */
#undef SO_REUSE
#define SO_REUSE 1

/* A session is a TCP PCB; a cap above the PCB pool would be a lie. The
 * listen PCBs are the ports listened to at once (src/tun2socks.c). */
#if defined(CONFIG_TUN2SOCKS_MAX_SESSIONS) && MEMP_NUM_TCP_PCB < CONFIG_TUN2SOCKS_MAX_SESSIONS + 16
#undef MEMP_NUM_TCP_PCB
#define MEMP_NUM_TCP_PCB (CONFIG_TUN2SOCKS_MAX_SESSIONS + 16)
#endif
#define TB_T2S_LISTEN_MAX 64
#if MEMP_NUM_TCP_PCB_LISTEN < TB_T2S_LISTEN_MAX + 4
#undef MEMP_NUM_TCP_PCB_LISTEN
#define MEMP_NUM_TCP_PCB_LISTEN (TB_T2S_LISTEN_MAX + 4)
#endif

#endif
