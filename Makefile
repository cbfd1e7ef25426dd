# tunnelbox: hand-written GNU Makefile, out of tree into $(O). `make help` lists the targets.
#
# The board comes from BOARD= on the command line (output then defaults to
# build/<board>), else from CONFIG_BOARD in $(O)/.config, else "linux".
# A missing .config is made from board/<board>/defconfig; a hand-edited
# .config is normalised by olddefconfig on the next make, which regenerates
# config.h and rebuilds what depends on it.

.DEFAULT_GOAL := all
SHELL := /bin/bash
MAKEFLAGS += -r --no-print-directory
PY := /usr/bin/python3
comma := ,
VERSION := 0.1.0

ifeq ($(V),1)
  Q :=
  say = @:
else
  Q := @
  say = @printf '  %-8s %s\n' $(1) $(2);
endif

# ---- goal classes ----
# Config goals work on .config and must not read it first; wrapped goals run
# `make deps` first and then do their work in a sub-make (so that a fresh
# machine gets kconfiglib and the libraries before anything is configured).
CONFIG_GOALS := menuconfig olddefconfig savedefconfig %_defconfig
NOCONFIG_GOALS := $(CONFIG_GOALS) deps sysroot clean distclean help randconfig-test
WRAPPED_GOALS := test test-unit test-integration run fuzz fuzz-smoke bench

ifneq ($(and $(filter $(NOCONFIG_GOALS) $(WRAPPED_GOALS),$(MAKECMDGOALS)),$(word 2,$(MAKECMDGOALS))),)
# Several goals, some of them special (`make clean all`, `make tiny_defconfig size`):
# run them one after the other, each in its own make.
$(MAKECMDGOALS): __sequential
	@:
__sequential:
	$(Q)set -e; for g in $(MAKECMDGOALS); do $(MAKE) $$g; done
.PHONY: $(MAKECMDGOALS) __sequential
else

# ---- board and output directory ----
ifeq ($(origin BOARD),command line)
  O ?= build/$(BOARD)$(if $(filter 1,$(SAN)),-san)
else
  O ?= build$(if $(filter 1,$(SAN)),/san)
endif
DOTCONFIG := $(O)/.config
CONFIGURED_BOARD := $(shell sed -n 's/^CONFIG_BOARD="\(.*\)"/\1/p' $(DOTCONFIG) 2>/dev/null)
ifneq ($(origin BOARD),command line)
  BOARD := $(or $(CONFIGURED_BOARD),linux)
else ifneq ($(filter-out $(BOARD),$(CONFIGURED_BOARD)),)
  ifeq ($(filter $(CONFIG_GOALS),$(MAKECMDGOALS)),)
    $(warning $(O)/.config is for board '$(CONFIGURED_BOARD)', not '$(BOARD)': run `make O=$(O) $(BOARD)_defconfig` or pick another O=)
  endif
endif
ifeq ($(wildcard board/$(BOARD)/board.mk),)
  $(error unknown board '$(BOARD)': see board/)
endif

# Board defaults, overridden by board.mk. A cross board sets SYSROOT_ARCH and
# SYSROOT_PKGS: those Debian packages are unpacked into $(SYSROOT).
CROSS_COMPILE :=
OPT := -O2
BOARD_CPPFLAGS :=
BOARD_CFLAGS :=
BOARD_LDFLAGS :=
BOARD_LDLIBS :=
QEMU :=
INTEG_TESTS :=
DEB_PKGS :=
SYSROOT := $(abspath $(O))/sysroot
SYSROOT_ARCH :=
SYSROOT_PKGS :=
include board/$(BOARD)/board.mk
CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
STRIP := $(CROSS_COMPILE)strip
SIZE := $(CROSS_COMPILE)size
SYSROOT_STAMP := $(if $(SYSROOT_ARCH),$(SYSROOT)/.tb-sysroot)

