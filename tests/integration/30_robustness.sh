#!/bin/bash
# Half-close, malformed input, many concurrent connections and fd hygiene.
. "$(dirname "$0")/lib/common.sh"

$PY "$HERE/sockstool.py" halfclose-server --size 300000 --seconds 60 >"$WORK/hc.port" &
PIDS+=("$!")
$PY "$HERE/sockstool.py" echo-server --seconds 120 >"$WORK/echo.port" &
PIDS+=("$!")
for i in $(seq 50); do [ -s "$WORK/hc.port" ] && [ -s "$WORK/echo.port" ] && break; sleep 0.1; done
HC=$(cat "$WORK/hc.port")
EP=$(cat "$WORK/echo.port")

P=$(free_port)
simple_config "$WORK/gw.toml" mixed "$P"
start_gateway "$WORK/gw.toml"
wait_port "$P" || { notok "gateway listens"; finish; }

check "half-close: client shuts its write side and still gets the full response" \
	$PY "$HERE/sockstool.py" halfclose --proxy "$P" --port "$HC" --size 200000

# Malformed greetings: a refusal or a close, never a crash.
check "SOCKS5 greeting with NMETHODS=0 gets 0xFF" \
	$PY "$HERE/sockstool.py" raw --proxy "$P" --hex 0500 --expect 05ff
check "SOCKS5 request with ATYP 9 gets REP 8" \
	$PY "$HERE/sockstool.py" raw --proxy "$P" --hex 05010005010009 --expect 050005080001000000000000
PS=$(free_port)
simple_config "$WORK/s5.toml" socks5 "$PS"
start_gateway "$WORK/s5.toml"
wait_port "$PS" || notok "socks5-only gateway listens"
check "a SOCKS4 greeting on a socks5 listener is refused (05 FF, then close)" \
	$PY "$HERE/sockstool.py" raw --proxy "$PS" --hex 0401005000000001 --expect 05ff
check "a SOCKS4 greeting on a mixed listener is answered as bad HTTP (400)" \
	bash -c "printf '\\x04\\x01\\x00\\x50\\x00\\x00\\x00\\x01\\x00' | timeout 5 socat -t 3 - TCP:127.0.0.1:$P | head -1 | grep -q ' 400 '"
check "garbage HTTP gets 400" \
	bash -c "printf 'GARBAGE\r\n\r\n' | timeout 5 socat -t 3 - TCP:127.0.0.1:$P | head -1 | grep -q ' 400 '"
check "the gateway still serves after malformed input" \
	$PY "$HERE/sockstool.py" halfclose --proxy "$P" --port "$HC" --size 1000
check "the gateway process is alive" kill -0 "$GW_PID"

base=$(fd_count "$GW_PID")
check "500 concurrent proxied connections all work" \
	$PY "$HERE/sockstool.py" many --proxy "$P" --port "$EP" --count 500
for i in $(seq 50); do [ "$(fd_count "$GW_PID")" -le "$base" ] && break; sleep 0.1; done
now=$(fd_count "$GW_PID")
echo "# gateway fds: $base before, $now after 500 connections"
check "the gateway's fd count returns to its baseline ($base)" [ "$now" -le "$base" ]
finish
