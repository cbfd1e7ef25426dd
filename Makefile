# tunnelbox: hand-written GNU Makefile, out of tree into $(O).
#
#   make [BOARD=name] [O=dir] [V=1] [SAN=1] [WERROR=1]
#   make <board>_defconfig | menuconfig | olddefconfig | savedefconfig
#   make run | test | test-unit | test-integration | bench | fuzz | fuzz-smoke | size | deps | clean
#
# The board comes from BOARD= on the command line (output then defaults to
# build/<board>), else from CONFIG_BOARD in $(O)/.config, else "linux".
# A missing .config is made from board/<board>/defconfig; a hand-edited
# .config is normalised by olddefconfig on the next make.

.DEFAULT_GOAL := all
SHELL := /bin/bash
PY := /usr/bin/python3
VERSION := 0.1.0

ifeq ($(origin BOARD),command line)
  O ?= build/$(BOARD)
else ifeq ($(SAN),1)
  O ?= build/san
else
  O ?= build
endif
DOTCONFIG := $(O)/.config
ifneq ($(origin BOARD),command line)
  BOARD := $(or $(shell sed -n 's/^CONFIG_BOARD="\(.*\)"/\1/p' $(DOTCONFIG) 2>/dev/null),linux)
endif
ifeq ($(wildcard board/$(BOARD)/board.mk),)
  $(error unknown board '$(BOARD)': see board/)
endif

ifeq ($(V),1)
  Q :=
  say = @:
else
  Q := @
  say = @printf '  %-8s %s\n' $(1) $(2);
endif

# Board defaults, overridden by board.mk.
CROSS_COMPILE :=
OPT := -O2
BOARD_CFLAGS :=
BOARD_LDFLAGS :=
QEMU :=
DEB_PKGS :=
include board/$(BOARD)/board.mk
CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
STRIP := $(CROSS_COMPILE)strip
SIZE := $(CROSS_COMPILE)size