# ---- Kconfig ----
KCONFIG := kconfig/Kconfig
KCONFIG_FILES := $(KCONFIG) $(wildcard kconfig/*.kconfig)
GEN := $(O)/include/generated
AUTOCONF := $(O)/include/config/auto.conf
KCONF_ENV := KCONFIG_CONFIG=$(DOTCONFIG) srctree=$(CURDIR)

$(DOTCONFIG):
	@mkdir -p $(O)
	@echo "  CONFIG   $(O)/.config from board/$(BOARD)/defconfig"
	$(Q)cp board/$(BOARD)/defconfig $@
	$(Q)$(KCONF_ENV) $(PY) -m olddefconfig $(KCONFIG) >/dev/null

# olddefconfig rewrites .config, so both outputs are touched afterwards to
# stay newer than it; genconfig.py itself leaves unchanged files alone.
$(GEN)/config.h $(AUTOCONF) &: $(DOTCONFIG) $(KCONFIG_FILES) kconfig/genconfig.py
	@mkdir -p $(GEN) $(dir $(AUTOCONF))
	$(call say,GEN,$(GEN)/config.h)
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
	$(Q)$(KCONF_ENV) $(PY) -m savedefconfig --kconfig $(KCONFIG) --out $(O)/defconfig >/dev/null
	@echo "  wrote $(O)/defconfig (copy it to board/$(BOARD)/defconfig to keep it)"

ifeq ($(filter $(NOCONFIG_GOALS) $(WRAPPED_GOALS),$(MAKECMDGOALS)),)
  -include $(AUTOCONF)
endif

# ---- sources, chosen by Kconfig ----
# A new module: `SRCS-$(CONFIG_X) += src/x.c` and, if it links a library,
# `LIBS-$(CONFIG_X) += -lfoo`; then add the library's Debian -dev package to
# DEB_PKGS in board/linux/board.mk and its runtime and -dev packages to
# SYSROOT_PKGS of the cross boards (board/qemu-*/board.mk). Its unit test
# tests/unit/test_x.c and fuzz targets tests/fuzz/fuzz_*.c are found by name.
SRCS-y := src/base.c src/addr.c src/buf.c src/log.c src/loop.c src/conf.c \
	src/relay.c src/router.c src/connector.c src/gateway.c
