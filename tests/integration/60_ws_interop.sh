#!/bin/bash
# WebSocket (ws.c) against an independent strict peer on loopback: Debian's
# python3-websockets (lib/ws_peer.py) as a server for our client and as a
# client for our server (lib/ws_echo.c, built here against this build's
# library), plus hand-made broken frames that our server must refuse with
# the right close code.
. "$(dirname "$0")/lib/common.sh"

need_config WS
if ! $PY -c 'import websockets' 2>/dev/null; then
	echo "# python3-websockets (Debian package) is missing"
	exit 77
fi
PEER=("$PY" "$HERE/ws_peer.py")

# ---- the C peer, built against this build's library (and its sanitizers) ----
read -ra SAN <<<"$(grep -o -- '-fsanitize=[^ ]*' "$OUT/.flags" 2>/dev/null | head -1)"
ECHO=$WORK/ws_echo
# With lwIP configured (tun2socks), the library calls into liblwip.a and back.
LIBS=("$OUT/libtb.a")
[ -f "$OUT/liblwip.a" ] && LIBS=(-Wl,--start-group "$OUT/libtb.a" "$OUT/liblwip.a" -Wl,--end-group)
if ! cc -std=gnu11 -O1 -g "${SAN[@]}" -I"$ROOT/include" -I"$OUT/include" -D_GNU_SOURCE \
	"$HERE/ws_echo.c" "${LIBS[@]}" -Wl,--as-needed -lmbedtls -lmbedx509 -lmbedcrypto -lcares -lz \
	-o "$ECHO" 2>"$WORK/cc.log"; then
	cat "$WORK/cc.log"
	notok "ws_echo builds against $OUT/libtb.a"
	finish
fi

# quiet CMD...: CMD's output only as "# " comments, and only when it fails
# (the peers print lines starting with "ok" that the runner would count).
quiet() {
	"$@" >"$WORK/cmd.log" 2>&1 && return 0
	sed 's/^/# /' "$WORK/cmd.log"
	return 1
}

# wait_line FILE PATTERN: until FILE has a line matching PATTERN (10 s).
wait_line() {
	for _ in $(seq 200); do grep -qs "$2" "$1" && return 0; sleep 0.05; done
	return 1
}

# ---- our client against the python server ----
start_py_server() { # start_py_server LOG [--fragment N]: sets PP
	local log=$1
	shift
	PP=$(free_port)
	"${PEER[@]}" server "$PP" "$@" >"$log" 2>&1 &
	PIDS+=("$!")
	wait_line "$log" '^listening'
}

if start_py_server "$WORK/py1.log"; then
	check "our client -> python server: 33 messages (text and binary, up to 3 MiB) echoed, pong, close 1000" \
		quiet timeout 90 "$ECHO" client "ws://127.0.0.1:$PP/socket?token=abc" 33
	check "our client (4096-byte fragments, as the reference client) -> python server" \
		quiet timeout 90 "$ECHO" client "ws://127.0.0.1:$PP/socket/x" 22 4096
else
	notok "python server starts"
fi
if start_py_server "$WORK/py2.log" --fragment 1000; then
	check "our client reassembles the python server's fragmented echoes and answers its ping" \
		quiet timeout 90 "$ECHO" client "ws://127.0.0.1:$PP/socket" 22
else
	notok "python server (fragmenting) starts"
fi
sleep 0.2
for log in "$WORK/py1.log" "$WORK/py2.log"; do
	[ -f "$log" ] || continue
	if [ "$(grep -c '^conn ok' "$log")" -lt 1 ] || grep -q 'FAIL' "$log"; then
		notok "python server saw no protocol error ($(basename "$log"))"
		sed 's/^/# /' "$log"
	else
		ok "python server saw no protocol error, every close was 1000 ($(basename "$log"))"
	fi
done

# ---- the python client against our server ----
SP=$(free_port)
"$ECHO" server "$SP" >"$WORK/srv.log" 2>&1 &
SRV=$!
PIDS+=("$SRV")
if wait_line "$WORK/srv.log" '^server: listening'; then
	check "python client -> our server: 26 messages (up to 8 MiB, pipelined), pong, close 1000 echoed" \
		quiet timeout 90 "${PEER[@]}" client "ws://127.0.0.1:$SP/socket?token=abc" 26
	check "python client (4096-byte fragments) -> our server" \
		quiet timeout 90 "${PEER[@]}" client "ws://127.0.0.1:$SP/socket" 13 --fragment 4096
	check "frames sent with the request, ping payload echoed in the pong, fragments around a ping, close 4321 echoed" \
		quiet timeout 30 "${PEER[@]}" raw "$SP" ping_close
	check "Sec-WebSocket-Version 8 gets 426 naming version 13" quiet timeout 30 "${PEER[@]}" raw "$SP" version
	for mode in unmasked rsv opcode continuation data_in_fragments control_long control_fragmented \
		close_code length_top_bit; do
		check "our server fails the connection with 1002: $mode" quiet timeout 30 "${PEER[@]}" raw "$SP" "$mode"
	done
	check "our server answers a 33 MiB frame header with 1009 before any payload" \
		quiet timeout 30 "${PEER[@]}" raw "$SP" too_big
	check "our server is still running after all of it" kill -0 "$SRV"
else
	notok "our server starts"
	cat "$WORK/srv.log"
fi
finish
