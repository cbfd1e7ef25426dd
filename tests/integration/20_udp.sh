#!/bin/bash
# SOCKS5 UDP ASSOCIATE through the gateway to a UDP echo server.
. "$(dirname "$0")/lib/common.sh"

$PY "$HERE/sockstool.py" udp-echo-server --seconds 60 >"$WORK/echo.port" &
PIDS+=("$!")
for i in $(seq 50); do [ -s "$WORK/echo.port" ] && break; sleep 0.1; done
EP=$(cat "$WORK/echo.port")

P=$(free_port)
simple_config "$WORK/gw.toml" socks5 "$P"
start_gateway "$WORK/gw.toml"
wait_port "$P" || { notok "gateway listens"; finish; }
check "UDP ASSOCIATE echo, 50 datagrams to an IP target (FRAG!=0 dropped)" \
	$PY "$HERE/sockstool.py" udp-echo --proxy "$P" --port "$EP" --count 50 --size 1200
check "UDP ASSOCIATE echo to a domain target" \
	$PY "$HERE/sockstool.py" udp-echo --proxy "$P" --host localhost --port "$EP" --count 5
finish