SRCS-$(CONFIG_GW_SOCKS5) += src/socks5.c
SRCS-$(CONFIG_GW_HTTP) += src/http.c
SRCS-$(CONFIG_CONN_UPSTREAM) += src/upstream.c
SRCS-$(CONFIG_TLS) += src/tls.c
SRCS-$(CONFIG_WS) += src/ws.c
SRCS-$(CONFIG_LINKSOCKS) += src/linksocks_msg.c src/linksocks.c src/linksocks_server.c src/linksocks_client.c src/linksocks_cli.c
SRCS-$(CONFIG_PORT_POSIX) += port/posix/sys.c port/posix/tcp.c port/posix/udp.c
SRCS-$(CONFIG_LOOP_EPOLL) += port/posix/poll_epoll.c
SRCS-$(CONFIG_LOOP_POLL) += port/posix/poll_poll.c
SRCS-$(CONFIG_DNS_CARES) += port/posix/dns_cares.c
SRCS-$(if $(CONFIG_DNS_CARES),,$(CONFIG_PORT_POSIX)) += port/posix/dns_none.c
SRCS-$(CONFIG_TUN) += port/posix/tun.c
SRCS-$(CONFIG_LWIP) += port/lwip/lwip.c port/lwip/sys_arch.c
SRCS-$(CONFIG_PORT_LWIP) += port/posix/sys.c port/lwip/tcp.c port/lwip/udp.c port/lwip/dns.c port/lwip/netif.c
SRCS-$(CONFIG_TUN2SOCKS) += src/tun2socks.c
# Sources that may be missing without stopping the link (nothing calls them
# until they are written); other missing sources build the library only.
SRCS_PENDING := src/tun2socks.c
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
CPPFLAGS := -Iinclude -I$(O)/include -D_GNU_SOURCE -DTB_VERSION='"$(VERSION)"' $(BOARD_CPPFLAGS)
CFLAGS := -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -ffunction-sections -fdata-sections \
	-MMD -MP $(BOARD_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(SANFLAGS) -Wl,--gc-sections -Wl,--as-needed $(BOARD_LDFLAGS) $(EXTRA_LDFLAGS)
LDLIBS := $(LIBS-y) $(BOARD_LDLIBS)
# libFuzzer builds (host boards): clang, the sanitizers, codec-only sources.
FUZZ_CC := clang
FUZZ_SAN := address,undefined
FUZZ_CFLAGS := -std=gnu11 -O1 -g $(WARN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-DTB_FUZZ_CODEC_ONLY -MMD -MP $(EXTRA_CFLAGS)

# lwIP (Debian's source package) into $(O)/liblwip.a when CONFIG_LWIP; adds
# its headers to CPPFLAGS. TESTS_OFF: unit/fuzz sources whose code is configured out.
TESTS_OFF :=
include port/lwip/lwip.mk

# Bootstrap aid while modules land: missing sources are skipped with a note.
# Every module the Makefile knows, configured in (SRCS-y) or out (SRCS-).
SRCS_KNOWN := $(SRCS-y) $(SRCS-) $(SRCS-n)
SRCS_MISSING := $(filter-out $(wildcard $(SRCS-y)),$(SRCS-y))
ifneq ($(SRCS_MISSING),)
  ifeq ($(filter $(NOCONFIG_GOALS) $(WRAPPED_GOALS),$(MAKECMDGOALS)),)
    $(info note: not yet written: $(SRCS_MISSING))
  endif
  SRCS-y := $(filter-out $(SRCS_MISSING),$(SRCS-y))
endif
OBJS := $(patsubst %.c,$(O)/obj/%.o,$(SRCS-y))
MAIN_OBJ := $(O)/obj/src/main.o
LIB := $(O)/libtb.a
BIN := $(O)/tunnelbox
# While sources are missing the binary cannot link: build the library only.
BIN_IF_WRITTEN := $(if $(filter-out $(SRCS_PENDING),$(SRCS_MISSING)),,$(if $(wildcard src/main.c),$(BIN)))

# Flags are part of what an object is made from: $(O)/.flags holds the last
# command line and changes (so everything rebuilds) when board.mk, OPT, SAN,
# EXTRA_CFLAGS or the libraries change. Only where .config has been read.
FLAGS_FILE := $(O)/.flags
ifeq ($(filter $(NOCONFIG_GOALS) $(WRAPPED_GOALS),$(MAKECMDGOALS)),)
  FLAGS_SIG := $(CC) $(CPPFLAGS) $(CFLAGS) | $(LDFLAGS) $(LDLIBS) | $(FUZZ_CC) $(FUZZ_CFLAGS)
  ifneq ($(wildcard $(AUTOCONF)),)
    ifneq ($(file < $(FLAGS_FILE)),$(FLAGS_SIG))
      $(shell mkdir -p $(O))
      $(file > $(FLAGS_FILE),$(FLAGS_SIG))
    endif
  endif
endif
$(FLAGS_FILE):

$(O)/obj/%.o: %.c $(GEN)/config.h $(FLAGS_FILE) | $(SYSROOT_STAMP) $(LWIP_ORDER)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# lwIP calls back into our glue (sys_now, diagnostics): one group, either order.
TB_LIBS := $(if $(LWIP_LIB),-Wl$(comma)--start-group $(LIB) $(LWIP_LIB) -Wl$(comma)--end-group,$(LIB))

$(BIN): $(MAIN_OBJ) $(LIB) $(LWIP_LIB) $(FLAGS_FILE)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(TB_LIBS) $(LDLIBS)

all: $(LIB) $(LWIP_LIB) $(BIN_IF_WRITTEN)
lib: $(LIB) $(LWIP_LIB)

ifneq ($(SYSROOT_STAMP),)
$(SYSROOT_STAMP): board/$(BOARD)/board.mk board/mksysroot.sh
	$(Q)board/mksysroot.sh $(SYSROOT_ARCH) $(SYSROOT) $(SYSROOT_PKGS)
endif

sysroot: $(SYSROOT_STAMP)

# ---- unit tests ----
# tests/unit/test_<m>.c is built when module <m> (src/<m>.c or
# port/posix/<m>.c) is configured in and written; a test named after no
# module (test_port.c) always is.
UNIT_ALL := $(wildcard tests/unit/test_*.c)
module_of = $(filter src/$(1).c port/posix/$(1).c port/lwip/$(1).c,$(SRCS_KNOWN))
module_in = $(if $(call module_of,$(1)),$(filter $(call module_of,$(1)),$(SRCS-y)),yes)
UNIT_SRCS := $(foreach t,$(filter-out $(TESTS_OFF),$(UNIT_ALL)),$(if $(call module_in,$(patsubst tests/unit/test_%.c,%,$(t))),$(t)))
UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRCS))
# Paths for test fixtures. Build paths from TB_UNIT_DIR or TB_SRCDIR, not
# from "TB_VECTORS/..": git keeps no empty folder, so a fresh clone may lack one.
TEST_CPPFLAGS := $(CPPFLAGS) -DTB_SRCDIR='"$(CURDIR)"' -DTB_VECTORS='"$(CURDIR)/tests/vectors"' \
	-DTB_UNIT_DIR='"$(CURDIR)/tests/unit"' $(LWIP_TEST_CPPFLAGS)

