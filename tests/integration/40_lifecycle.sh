#!/bin/bash
# Configuration errors, --check, --version, SIGHUP reload during a download,
# SIGTERM drain.
. "$(dirname "$0")/lib/common.sh"

printf '[[listener]]\nname = "a"\nproto = "socks5"\nendpoint = 127.0.0.1:1\n' >"$WORK/bad.toml"
"$TB" -c "$WORK/bad.toml" >"$WORK/bad.out" 2>&1
rc=$?
check "a malformed config exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "the error names file:line:col" grep -q "bad.toml:4:12" "$WORK/bad.out"
sed -n 1p "$WORK/bad.out" | sed 's/^/# /'

P=$(free_port)
simple_config "$WORK/unknown.toml" socks5 "$P"
sed -i 's/^default = "direct"/default = "nowhere"/' "$WORK/unknown.toml"
"$TB" -c "$WORK/unknown.toml" --check >"$WORK/unknown.out" 2>&1
rc=$?
check "a router naming a missing connector exits 2 (got $rc)" [ "$rc" -eq 2 ]
check "that error names the key's position" grep -q "unknown.toml:[0-9]*:[0-9]*: default" "$WORK/unknown.out"
"$TB" --check -c /nonexistent.toml >/dev/null 2>&1
check "a missing config file exits 2" [ $? -eq 2 ]

simple_config "$WORK/gw.toml" socks5 "$P"
check "--check accepts a good config" "$TB" --check -c "$WORK/gw.toml"
check "--version lists the compiled-in modules" bash -c "'$TB' --version | grep -q 'modules:.*socks5'"

mkdir -p "$WORK/www"
head -c 20000000 /dev/urandom >"$WORK/www/big"
want=$(sha "$WORK/www/big")
start_http_server "$WORK/www" || notok "http server starts"
start_gateway "$WORK/gw.toml"
wait_port "$P" || { notok "gateway listens"; finish; }

# A slow download (4 MB/s, ~5 s) across a SIGHUP reload.
curl -sS --max-time 60 --limit-rate 4M -o "$WORK/dl1" --socks5-hostname "127.0.0.1:$P" \
	"http://127.0.0.1:$HTTP_PORT/big" &
CURL=$!
sleep 1
sed -i 's/^default = "direct"/default = "deny"/' "$WORK/gw.toml"
kill -HUP "$GW_PID"
sleep 0.5
check "after SIGHUP the new router applies to new flows (block -> REP 2)" \
	$PY "$HERE/sockstool.py" connect --proxy "$P" --port "$HTTP_PORT" --expect 2
wait "$CURL"
check "a download in flight across SIGHUP completes intact" [ "$(sha "$WORK/dl1")" = "$want" ]
check "the gateway logged the reload" grep -q "reloaded" "$WORK/gw.log"

# SIGTERM: listeners close at once, a flow in flight drains.
sed -i 's/^default = "deny"/default = "direct"/' "$WORK/gw.toml"
kill -HUP "$GW_PID"
sleep 0.3
curl -sS --max-time 60 --limit-rate 8M -o "$WORK/dl2" --socks5-hostname "127.0.0.1:$P" \
	"http://127.0.0.1:$HTTP_PORT/big" &
CURL=$!
sleep 1
kill -TERM "$GW_PID"
sleep 0.3
check "after SIGTERM the listener is closed" bash -c "! $PY -c \"import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$P)))\""
wait "$CURL"
check "a download in flight at SIGTERM drains intact" [ "$(sha "$WORK/dl2")" = "$want" ]
for i in $(seq 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
wait "$GW_PID"
rc=$?
check "the gateway exits 0 once drained (got $rc)" [ "$rc" -eq 0 ]

# Drain deadline: a flow that outlives --drain-timeout and a handshake that
# never completes are both cut, and the process exits promptly (under SAN=1
# the runner also fails on any leak they leave).
start_gateway "$WORK/gw.toml" --drain-timeout 500
wait_port "$P" || notok "gateway restarts"
curl -sS --max-time 30 --limit-rate 200K -o /dev/null --socks5-hostname "127.0.0.1:$P" \
	"http://127.0.0.1:$HTTP_PORT/big" 2>/dev/null &
CURL=$!
exec 7<>/dev/tcp/127.0.0.1/$P # a client that connects and says nothing
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$GW_PID"
wait "$GW_PID"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
exec 7>&-
kill "$CURL" 2>/dev/null
wait "$CURL" 2>/dev/null
echo "# exit after SIGTERM with a 500 ms drain deadline: ${ms} ms"
check "a drain deadline cuts flows and handshakes, then exits 0 (rc $rc, ${ms} ms)" \
	[ "$rc" -eq 0 -a "$ms" -lt 5000 ]
finish
