# board/linux: the host, POSIX port with epoll, every module available.
OPT := -O2
DEB_PKGS += gcc make libc-ares-dev libmbedtls-dev zlib1g-dev
