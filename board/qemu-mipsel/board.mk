# board/qemu-mipsel: little-endian MIPS32r2 (the common router SoC), Debian's
# cross gcc, -Os as on a router; unit tests run under qemu-user.
TRIPLET := mipsel-linux-gnu
QEMU_ARCH := mipsel
SYSROOT_ARCH := mipsel
SYSROOT_PKGS := libc-ares2 libc-ares-dev libcmocka0 libcmocka-dev \
	libmbedtls14 libmbedcrypto7 libmbedx509-1 libmbedtls-dev zlib1g zlib1g-dev
OPT := -Os
include board/cross.mk
