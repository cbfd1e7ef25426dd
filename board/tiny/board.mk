# board/tiny: SOCKS5 + direct + router only, -Os, no TLS, no zlib.
OPT := -Os
DEB_PKGS += gcc make libc-ares-dev
