# board/tiny: SOCKS5 + direct + router only, -Os, no TLS, no zlib.
OPT := -Os
# Flash is what a small router lacks: no unwind tables (.eh_frame; C needs
# them only for backtraces without debug info), no page-aligned padding
# between segments, no build-id note. Measured on x86_64: -16 KB stripped.
BOARD_CFLAGS += -fno-asynchronous-unwind-tables -fno-unwind-tables
BOARD_LDFLAGS += -Wl,-z,noseparate-code -Wl,--build-id=none -Wl,-O1
DEB_PKGS += gcc make libc-ares-dev