$(O)/tests/%: tests/unit/%.c $(LIB) $(LWIP_LIB) $(GEN)/config.h $(FLAGS_FILE) | $(SYSROOT_STAMP)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(TEST_CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TB_LIBS) $(LDLIBS) -lcmocka

test-build: $(BIN_IF_WRITTEN) $(UNIT_BINS)

# Sanitizer reports from tests go to files that the runner collects.
ifeq ($(SAN),1)
  export ASAN_OPTIONS ?= detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
endif
RUN_TESTS := O=$(abspath $(O)) TB=$(abspath $(BIN)) QEMU="$(QEMU)" INTEG_TESTS="$(INTEG_TESTS)" tests/run-tests.sh

# ---- wrapped goals: deps first, then the work in a sub-make ----
$(WRAPPED_GOALS): deps
	$(Q)$(MAKE) O=$(O) _$@

_test-unit: test-build
	$(Q)$(RUN_TESTS) unit $(UNIT_BINS)

_test-integration: $(BIN)
ifneq ($(QEMU),)
	@echo "integration tests run on host boards only (this board runs under $(firstword $(QEMU)))"
else
	$(Q)$(RUN_TESTS) integration
endif

_test: test-build
ifneq ($(QEMU),)
	@echo "note: $(BOARD) runs unit tests only (under $(firstword $(QEMU)))"
	$(Q)$(RUN_TESTS) unit $(UNIT_BINS)
else
	$(Q)$(RUN_TESTS) all $(UNIT_BINS)
endif

_run: $(BIN)
	$(Q)exec $(QEMU) $(BIN) $(RUN_ARGS)

_bench: $(BIN)
	$(Q)if [ -f tests/bench/run.sh ]; then \
	  O=$(abspath $(O)) TB=$(abspath $(BIN)) bash tests/bench/run.sh; \
	else echo "tests/bench/run.sh not written yet: nothing to benchmark"; fi

# ---- fuzzing (host boards): libFuzzer targets tests/fuzz/fuzz_<name>.c ----
# The library is rebuilt with clang and the sanitizers into $(O)/fuzz/lib;
# the linker takes from it only what each target needs.
# tests/fuzz/fuzz_<m>.c is skipped (with a note) only when module <m> is
# configured out; a module not yet written makes its target fail to link.
FUZZ_ALL := $(wildcard tests/fuzz/fuzz_*.c)
fuzz_wanted = $(or $(call module_in,$(1)),$(filter $(call module_of,$(1)),$(SRCS_MISSING)))
FUZZ_SRCS := $(foreach t,$(filter-out $(TESTS_OFF),$(FUZZ_ALL)),$(if $(call fuzz_wanted,$(patsubst tests/fuzz/fuzz_%.c,%,$(t))),$(t)))
FUZZ_OFF := $(patsubst tests/fuzz/%.c,%,$(filter-out $(FUZZ_SRCS),$(FUZZ_ALL)))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(O)/fuzz/%,$(FUZZ_SRCS))
FUZZ_OBJS := $(patsubst %.c,$(O)/fuzz/lib/%.o,$(SRCS-y))
FUZZ_LIB := $(O)/fuzz/lib/libtb.a
FUZZ_SECONDS ?= 5

