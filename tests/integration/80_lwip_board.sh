#!/bin/bash
# The linux-lwip board end to end: tunnelbox runs on lwIP over a tap device in
# a network namespace of its own, with its own IP address; a client in a
# second namespace reaches its SOCKS5/HTTP listener over a bridge, and its
# direct connector fetches from an HTTP server in a third. Checks ARP and
# ICMP echo (lwIP answers), SOCKS5 and HTTP proxying, a 100 MB transfer by
# SHA-256, a refused port, and the tun netif. Namespaces, devices and
# processes are made here and always removed.
. "$(dirname "$0")/lib/common.sh"

need_config PORT_LWIP
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! ip netns add "tbl-probe-$$" 2>/dev/null; then
	echo "# needs root, /dev/net/tun and network namespaces"
	exit 77
fi
ip netns del "tbl-probe-$$"

S=$$
NS_GW=tbl-gw-$S NS_CL=tbl-cl-$S NS_SRV=tbl-srv-$S
NSS=("$NS_GW" "$NS_CL" "$NS_SRV")
netns_cleanup() {
	cleanup
	for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done
}
trap netns_cleanup EXIT
for n in "${NSS[@]}"; do ip netns add "$n" || { notok "netns $n"; finish; }; done
gw() { ip netns exec "$NS_GW" "$@"; }
cl() { ip netns exec "$NS_CL" "$@"; }
srv() { ip netns exec "$NS_SRV" "$@"; }

# 10.77.0.0/24 on a bridge in the gateway's namespace: the client (.1), the
# server (.3) on veth pairs, lwIP (.2) on the tap tb0 (the kernel side of
# the tap has no address: lwIP owns the .2).
gw ip link add br0 type bridge
gw ip link set br0 up
gw ip tuntap add dev tb0 mode tap
gw ip link set tb0 master br0 up
i=0
for pair in "$NS_CL 10.77.0.1" "$NS_SRV 10.77.0.3"; do
	set -- $pair
	i=$((i + 1))
	ip link add "tbl$i-$S" type veth peer name eth0 netns "$1"
	ip link set "tbl$i-$S" netns "$NS_GW"
	gw ip link set "tbl$i-$S" master br0 up
	ip netns exec "$1" ip addr add "$2/24" dev eth0
	ip netns exec "$1" ip link set eth0 up
	ip netns exec "$1" ip link set lo up
done

mkdir -p "$WORK/www"
printf 'hello from the server namespace\n' >"$WORK/www/page.txt"
head -c 100000000 /dev/urandom >"$WORK/www/big"
want_big=$(sha "$WORK/www/big")
(cd "$WORK/www" && exec ip netns exec "$NS_SRV" $PY -m http.server --bind 10.77.0.3 8080 >/dev/null 2>&1) &
PIDS+=("$!")

cat >"$WORK/lwip.toml" <<EOF
[port.lwip]
netif = "tap"
device = "tb0"
address = "10.77.0.2"
netmask = "255.255.255.0"
gateway = "10.77.0.1"

[[listener]]
name = "lan"
proto = "mixed"
endpoint = "10.77.0.2:1080"
router = "main"

[[connector]]
name = "direct"
proto = "direct"

[[router]]
name = "main"
default = "direct"
EOF
# LinkSocks rides on lwIP too: a server listener on lwIP's address.
if has_config LINKSOCKS; then
	cat >>"$WORK/lwip.toml" <<EOF

[[listener]]
name = "ls"
proto = "linksocks"
endpoint = "10.77.0.2:8765"
router = "main"
tokens = ["lwtok"]
EOF
fi
check "--check accepts [port.lwip] without opening the device" "$TB" --check -c "$WORK/lwip.toml"
sed -e 's/^netmask = .*/&\nmtu = 100/' "$WORK/lwip.toml" >"$WORK/badmtu.toml"
check "--check refuses an mtu below 576" bash -c "! '$TB' --check -c '$WORK/badmtu.toml' 2>/dev/null"
start gw.log ip netns exec "$NS_GW" "$TB" -c "$WORK/lwip.toml"
GW_PID=$LAST_PID

# Until lwIP answers: ARP resolution and ICMP echo through the bridge.
up=0
for _ in $(seq 1 50); do
	if cl ping -c1 -W1 10.77.0.2 >/dev/null 2>&1; then up=1; break; fi
	sleep 0.1
done
if [ "$up" = 1 ]; then ok "lwIP answers ARP and ICMP echo on the tap"; else notok "lwIP answers ARP and ping"; show gw.log; finish; fi
check "ARP: the client learnt lwIP's locally administered MAC (02:74:...)" \
	bash -c "ip netns exec $NS_CL ip neigh show 10.77.0.2 | grep -qi '02:74:0a:4d:00:02'"

for _ in $(seq 1 50); do
	srv $PY -c "import socket; socket.create_connection(('10.77.0.3', 8080), 0.5)" 2>/dev/null && break
	sleep 0.1
done

fetch_page() { # fetch_page OUT curl-args...
	local out=$1
	shift
	cl curl -sS --max-time 20 -o "$out" "$@" && grep -q "hello from the server" "$out"
}
check "SOCKS5 (curl --socks5) through lwIP to the server namespace" \
	fetch_page "$WORK/p1" --socks5 10.77.0.2:1080 http://10.77.0.3:8080/page.txt
check "SOCKS5 with the target as a name-less literal (--socks5-hostname)" \
	fetch_page "$WORK/p2" --socks5-hostname 10.77.0.2:1080 http://10.77.0.3:8080/page.txt
