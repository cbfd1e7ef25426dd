#!/bin/bash
# tun2socks (`proto = "tun"`) in network namespaces made here and always removed:
#   A: the client; its only routes are the TUN device (default, v4 and v6)
#   B: tunnelbox; it creates the TUN device, which is then moved into A
#   C: the servers, on a veth link to B: reachable from A only through tunnelbox
# curl with sha256, 100 MB by hash, IPv6, UDP echo (v4, v6, fragmented), DNS closed on
# reply, UDP idle timeout, half-close, a refused port, 200 concurrent flows,
# fd/RSS back to baseline, the session cap's LRU eviction.
. "$(dirname "$0")/lib/common.sh"
need_config TUN2SOCKS
T2S="$PY $HERE/t2stool.py"

NS=t2s$$
A=${NS}a B=${NS}b C=${NS}c
VB=tv$$b VC=tv$$c
ns_cleanup() {
	for n in $A $B $C; do ip netns del "$n" 2>/dev/null; done
	ip link del "$VB" 2>/dev/null
}
trap 'cleanup; ns_cleanup' EXIT

if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! ip netns add "$A" 2>/dev/null; then
	echo "ok - tun2socks # SKIP network namespaces or /dev/net/tun unavailable (needs root)"
	exit 0
fi
ip netns add "$B" && ip netns add "$C" &&
	for n in $A $B $C; do ip -n "$n" link set lo up; done &&
	ip link add "$VB" type veth peer name "$VC" &&
	ip link set "$VB" netns "$B" && ip link set "$VC" netns "$C" &&
	ip -n "$B" addr add 10.200.0.1/24 dev "$VB" && ip -n "$B" addr add fd00:200::1/64 dev "$VB" nodad &&
	ip -n "$C" addr add 10.200.0.2/24 dev "$VC" && ip -n "$C" addr add fd00:200::2/64 dev "$VC" nodad &&
	ip -n "$B" link set "$VB" up && ip -n "$C" link set "$VC" up ||
	{ notok "namespaces and veth set up"; finish; }

inA() { timeout "${TMO:-60}" ip netns exec "$A" "$@"; }

# ---- servers in C ----
mkdir -p "$WORK/www"
head -c 1000000 /dev/urandom >"$WORK/www/page"
head -c 100000000 /dev/urandom >"$WORK/www/big"
# Started through `ip netns exec` itself (it execs), so the PIDs recorded are the servers'.
start http.log ip netns exec "$C" $PY -m http.server --bind :: 8080 --directory "$WORK/www"
start udp.log ip netns exec "$C" $T2S udp-echo-server --bind :: --port 7 --seconds 170
start dns.log ip netns exec "$C" $T2S dns-server --bind 10.200.0.2 --port 53 --seconds 170
start hc.port ip netns exec "$C" $T2S halfclose-server --bind 10.200.0.2 --seconds 170
start echo.port ip netns exec "$C" $T2S echo-server --bind 10.200.0.2 --seconds 170
for i in $(seq 50); do [ -s "$WORK/hc.port" ] && [ -s "$WORK/echo.port" ] && break; sleep 0.1; done
HC=$(cat "$WORK/hc.port") EP=$(cat "$WORK/echo.port")

# ---- tunnelbox in B, its TUN device moved into A ----
tun_config() { # tun_config FILE [extra listener lines]
	cat >"$1" <<EOC
udp_idle_timeout_s = 3

[[listener]]
name = "lan"
proto = "tun"
device = "tb$$"
mtu = 1500
router = "main"
${2:-}

[[connector]]
name = "direct"
proto = "direct"

[[router]]
name = "main"
default = "direct"
EOC
}
# start_tun CONFIG LOG: sets TB_PID once the device is up in A.
start_tun() {
	local i
	start "$2" ip netns exec "$B" "$TB" -c "$1" -l debug
	TB_PID=$LAST_PID
	for i in $(seq 100); do ip -n "$B" link show "tb$$" >/dev/null 2>&1 && break; sleep 0.05; done
	ip -n "$B" link set "tb$$" netns "$A" &&
		ip -n "$A" addr add 10.99.0.2/24 dev "tb$$" && ip -n "$A" addr add fd00:99::2/64 dev "tb$$" nodad &&
		ip -n "$A" link set "tb$$" up && ip -n "$A" route add default dev "tb$$" &&
		ip -n "$A" -6 route add default dev "tb$$"
}

tun_config "$WORK/gw.toml"
check "config with a tun listener passes --check" "$TB" --check -c "$WORK/gw.toml"
start_tun "$WORK/gw.toml" gw.log || { notok "tunnelbox creates the TUN device"; show gw.log; finish; }
ok "tunnelbox creates the TUN device; it is A's default route"