$(O)/fuzz/lib/%.o: %.c $(GEN)/config.h $(FLAGS_FILE) | $(LWIP_ORDER)
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) $(LWIP_FUZZ_LIB) $(GEN)/config.h
	$(call say,FUZZLD,$@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $< \
	  $(if $(LWIP_FUZZ_LIB),-Wl$(comma)--start-group $(FUZZ_LIB) $(LWIP_FUZZ_LIB) -Wl$(comma)--end-group,$(FUZZ_LIB)) $(LDLIBS)

# Every target is tried; those that fail to compile or link are named at the end.
FUZZ_OFF_NOTE := $(if $(FUZZ_OFF),echo "note: not fuzzed (module configured out): $(FUZZ_OFF)";)

_fuzz: $(FUZZ_LIB)
ifneq ($(CROSS_COMPILE),)
	$(error fuzzing runs on host boards only)
endif
	$(Q)$(FUZZ_OFF_NOTE) bad=; for b in $(FUZZ_BINS); do \
	  $(MAKE) O=$(O) $$b || bad="$$bad $${b##*/}"; \
	done; \
	if [ -z "$(FUZZ_BINS)" ]; then echo "no fuzz targets in tests/fuzz/"; fi; \
	if [ -n "$$bad" ]; then echo "fuzz: these targets did not build (a module missing?):$$bad"; exit 1; fi

# Targets that did not build count as failures; the others still run.
_fuzz-smoke: $(FUZZ_LIB)
	$(Q)$(FUZZ_OFF_NOTE) bad=; for b in $(FUZZ_BINS); do \
	  $(MAKE) O=$(O) $$b || bad="$$bad $${b##*/}"; \
	done; \
	O=$(abspath $(O)) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_NOT_BUILT="$$bad" \
	  tests/fuzz-smoke.sh $$(for b in $(FUZZ_BINS); do [ -x $$b ] && echo $$b; done)

# ---- Kconfig random-config matrix ----
# Every random configuration must build, except one that lwipopts.h refuses
# with its own #error: Kconfig ranges cannot state lwIP's arithmetic (a
# window of two segments, pools that hold a window), so that refusal is the
# designed answer and is reported as such; any other error fails.
RANDCONFIG_N ?= 5
RANDCONFIG_SEED ?= $(shell date +%s)
RANDCONFIG_O := build/randconfig
randconfig-test: deps
	$(Q)bad=; for i in $$(seq 1 $(RANDCONFIG_N)); do \
	  seed=$$(( $(RANDCONFIG_SEED) + i )); d=$(RANDCONFIG_O)/$$i; mkdir -p $$d; \
	  $(PY) kconfig/randconfig.py --seed $$seed --base board/linux/defconfig --makefile Makefile \
	    $(KCONFIG) $$d/.config || exit 1; \
	  if $(MAKE) O=$$d all >$$d/build.log 2>&1; then \
	    echo "  ok      randconfig seed $$seed$$(sed -n 's/^note: not yet written: \(.*\)/ (not linked: \1 missing)/p' $$d/build.log)"; \
	  elif errs=$$(grep -E ': error: |undefined reference' $$d/build.log | sort -u) && [ -n "$$errs" ] && \
	       ! echo "$$errs" | grep -qv 'port/lwip/lwipopts.h:[0-9]*:[0-9]*: error: #error'; then \
	    echo "  ok      randconfig seed $$seed (refused as designed by lwipopts.h: $$(echo "$$errs" | head -1 | sed 's/.*#error //'))"; \
	  else echo "  FAIL    randconfig seed $$seed (reproduce: make randconfig-test RANDCONFIG_N=1 RANDCONFIG_SEED=$$((seed - 1)))"; \
	    grep -E 'error|warning|undefined reference' $$d/build.log | sed 's/^.*: in function/in function/' | \
	      sort -u | head -20 | sed 's/^/    | /'; bad="$$bad $$seed"; fi; \
	done; \
	[ -z "$$bad" ] || { echo "randconfig: failing seeds:$$bad"; exit 1; }

# ---- size ----
size: all
	$(Q)$(SIZE) -t $(OBJS) $(wildcard $(MAIN_OBJ)) | sed 's|$(O)/obj/||; s|(TOTALS)|total (objects)|'
	$(Q)if [ -f $(BIN) ]; then $(STRIP) -o $(BIN).stripped $(BIN) && \
	  $(SIZE) $(BIN).stripped | sed 1d | sed 's|$(O)/||; s/$$/  (linked)/' && \
	  printf 'stripped %s: %d bytes\n' $(BIN) $$(stat -c %s $(BIN).stripped); fi

# ---- Debian packages this board needs ----
# Build, test and fuzz tools for every board; board.mk adds its own.
DEB_PKGS += make gcc libc6-dev python3 python3-kconfiglib libcmocka-dev \
	curl socat iproute2 procps clang libclang-rt-14-dev openssl python3-websockets
deps:
	$(Q)installed=" $$(dpkg-query -W -f='$${db:Status-Abbrev}$${Package} ' $(DEB_PKGS) 2>/dev/null)"; \
	missing=; for p in $(sort $(DEB_PKGS)); do \
	  case "$$installed" in *" ii $$p "*) ;; *) missing="$$missing $$p" ;; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages; run:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	  echo "  DEPS    $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; log=$$(mktemp); \
	  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends$$missing; } >$$log 2>&1; then \
	    cat $$log; rm -f $$log; echo "apt-get install$$missing failed"; exit 1; \
	  fi; rm -f $$log; \
	fi
