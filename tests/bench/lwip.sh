#!/usr/bin/env bash
# tests/bench/lwip.sh: the lwIP board's row of `make bench` (run.sh calls it).
#
# Single-flow download through SOCKS5 -> direct, on one bridge in network
# namespaces made here: curl in a client namespace, an HTTP server in a
# server namespace, and the gateway either the POSIX build ($TB, on a veth)
# or the linux-lwip build (built into $O/lwip-bench, on a tap). Same path,
# same run, at MTU 1500 and then at LWIP_JUMBO (9000) on every link of the
# path (bridge, veths, tap, and the lwIP netif's `mtu` key), the same for
# both gateways; prints "lwip posix_MBps=X lwip_MBps=Y posix_jumbo_MBps=X
# lwip_jumbo_MBps=Y" (medians of LWIP_REPS; LWIP_JUMBO=0 skips that row).
# Needs root, /dev/net/tun and `ip netns`; exits 77 without them. Every
# namespace and process is removed on exit; every step is bounded.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
O=${O:-$REPO/build}
case $O in /*) ;; *) O=$REPO/$O ;; esac
TB=${TB:-$O/tunnelbox}
REPS=${LWIP_REPS:-3}
SIZE=${LWIP_SIZE:-200M}
JUMBO=${LWIP_JUMBO:-9000}
LB=$O/lwip-bench
W=$(mktemp -d /tmp/tb-lwbench.XXXXXX)
S=$$
NS=(tlb-br-$S tlb-cl-$S tlb-sv-$S tlb-px-$S)
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! ip netns add "${NS[0]}" 2>/dev/null; then
	echo "lwip: needs root, /dev/net/tun and network namespaces" >&2
	exit 77
fi
if "$TB" --version 2>/dev/null | grep -q lwip; then
	echo "lwip: $TB is an lwIP build; the baseline needs the POSIX port (run make bench on the linux board)" >&2
	exit 77
fi
echo "lwip: building board/linux-lwip into $LB" >&2
# A .config older than the board's defconfig would keep yesterday's options.
[ "$REPO/board/linux-lwip/defconfig" -nt "$LB/.config" ] && rm -f "$LB/.config"
(cd "$REPO" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	timeout 300 make -j"$(nproc)" BOARD=linux-lwip O="$LB" all) >"$W/build.log" 2>&1 || {
	echo "lwip: the linux-lwip build failed: $(tail -n 1 "$W/build.log")" >&2
	exit 1
}
LTB=$LB/tunnelbox

for n in "${NS[@]:1}"; do ip netns add "$n"; done
br() { ip netns exec "${NS[0]}" "$@"; }
br ip link add br0 type bridge
br ip link set br0 up
# Client .1, server .3, POSIX gateway .4 on veths; the lwIP gateway (.2, a
# userspace stack: the namespace only scopes the device's name) on a tap.
i=0
for pair in "${NS[1]} 10.79.0.1" "${NS[2]} 10.79.0.3" "${NS[3]} 10.79.0.4"; do
	set -- $pair
	i=$((i + 1))
	ip link add "tlb$i-$S" type veth peer name eth0 netns "$1"
	ip link set "tlb$i-$S" netns "${NS[0]}"
	br ip link set "tlb$i-$S" master br0 up
	ip netns exec "$1" ip addr add "$2/24" dev eth0
	ip netns exec "$1" ip link set eth0 up
	ip netns exec "$1" ip link set lo up
done
br ip tuntap add dev tb0 mode tap
br ip link set tb0 master br0 up

mkdir -p "$W/www"
head -c "$SIZE" /dev/zero >"$W/www/blob"
(cd "$W/www" && exec ip netns exec "${NS[2]}" /usr/bin/python3 -m http.server --bind 10.79.0.3 8080 >/dev/null 2>&1) &
PIDS+=("$!")

cat >"$W/posix.toml" <<EOF
[[listener]]
name = "lan"
proto = "socks5"
endpoint = "10.79.0.4:1080"
router = "main"
[[connector]]
name = "direct"
proto = "direct"
[[router]]
name = "main"
default = "direct"
EOF
ip netns exec "${NS[3]}" "$TB" -c "$W/posix.toml" >"$W/posix.log" 2>&1 &
PIDS+=("$!")
sed -e 's/10.79.0.4/10.79.0.2/' "$W/posix.toml" >"$W/lwip.toml"
cat >>"$W/lwip.toml" <<EOF
[port.lwip]
netif = "tap"
device = "tb0"
address = "10.79.0.2"
EOF

cl() { ip netns exec "${NS[1]}" "$@"; }
start_lwip() { # start_lwip MTU: the lwIP gateway (again) with that netif MTU
	[ -n "${LPID:-}" ] && { kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null; }
	{ cat "$W/lwip.toml"; echo "mtu = $1"; } >"$W/lwip-$1.toml"
	ip netns exec "${NS[0]}" "$LTB" -c "$W/lwip-$1.toml" >"$W/lwip.log" 2>&1 &
	LPID=$!
	PIDS+=("$LPID")
}
set_mtu() { # set_mtu MTU: every link of the path
	local i
	br ip link set tb0 mtu "$1"
	for i in 1 2 3; do
		br ip link set "tlb$i-$S" mtu "$1"
		ip netns exec "${NS[$i]}" ip link set eth0 mtu "$1"
	done
	br ip link set br0 mtu "$1"
}
start_lwip 1500
ready() { # ready HOST: a SOCKS5 fetch of a small page works
	local i
	for i in $(seq 1 100); do
		cl curl -s --max-time 2 -o /dev/null --socks5 "$1:1080" http://10.79.0.3:8080/ && return 0
		sleep 0.1
	done
	return 1
}
ready_both() {
	ready 10.79.0.4 || { echo "lwip: the POSIX gateway does not serve" >&2; exit 1; }
	ready 10.79.0.2 || { echo "lwip: the lwIP gateway does not serve: $(tail -n 2 "$W/lwip.log")" >&2; exit 1; }
}
ready_both

speed() { # speed HOST: MB/s of one download of the blob
	cl curl -s --max-time 60 -o /dev/null -w '%{speed_download}' --socks5 "$1:1080" http://10.79.0.3:8080/blob |
		awk '{printf "%.1f", $1 / 1e6}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
rows() { # rows LABEL: REPS alternating downloads; sets px and lw
	local _
	px="" lw=""
	for _ in $(seq 1 "$REPS"); do
		px="$px $(speed 10.79.0.4)"
		lw="$lw $(speed 10.79.0.2)"
	done
	echo "lwip: $1: POSIX runs:$px MB/s; lwIP runs:$lw MB/s" >&2
}
rows "MTU 1500"
out="lwip posix_MBps=$(echo "$px" | median) lwip_MBps=$(echo "$lw" | median)"
if [ "$JUMBO" != 0 ]; then
	set_mtu "$JUMBO"
	start_lwip "$JUMBO"
	ready_both
	rows "MTU $JUMBO"
	out="$out posix_jumbo_MBps=$(echo "$px" | median) lwip_jumbo_MBps=$(echo "$lw" | median)"
fi
echo "$out"