# ---- Kconfig ----
KCONFIG := kconfig/Kconfig
KCONFIG_FILES := $(KCONFIG) $(wildcard kconfig/*.kconfig)
GEN := $(O)/include/generated
AUTOCONF := $(O)/include/config/auto.conf
KCONF_ENV := KCONFIG_CONFIG=$(DOTCONFIG) srctree=$(CURDIR)
CONFIG_GOALS := menuconfig olddefconfig savedefconfig %_defconfig deps clean distclean help

$(DOTCONFIG):
	@mkdir -p $(O)
	@echo "  CONFIG   $(O)/.config from board/$(BOARD)/defconfig"
	$(Q)cp board/$(BOARD)/defconfig $@
	$(Q)$(KCONF_ENV) $(PY) -m olddefconfig $(KCONFIG) >/dev/null

$(GEN)/config.h $(AUTOCONF) &: $(DOTCONFIG) $(KCONFIG_FILES) kconfig/genconfig.py
	@mkdir -p $(GEN) $(dir $(AUTOCONF))
	$(Q)$(KCONF_ENV) $(PY) -m olddefconfig $(KCONFIG) >/dev/null
	$(Q)$(PY) kconfig/genconfig.py $(KCONFIG) $(DOTCONFIG) $(GEN)/config.h $(AUTOCONF)
	@touch $(GEN)/config.h $(AUTOCONF)

%_defconfig:
	@test -f board/$*/defconfig || { echo "no board/$*/defconfig"; exit 1; }
	@mkdir -p $(O)
	$(Q)cp board/$*/defconfig $(DOTCONFIG)
	$(Q)$(KCONF_ENV) $(PY) -m olddefconfig $(KCONFIG)

menuconfig: | $(DOTCONFIG)
	$(Q)$(KCONF_ENV) MENUCONFIG_STYLE=aquatic $(PY) -m menuconfig $(KCONFIG)

olddefconfig: | $(DOTCONFIG)
	$(Q)$(KCONF_ENV) $(PY) -m olddefconfig $(KCONFIG)

savedefconfig: | $(DOTCONFIG)
	$(Q)$(KCONF_ENV) $(PY) -m savedefconfig --kconfig $(KCONFIG) --out $(O)/defconfig
	@echo "  wrote $(O)/defconfig (copy it to board/$(BOARD)/defconfig to keep it)"

ifeq ($(filter $(CONFIG_GOALS),$(MAKECMDGOALS)),)
  -include $(AUTOCONF)
endif

# ---- sources, chosen by Kconfig ----
SRCS-y := src/base.c src/addr.c src/buf.c src/log.c src/loop.c src/conf.c \
	src/relay.c src/router.c src/connector.c src/gateway.c
SRCS-$(CONFIG_GW_SOCKS5) += src/socks5.c
SRCS-$(CONFIG_GW_HTTP) += src/http.c
SRCS-$(CONFIG_PORT_POSIX) += port/posix/sys.c port/posix/tcp.c port/posix/udp.c
SRCS-$(CONFIG_LOOP_EPOLL) += port/posix/poll_epoll.c
SRCS-$(CONFIG_LOOP_POLL) += port/posix/poll_poll.c
SRCS-$(CONFIG_DNS_CARES) += port/posix/dns_cares.c
SRCS-$(CONFIG_TUN) += port/posix/tun.c
LIBS-y :=
LIBS-$(CONFIG_DNS_CARES) += -lcares
LIBS-$(CONFIG_MBEDTLS) += -lmbedtls -lmbedx509 -lmbedcrypto
LIBS-$(CONFIG_ZLIB) += -lz

# ---- flags ----
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
	-Wno-missing-field-initializers
ifneq ($(filter 1 true,$(WERROR) $(CI)),)
  WARN += -Werror
endif
ifeq ($(CONFIG_DEBUG),y)
  OPT := -O0 -g
endif
SANFLAGS :=
ifeq ($(SAN),1)
  SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  OPT := -O1 -g
endif
CPPFLAGS := -Iinclude -I$(GEN)/.. -D_GNU_SOURCE -DTB_VERSION='"$(VERSION)"' $(BOARD_CPPFLAGS)
CFLAGS := -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -ffunction-sections -fdata-sections \
	-MMD -MP $(BOARD_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(SANFLAGS) -Wl,--gc-sections -Wl,--as-needed $(BOARD_LDFLAGS) $(EXTRA_LDFLAGS)
LDLIBS := $(LIBS-y) $(BOARD_LDLIBS)

# Bootstrap aid while modules land: missing sources are skipped with a note.
SRCS_MISSING := $(filter-out $(wildcard $(SRCS-y)),$(SRCS-y))
ifneq ($(SRCS_MISSING),)
  $(info note: not yet written: $(SRCS_MISSING))
  SRCS-y := $(filter-out $(SRCS_MISSING),$(SRCS-y))
endif
OBJS := $(patsubst %.c,$(O)/obj/%.o,$(SRCS-y))
MAIN_OBJ := $(O)/obj/src/main.o
LIB := $(O)/libtb.a
BIN := $(O)/tunnelbox

$(O)/obj/%.o: %.c $(GEN)/config.h
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB) $(LDLIBS)

all: $(BIN)

# ---- unit tests: tests/unit/test_<m>.c is built when src/<m>.c is in ----
UNIT_ALL := $(wildcard tests/unit/test_*.c)
unit_wanted = $(if $(wildcard src/$(1).c),$(filter src/$(1).c,$(SRCS-y)),yes)
UNIT_SRCS := $(foreach t,$(UNIT_ALL),$(if $(call unit_wanted,$(patsubst tests/unit/test_%.c,%,$(t))),$(t)))
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))
TEST_CPPFLAGS := $(CPPFLAGS) -DTB_VECTORS='"$(CURDIR)/tests/vectors"' $(CMOCKA_CPPFLAGS)

$(O)/tests/%: tests/unit/%.c $(LIB) $(GEN)/config.h
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(TEST_CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) $(CMOCKA_LDLIBS) -lcmocka

test-build: $(BIN) $(UNIT_BINS)

test-unit: deps test-build
	$(Q)O=$(O) QEMU="$(QEMU)" tests/run-tests.sh unit $(UNIT_BINS)

test-integration: deps test-build
	$(Q)O=$(O) tests/run-tests.sh integration

test: deps test-build
	$(Q)O=$(O) QEMU="$(QEMU)" tests/run-tests.sh all $(UNIT_BINS)

run: deps $(BIN)
	$(Q)exec $(BIN) $(RUN_ARGS)

size: $(BIN)
	$(Q)$(SIZE) $(OBJS) $(MAIN_OBJ) | sed 's|$(O)/obj/||'
	$(Q)$(STRIP) -o $(BIN).stripped $(BIN) && \
	  printf 'stripped %s: %d bytes\n' $(BIN) $$(stat -c %s $(BIN).stripped)

# ---- Debian packages the board needs ----
DEB_PKGS += python3-kconfiglib libcmocka-dev curl
deps:
	@missing=""; for p in $(sort $(DEB_PKGS)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing packages; run: sudo apt-get install$$missing"; exit 1; fi; \
	  echo "  DEPS    $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || exit 1; \
	fi

clean:
	rm -rf $(O)/obj $(O)/tests $(O)/libtb.a $(BIN) $(BIN).stripped

distclean:
	rm -rf build

help:
	@sed -n '2,10p' Makefile | sed 's/^# \{0,1\}//'

.PHONY: all run test test-build test-unit test-integration size deps clean distclean help \
	menuconfig olddefconfig savedefconfig

-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
