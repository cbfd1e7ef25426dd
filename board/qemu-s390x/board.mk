# board/qemu-s390x: big-endian 64-bit (IBM Z), Debian's cross gcc; unit tests
# run under qemu-user. The board that proves the byte-order helpers.
TRIPLET := s390x-linux-gnu
QEMU_ARCH := s390x
SYSROOT_ARCH := s390x
SYSROOT_PKGS := libc-ares2 libc-ares-dev libcmocka0 libcmocka-dev \
	libmbedtls14 libmbedcrypto7 libmbedx509-1 libmbedtls-dev zlib1g zlib1g-dev
OPT := -O2
include board/cross.mk