fetch() { # fetch URL FILE
	inA curl -sS --max-time 50 -o "$2" "$1" && [ "$(sha "$2")" = "$(sha "$WORK/www/${1##*/}")" ]
}
sleep 0.2
check "curl http://10.200.0.2 through the TUN device, sha256 intact" fetch http://10.200.0.2:8080/page "$WORK/p1"
FD0=$(fd_count "$TB_PID")
RSS0=$(awk '/^VmRSS:/ {print $2}' /proc/"$TB_PID"/status)
check "100 MB download by sha256" fetch http://10.200.0.2:8080/big "$WORK/big"
rm -f "$WORK/big"
check "curl over IPv6 (http://[fd00:200::2])" fetch "http://[fd00:200::2]:8080/page" "$WORK/p6"
check "UDP echo, 50 datagrams of 1400 bytes (IPv4)" inA $T2S udp-echo --host 10.200.0.2 --port 7 --count 50 --size 1400
check "UDP echo, 20 datagrams (IPv6)" inA $T2S udp-echo --host fd00:200::2 --port 7 --count 20 --size 1200
check "UDP echo of 8000-byte datagrams, fragmented both ways (IPv4)" \
	inA $T2S udp-echo --host 10.200.0.2 --port 7 --count 10 --size 8000
check "UDP echo of 8000-byte datagrams, fragmented both ways (IPv6)" \
	inA $T2S udp-echo --host fd00:200::2 --port 7 --count 10 --size 8000
check "half-close: the client shuts its write side and still gets the reply (10 MB up)" \
	inA $T2S halfclose --host 10.200.0.2 --port "$HC" --size 10000000
t0=$(date +%s%N)
inA curl -sS --max-time 10 -o /dev/null http://10.200.0.2:1/ 2>/dev/null
rc=$? ms=$((($(date +%s%N) - t0) / 1000000))
# lwIP completes the handshake before the remote answers: the client sees a reset.
check "a refused port resets the client at once (curl exit $rc, ${ms} ms)" \
	sh -c "case $rc in 7 | 52 | 55 | 56) [ $ms -lt 5000 ] ;; *) false ;; esac"
check "200 concurrent TCP flows, 20 KB echoed each" inA $T2S many --host 10.200.0.2 --port "$EP" --conns 200 --size 20000

# DNS (port 53): the association ends with its answer; other UDP after udp_idle_timeout_s.
fds_settle() { # fds_settle MAX SECONDS: until the gateway holds at most MAX fds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(fd_count "$TB_PID")" -le "$1" ] && return 0
		sleep 0.1
	done
	echo "# fds: $(fd_count "$TB_PID"), wanted <= $1"
	return 1
}
check "fds back to the baseline ($FD0) after the TCP flows" fds_settle "$FD0" 10
inA $T2S udp-echo --host 10.200.0.2 --port 53 --count 1 --size 40
check "a DNS association is closed on its reply" fds_settle "$FD0" 1
inA $T2S udp-echo --host 10.200.0.2 --port 7 --count 1 --size 40
check "other UDP stays open while in use" [ "$(fd_count "$TB_PID")" -gt "$FD0" ]
check "... and is closed after udp_idle_timeout_s (3 s)" fds_settle "$FD0" 6
RSS1=$(awk '/^VmRSS:/ {print $2}' /proc/"$TB_PID"/status)
echo "# RSS: ${RSS0} kB after the first page, ${RSS1} kB after 100 MB, 200 flows and UDP"
if grep -q -- '-fsanitize' "$OUT/.flags" 2>/dev/null; then
	ok "RSS back near the baseline # SKIP under the sanitizers (freed memory sits in quarantine)"
else
	check "RSS back near the baseline (${RSS1} kB <= ${RSS0} kB + 8 MB)" [ "$RSS1" -le $((RSS0 + 8192)) ]
fi

# SIGTERM: a clean exit, and the TUN device goes with the process.
kill -TERM "$TB_PID"
for i in $(seq 50); do kill -0 "$TB_PID" 2>/dev/null || break; sleep 0.1; done
wait "$TB_PID"
check "SIGTERM: exit 0" [ $? = 0 ]
check "the TUN device is gone with the process" sh -c "! ip -n $A link show tb$$ >/dev/null 2>&1"

# ---- the session cap: the least recently used session is reset ----
tun_config "$WORK/cap.toml" "max_sessions = 10"
start_tun "$WORK/cap.toml" cap.log || { notok "tunnelbox with max_sessions = 10"; show cap.log; finish; }
sleep 0.2
out=$(inA $T2S hold --host 10.200.0.2 --port "$EP" --conns 15 --seconds 0.5 2>&1)
echo "$out" | sed 's/^/# /'
check "15 connections with max_sessions = 10: the 10 most recent are alive" \
	sh -c "echo '$out' | grep -qx 'alive 10'"
check "the gateway logs 5 evictions" [ "$(grep -c 'the cap: ending the least recently used' "$WORK/cap.log")" = 5 ]
check "after eviction the process is healthy (curl page, sha256)" fetch http://10.200.0.2:8080/page "$WORK/p2"
check "30 UDP flows (one source port each) through a cap of 10" \
	inA sh -c "for p in \$(seq 30); do $T2S udp-echo --host 10.200.0.2 --port 7 --count 1 --size 10 || exit 1; done"
check "... the older UDP flows were evicted" grep -q "the cap: ending the least recently used (udp" "$WORK/cap.log"
kill -0 "$TB_PID" 2>/dev/null && ok "tunnelbox still running" || { notok "tunnelbox still running"; show cap.log; }
[ "$FAILS" = 0 ] || show gw.log | tail -40
finish
