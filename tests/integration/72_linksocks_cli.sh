#!/bin/bash
# The drop-in linksocks command line (spec/linksocks.md §7): forward and
# reverse end to end with curl, a `linksocks` symlink, the environment
# variables, help, usage errors, and a refused token.
. "$(dirname "$0")/lib/common.sh"

need_config LINKSOCKS
LS=$WORK/linksocks
ln -s "$TB" "$LS"

serve_blob 2000000

alive() { [ -e "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
stop() { # stop PID: SIGTERM; STOP_RC gets its exit code (124 if it hangs)
	local pid=$1 i
	kill "$pid" 2>/dev/null
	STOP_RC=124
	for ((i = 0; i < 100; i++)); do
		if ! alive "$pid"; then
			wait "$pid"
			STOP_RC=$?
			return
		fi
		sleep 0.05
	done
}

# ---- forward: a token that needs TOML escaping on both ends ----
TOK='fw"d\tok'
WP=$(free_port) SP=$(free_port)
start fs.log "$TB" linksocks server -t "$TOK" -P "$WP" -H 127.0.0.1
FS=$LAST_PID
start fc.log "$TB" linksocks client -t "$TOK" -u "ws://127.0.0.1:$WP" -p "$SP"
FC=$LAST_PID
if wait_port "$WP" 10 && wait_port "$SP" 10 && fetch_via "$SP" "$WORK/o1"; then
	ok "forward: server + client, curl through the client's SOCKS5 gets the file intact"
else
	notok "forward: server + client, curl through the client's SOCKS5 gets the file intact"
	show fs.log fc.log
fi
stop "$FC"
check "forward: SIGTERM stops the client with exit code 0 (got $STOP_RC)" [ "$STOP_RC" = 0 ]
stop "$FS"
check "forward: SIGTERM stops the server with exit code 0 (got $STOP_RC)" [ "$STOP_RC" = 0 ]

# ---- reverse: server -r with its SOCKS5 port, provider dials the target ----
WP=$(free_port) RP=$(free_port)
start rs.log "$TB" linksocks server -r -t R -p "$RP" -P "$WP" -H 127.0.0.1
start rp.log "$TB" linksocks provider -t R -u "ws://127.0.0.1:$WP"
if wait_port "$WP" 10 && wait_port "$RP" 10 && fetch_via "$RP" "$WORK/o2"; then
	ok "reverse: server -r + provider, curl through the server's SOCKS5 gets the file intact"
else
	notok "reverse: server -r + provider, curl through the server's SOCKS5 gets the file intact"
	show rs.log rp.log
fi
check "reverse: the server printed its configuration" grep -q 'Token: R' "$WORK/rs.log"

# ---- agent: connector -> server -> provider (server -r -c) ----
WP=$(free_port) RP=$(free_port) CP=$(free_port)
start as.log "$TB" linksocks server -r -t R -c C -p "$RP" -P "$WP" -H 127.0.0.1
start ap.log "$TB" linksocks provider -t R -u "ws://127.0.0.1:$WP"
start ac.log "$TB" linksocks connector -t C -u "ws://127.0.0.1:$WP" -p "$CP"
if wait_port "$WP" 10 && wait_port "$CP" 10 && fetch_via "$CP" "$WORK/o2a"; then
	ok "agent: connector -> server -> provider, curl through the connector's SOCKS5 gets the file intact"
else
	notok "agent: connector -> server -> provider, curl through the connector's SOCKS5 gets the file intact"
	show as.log ap.log ac.log
fi
check "agent: the server printed the connector token" grep -q 'Connector token: C' "$WORK/as.log"

# ---- autonomy: the provider registers its connector token (server -r -a) ----
WP=$(free_port) CP=$(free_port)
start us.log "$TB" linksocks server -r -a -t P -P "$WP" -H 127.0.0.1
start up.log "$TB" linksocks provider -t P -c MYC -u "ws://127.0.0.1:$WP"
UP=$LAST_PID
for i in $(seq 50); do grep -q 'MYC registered' "$WORK/up.log" 2>/dev/null && break; sleep 0.1; done
start uc.log "$TB" linksocks connector -t MYC -u "ws://127.0.0.1:$WP" -p "$CP"
if wait_port "$CP" 10 && fetch_via "$CP" "$WORK/o2u"; then
	ok "autonomy: provider -c registers MYC; a connector with MYC gets the file intact"
else
	notok "autonomy: provider -c registers MYC; a connector with MYC gets the file intact"
	show us.log up.log uc.log
fi
# §11: the reference strands the token when its provider reconnects; we re-bind it.
kill -9 "$UP" 2>/dev/null
start up2.log "$TB" linksocks provider -t P -c MYC -u "ws://127.0.0.1:$WP"
for i in $(seq 80); do grep -q 'MYC registered' "$WORK/up2.log" 2>/dev/null && break; sleep 0.1; done
if fetch_via "$CP" "$WORK/o2v"; then
	ok "autonomy: a restarted provider re-registers MYC and the connector works again"
else
	notok "autonomy: a restarted provider re-registers MYC and the connector works again"
	show us.log up2.log uc.log
fi

# ---- a symlink named linksocks, with SOCKS5 username/password ----
WP=$(free_port) SP=$(free_port)
start ss.log "$LS" server -t S -P "$WP" -H 127.0.0.1
start sc.log "$LS" client -t S -u "ws://127.0.0.1:$WP" -p "$SP" -n alice -w 's3"cret'
if wait_port "$WP" 10 && wait_port "$SP" 10 &&
	curl -sS --max-time 20 -o "$WORK/o3" --socks5-hostname "alice:s3%22cret@127.0.0.1:$SP" "$URL" &&
	[ "$(sha "$WORK/o3")" = "$want" ]; then
	ok "symlink: linksocks server + client (with SOCKS5 auth) carry the file intact"
else
	notok "symlink: linksocks server + client (with SOCKS5 auth) carry the file intact"
	show ss.log sc.log
fi
check "symlink: the client's SOCKS5 refuses a wrong password" \
	bash -c "! curl -sS --max-time 5 -o /dev/null --socks5-hostname 'alice:nope@127.0.0.1:$SP' '$URL' 2>/dev/null"

# ---- environment: LINKSOCKS_MODE supplies the command, variables the flags ----
WP=$(free_port) SP=$(free_port)
start es.log env LINKSOCKS_MODE=server LINKSOCKS_TOKEN=E LINKSOCKS_WEBSOCKET_HOST=127.0.0.1 \
	LINKSOCKS_WEBSOCKET_PORT="$WP" "$TB" linksocks -d
start ec.log env LINKSOCKS_MODE=' Forward ' LINKSOCKS_TOKEN=E LINKSOCKS_URL="ws://127.0.0.1:$WP" \
	LINKSOCKS_SOCKS_PORT="$SP" "$LS"
if wait_port "$WP" 10 && wait_port "$SP" 10 && fetch_via "$SP" "$WORK/o4"; then
	ok "env: LINKSOCKS_MODE, LINKSOCKS_TOKEN, _URL, _WEBSOCKET_HOST/_PORT, _SOCKS_PORT work"
else
	notok "env: LINKSOCKS_MODE, LINKSOCKS_TOKEN, _URL, _WEBSOCKET_HOST/_PORT, _SOCKS_PORT work"
	show es.log ec.log
fi
conf() { "$TB" linksocks "$@" --print-config 2>/dev/null; }
check "env: a flag wins over its variable" \
	bash -c "LINKSOCKS_TOKEN=fromenv '$TB' linksocks server -t fromflag --print-config | grep -q fromflag"
check "env: booleans parse as Go's ParseBool (LINKSOCKS_FASTOPEN=T)" \
	bash -c "LINKSOCKS_FASTOPEN=T '$TB' linksocks client --print-config | grep -q '^fast_open = true'"
check "env: a bad boolean is a usage error (exit 2)" \
	bash -c "LINKSOCKS_FASTOPEN=yes '$TB' linksocks client --print-config >/dev/null 2>&1; [ \$? = 2 ]"
check "env: LINKSOCKS_MODE=reverse runs a provider" \
	bash -c "LINKSOCKS_MODE=reverse '$TB' linksocks --print-config | grep -q linksocks-provider"
check "the printed configuration passes tunnelbox --check" \
	bash -c "'$TB' linksocks server -r -t 'a\"b\\\\c' -n u -w p --print-config >'$WORK/p.toml' &&
		'$TB' -c '$WORK/p.toml' --check >/dev/null 2>&1"
check "server: the WebSocket listener defaults to 0.0.0.0:8765 (the reference's default)" \
	bash -c "'$TB' linksocks server -t x --print-config | grep -q '^endpoint = \"0.0.0.0:8765\"'"

# ---- a generated token is printed ----
WP=$(free_port)
start gs.log "$TB" linksocks server -P "$WP" -H 127.0.0.1
GS=$LAST_PID
wait_port "$WP" 10
check "server without -t prints a random 16-hex-digit token" grep -Eq 'Token: [0-9a-f]{16}$' "$WORK/gs.log"
stop "$GS"

# ---- help, version and usage errors ----
rc_is() { # rc_is CODE CMD...
	local want=$1
	shift
	"$@" >"$WORK/rc.out" 2>&1
	[ $? = "$want" ]
}
check "--help exits 0" rc_is 0 "$TB" linksocks --help
check "server --help exits 0" rc_is 0 "$TB" linksocks server --help
check "client -h exits 0" rc_is 0 "$LS" client -h
check "help provider exits 0" rc_is 0 "$LS" help provider
check "version prints the reference version and the platform" \
	bash -c "'$LS' version | grep -Eq '^linksocks version v1\.7\.15 .* linux/[a-z0-9]+$'"
check "a bad flag exits 2" rc_is 2 "$TB" linksocks server --no-such-flag
check "a flag without its value exits 2" rc_is 2 "$TB" linksocks client -t
check "a bad port exits 2" rc_is 2 "$TB" linksocks server -P 70000
check "an unknown command exits 2" rc_is 2 "$TB" linksocks serve
check "server -k (HTTP API, 73_linksocks_api.sh) is accepted" rc_is 0 "$TB" linksocks server -k key -t T --print-config
check "server -k: the config has api_key and no CLI token" eval 'grep -q "api_key = \"key\"" "$WORK/rc.out" && ! grep -q "tokens" "$WORK/rc.out"'
check "v1.8 P2P flags are accepted" rc_is 0 "$TB" linksocks client --direct-mode relay-only \
	--stun-server 1.2.3.4:3478 --direct-upnp -i -E --print-config

# ---- a refused token: the client exits non-zero, quickly ----
WP=$(free_port)
start ws.log "$TB" linksocks server -t good -P "$WP" -H 127.0.0.1
wait_port "$WP" 10
timeout 8 "$TB" linksocks client -t bad -u "ws://127.0.0.1:$WP" -p "$(free_port)" >"$WORK/wc.log" 2>&1
rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then
	ok "a wrong token makes the client exit non-zero (exit $rc) within seconds"
else
	notok "a wrong token makes the client exit non-zero (exit $rc) within seconds"
	show wc.log
fi
finish
