# port/lwip/lwip.mk: lwIP from Debian's source package, built into $(O)/liblwip.a.
# Included by the Makefile after its flags. See kconfig/lwip.kconfig.
#
# The sources are unpacked once into build/third_party/lwip-<version>, shared
# by every board and output directory, by port/lwip/fetch.sh (apt-get source
# with its own deb-src list and apt state under build/third_party/apt; the
# .dsc is pinned by SHA-256). Offline rebuilds reuse the unpacked tree.
# lwIP is compiled with its own relaxed warnings: it is not our code, and
# -Werror must not break on it. Our code includes lwIP's headers as system
# headers for the same reason, and stays -Wall -Wextra -Werror.

LWIP_VERSION := 2.1.3
LWIP_DEB_VERSION := 2.1.3+dfsg1-2
LWIP_DEB_DSC_SHA256 := 8d8f944db8e6d542fc2d6f01559078fb1b5dda71651c67ee5fa3571ed1342c50
LWIP_DEB_SUITE ?= bookworm
LWIP_DEB_MIRROR ?= http://deb.debian.org/debian
LWIP_TOP := build/third_party
LWIP_DIR := $(LWIP_TOP)/lwip-$(LWIP_VERSION)
LWIP_STAMP := $(LWIP_DIR)/.tb-unpacked

# dpkg-source (dpkg-dev) unpacks the source package.
DEB_PKGS += dpkg-dev

# The core: IPv4 and IPv6 (files of a disabled feature compile to nothing),
# Ethernet framing for the tap netif. No sequential/socket API, no apps.
LWIP_CORE := def dns inet_chksum init ip mem memp netif pbuf raw stats sys tcp tcp_in tcp_out \
	timeouts udp ipv4/autoip ipv4/dhcp ipv4/etharp ipv4/icmp ipv4/igmp ipv4/ip4 ipv4/ip4_addr \
	ipv4/ip4_frag ipv6/dhcp6 ipv6/ethip6 ipv6/icmp6 ipv6/inet6 ipv6/ip6 ipv6/ip6_addr \
	ipv6/ip6_frag ipv6/mld6 ipv6/nd6
LWIP_FILES := $(addprefix core/,$(LWIP_CORE)) netif/ethernet

LWIP_INC := -Iport/lwip -isystem $(LWIP_DIR)/src/include
LWIP_CPPFLAGS := -Iport/lwip -I$(LWIP_DIR)/src/include -I$(O)/include -Iinclude -D_GNU_SOURCE $(BOARD_CPPFLAGS)
# -Wall without the extras we hold ourselves to, never -Werror (WERROR=1, CI).
LWIP_WARN := -Wall -Wno-address -Wno-unused-but-set-variable -Wno-error
LWIP_CFLAGS := -std=gnu11 $(OPT) $(SANFLAGS) -ffunction-sections -fdata-sections -MMD -MP \
	$(BOARD_CFLAGS) $(EXTRA_CFLAGS) $(LWIP_WARN)
LWIP_FUZZ_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wno-tautological-constant-out-of-range-compare \
	-MMD -MP $(EXTRA_CFLAGS) $(LWIP_WARN) -fsanitize=fuzzer-no-link,$(FUZZ_SAN)

ifeq ($(CONFIG_LWIP),y)
  LWIP_LIB := $(O)/liblwip.a
  LWIP_FUZZ_LIB := $(O)/fuzz/liblwip.a
  LWIP_ORDER := $(LWIP_STAMP)
  CPPFLAGS += $(LWIP_INC)
  LWIP_TEST_CPPFLAGS := -DTB_LWIP_DIR='"$(CURDIR)/$(LWIP_DIR)"' -DTB_LWIP_CC='"$(CC)"' \
	-DTB_GEN_CONFIG='"$(abspath $(GEN))/config.h"'
else
  LWIP_LIB :=
  LWIP_FUZZ_LIB :=
  LWIP_ORDER :=
  LWIP_TEST_CPPFLAGS :=
  # Tests of lwIP code, skipped with a note when it is configured out.
  TESTS_OFF += tests/unit/test_lwipopts.c
endif
ifneq ($(CONFIG_PORT_LWIP),y)
  TESTS_OFF += tests/unit/test_lwip_netif.c tests/fuzz/fuzz_lwip_netif.c
else
  # These drive the POSIX port over the kernel's loopback, which a process
  # on lwIP does not have; their stream logic is tested on the linux board.
  TESTS_OFF += tests/unit/test_port.c tests/unit/test_tls.c tests/unit/test_ws.c
endif

LWIP_OBJS := $(patsubst %,$(O)/obj/lwip/%.o,$(LWIP_FILES))
LWIP_FUZZ_OBJS := $(patsubst %,$(O)/fuzz/lwip/%.o,$(LWIP_FILES))

$(LWIP_STAMP):
	$(Q)port/lwip/fetch.sh $(LWIP_DIR) $(LWIP_TOP) $(LWIP_DEB_VERSION) $(LWIP_DEB_SUITE) \
	  $(LWIP_DEB_MIRROR) $(LWIP_DEB_DSC_SHA256)

# The sources exist only after the fetch: a static pattern with the stamp as
# an order-only prerequisite; -MMD then tracks each .c and its headers.
$(LWIP_OBJS): $(O)/obj/lwip/%.o: $(GEN)/config.h $(O)/.flags | $(LWIP_STAMP) $(SYSROOT_STAMP)
	@mkdir -p $(dir $@)
	$(call say,CC,lwip/$*.c)
	$(Q)$(CC) $(LWIP_CPPFLAGS) $(LWIP_CFLAGS) -c $(LWIP_DIR)/src/$*.c -o $@

# A .d names the lwIP sources; should build/third_party go away, they come back.
$(LWIP_DIR)/src/%: | $(LWIP_STAMP) ;

$(O)/liblwip.a: $(LWIP_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LWIP_FUZZ_OBJS): $(O)/fuzz/lwip/%.o: $(GEN)/config.h $(O)/.flags | $(LWIP_STAMP)
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,lwip/$*.c)
	$(Q)$(FUZZ_CC) $(LWIP_CPPFLAGS) $(LWIP_FUZZ_CFLAGS) -c $(LWIP_DIR)/src/$*.c -o $@

$(O)/fuzz/liblwip.a: $(LWIP_FUZZ_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Fetch (or check) the sources without building: `make lwip-src`.
lwip-src: $(LWIP_STAMP)
.PHONY: lwip-src

-include $(LWIP_OBJS:.o=.d) $(LWIP_FUZZ_OBJS:.o=.d)