ifneq ($(SYSROOT_ARCH),)
	$(Q)board/mksysroot.sh $(SYSROOT_ARCH) $(SYSROOT) $(SYSROOT_PKGS)
endif

# ---- housekeeping ----
clean:
	rm -rf $(O)/obj $(O)/tests $(O)/fuzz $(O)/test-logs $(O)/libtb.a $(O)/liblwip.a $(BIN) $(BIN).stripped

distclean:
	rm -rf build

define HELP
Build (output in O=$(O), board $(BOARD)):
  make [all]              build $(O)/tunnelbox
  make lib                only the library objects and $(O)/libtb.a
  make size               text/data/bss per object and the stripped binary size
  make run [RUN_ARGS=..]  deps + build + start the gateway (embedded loopback config)
  make clean | distclean  remove this build's outputs | all of build/
Configuration (Kconfig; .config is in $(O)):
  make <board>_defconfig  start from board/<board>/defconfig ($(patsubst board/%/defconfig,%,$(wildcard board/*/defconfig)))
  make menuconfig         edit the configuration; `make olddefconfig` normalises a hand edit
  make savedefconfig      write the minimal $(O)/defconfig
  make randconfig-test    build RANDCONFIG_N (5) random configurations (RANDCONFIG_SEED=...)
Tests (each ends with the line "N passed, N failed"):
  make test               deps, build, unit and integration tests
  make test-unit | test-integration
  make SAN=1 test         the same with ASan+UBSan, into build/san
  make BOARD=qemu-s390x test-unit    big-endian cross build, unit tests under qemu-user
  make fuzz | fuzz-smoke  libFuzzer targets in $(O)/fuzz | run each for FUZZ_SECONDS (5)
  make bench              tests/bench/run.sh (ratios, not gates)
  make deps               install the Debian packages (and cross sysroot) the board needs
Options: BOARD=name O=dir V=1 (full commands) WERROR=1 (also when CI=true) SAN=1
  EXTRA_CFLAGS=.. EXTRA_LDFLAGS=..; test runner: TESTS=word VERBOSE=1 UNIT_TIMEOUT=s INTEG_TIMEOUT=s
endef
export HELP
help:
	@echo "$$HELP"

.PHONY: all lib run test test-build test-unit test-integration size deps sysroot clean distclean help \
	menuconfig olddefconfig savedefconfig fuzz fuzz-smoke bench randconfig-test \
	_test _test-unit _test-integration _run _bench _fuzz _fuzz-smoke

-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BINS:=.d) $(FUZZ_OBJS:.o=.d) $(FUZZ_BINS:=.d)

endif # not sequential
