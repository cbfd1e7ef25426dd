#!/bin/bash
# workers = N: a supervisor and N processes sharing the listener through
# SO_REUSEPORT; a dead worker is replaced; signals reach every worker.
. "$(dirname "$0")/lib/common.sh"

mkdir -p "$WORK/www"
head -c 1000000 /dev/urandom >"$WORK/www/blob"
want=$(sha "$WORK/www/blob")
start_http_server "$WORK/www" || { notok "http server starts"; finish; }

P=$(free_port)
simple_config "$WORK/base.toml" socks5 "$P"
{ echo "workers = 3"; cat "$WORK/base.toml"; } >"$WORK/gw.toml"
start_gateway "$WORK/gw.toml"
wait_port "$P" || { notok "gateway listens"; finish; }
sleep 0.3
workers() { pgrep -P "$GW_PID" | wc -l; }
check "the supervisor runs 3 workers (saw $(workers))" [ "$(workers)" -eq 3 ]

okc=0
for i in $(seq 12); do
	curl -sS --max-time 10 -o "$WORK/o" --socks5 "127.0.0.1:$P" "http://127.0.0.1:$HTTP_PORT/blob" &&
		[ "$(sha "$WORK/o")" = "$want" ] && okc=$((okc + 1))
done
check "12 fetches through the shared port all succeed ($okc)" [ "$okc" -eq 12 ]

victim=$(pgrep -P "$GW_PID" | head -1)
kill -9 "$victim"
for i in $(seq 50); do [ "$(workers)" -eq 3 ] && ! kill -0 "$victim" 2>/dev/null && break; sleep 0.1; done
check "a killed worker is replaced (workers: $(workers))" [ "$(workers)" -eq 3 ]
check "fetches still work after the replacement" \
	bash -c "curl -sS --max-time 10 -o '$WORK/o2' --socks5 127.0.0.1:$P http://127.0.0.1:$HTTP_PORT/blob && [ \"\$(sha256sum <'$WORK/o2' | cut -d' ' -f1)\" = $want ]"

kill -TERM "$GW_PID"
for i in $(seq 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
wait "$GW_PID"
rc=$?
check "SIGTERM stops the supervisor and every worker (rc $rc)" [ "$rc" -eq 0 ]
check "no worker is left behind" [ -z "$(pgrep -f "$WORK/gw.toml")" ]
finish
