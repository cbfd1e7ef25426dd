# board/linux-lwip: the whole gateway on lwIP over a tap (or tun) device, on
# Linux. The firmware build a router without a kernel TCP/IP stack would run,
# exercised on the host: one binary, lwIP its only network stack.
OPT := -O2
# iproute2 (netns, bridge, tuntap) and ping for the namespace test.
DEB_PKGS += gcc make libmbedtls-dev zlib1g-dev dpkg-dev iproute2 iputils-ping
# Integration: the namespace test of this board (the other scripts drive
# listeners on 127.0.0.1, which a process on lwIP does not have).
INTEG_TESTS := lwip