check "HTTP proxy (absolute URI) through lwIP" fetch_page "$WORK/p3" -x http://10.77.0.2:1080 http://10.77.0.3:8080/page.txt
check "HTTP CONNECT through lwIP" fetch_page "$WORK/p4" -p -x http://10.77.0.2:1080 http://10.77.0.3:8080/page.txt

t0=$(date +%s%N)
if cl curl -sS --max-time 120 -o "$WORK/big.out" --socks5 10.77.0.2:1080 http://10.77.0.3:8080/big &&
	[ "$(sha "$WORK/big.out")" = "$want_big" ]; then
	ms=$((($(date +%s%N) - t0) / 1000000))
	ok "100 MB through SOCKS5 on lwIP, SHA-256 intact ($ms ms)"
else
	notok "100 MB through SOCKS5 on lwIP, SHA-256 intact"
	show gw.log
fi
rm -f "$WORK/big.out"

if has_config LINKSOCKS && $PY -c 'import websockets' 2>/dev/null; then
	# a TCP echo server in the server namespace, for the channels
	ip netns exec "$NS_SRV" $PY -c '
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.3", 7007)); s.listen(8); s.settimeout(60)
def echo(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
' >/dev/null 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 1 50); do
		srv $PY -c "import socket; socket.create_connection(('10.77.0.3', 7007), 0.5)" 2>/dev/null && break
		sleep 0.1
	done
	if cl timeout 30 $PY "$HERE/ls_peer.py" client --url ws://10.77.0.2:8765/socket/x --token lwtok \
		--echo-host 10.77.0.3 --echo-port 7007 --closed-port 9 >"$WORK/lspeer.log" 2>&1; then
		ok "linksocks server on lwIP: a python3-websockets client's channels (plain and gzip Data) echo through it"
	else
		notok "linksocks server on lwIP: a python3-websockets client's channels echo through it"
		show lspeer.log gw.log
	fi
fi

refused=$(cl curl -sS --max-time 10 -o /dev/null --socks5 10.77.0.2:1080 http://10.77.0.3:9/ 2>&1)
if echo "$refused" | grep -qiE 'refused|\(5\)'; then ok "a closed port: lwIP's connect gets RST, the client SOCKS5 REP 5"
else notok "a closed port: SOCKS5 REP 5 (curl said: $refused)"; fi
check "the gateway is still running" kill -0 "$GW_PID"
kill "$GW_PID" 2>/dev/null
for _ in $(seq 1 50); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
check "SIGTERM stops the lwIP gateway" bash -c "! kill -0 $GW_PID 2>/dev/null"

# Jumbo frames: mtu = 9000 on every link (lwIP sets its tap to match, its
# MSS follows), the same 100 MB by hash.
for i in 1 2; do gw ip link set "tbl$i-$S" mtu 9000; done
cl ip link set eth0 mtu 9000
srv ip link set eth0 mtu 9000
sed -e 's/^netmask = .*/&\nmtu = 9000/' "$WORK/lwip.toml" >"$WORK/jumbo.toml"
start gwj.log ip netns exec "$NS_GW" "$TB" -c "$WORK/jumbo.toml"
GW_PID=$LAST_PID
for _ in $(seq 1 50); do cl ping -c1 -W1 10.77.0.2 >/dev/null 2>&1 && break; sleep 0.1; done
check "mtu = 9000: the tap's MTU follows the configuration" \
	bash -c "ip netns exec $NS_GW cat /sys/class/net/tb0/mtu | grep -qx 9000"
t0=$(date +%s%N)
if cl curl -sS --max-time 120 -o "$WORK/big.out" --socks5 10.77.0.2:1080 http://10.77.0.3:8080/big &&
	[ "$(sha "$WORK/big.out")" = "$want_big" ]; then
	ok "mtu = 9000: 100 MB through SOCKS5 on lwIP, SHA-256 intact ($((($(date +%s%N) - t0) / 1000000)) ms)"
else
	notok "mtu = 9000: 100 MB through SOCKS5 on lwIP, SHA-256 intact"
	show gwj.log
fi
rm -f "$WORK/big.out"
kill "$GW_PID" 2>/dev/null
for _ in $(seq 1 50); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
for i in 1 2; do gw ip link set "tbl$i-$S" mtu 1500; done
cl ip link set eth0 mtu 1500
srv ip link set eth0 mtu 1500

# tun: bare IP packets; the kernel side of the tun routes to lwIP's address.
cat >"$WORK/tun.toml" <<EOF
[port.lwip]
netif = "tun"
device = "tbt0"
address = "10.78.0.2"

[[listener]]
name = "lan"
proto = "socks5"
endpoint = "10.78.0.2:1080"
router = "main"

[[connector]]
name = "direct"
proto = "direct"

[[router]]
name = "main"
default = "direct"
EOF
start gwtun.log ip netns exec "$NS_SRV" "$TB" -c "$WORK/tun.toml"
for _ in $(seq 1 50); do srv ip link show tbt0 >/dev/null 2>&1 && break; sleep 0.1; done
srv ip addr add 10.78.0.1/24 dev tbt0
srv ip link set tbt0 up
check "tun netif: SOCKS5 from the kernel side through lwIP to the server" \
	bash -c "ip netns exec $NS_SRV curl -sS --max-time 20 --socks5 10.78.0.2:1080 http://10.77.0.3:8080/page.txt | grep -q hello"

finish
