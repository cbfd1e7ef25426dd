#!/bin/bash
# LinkSocks end to end on loopback (spec/linksocks.md, issue 3 "Tests"):
# tunnelbox server, forward client, providers and wss, each transfer checked
# by SHA-256; wrong tokens, wrong CAs, a provider killed mid-transfer,
# half-close, a 200 MB transfer to a slow reader with bounded RSS, and an
# independent strict WebSocket peer (Debian's python3-websockets, with
# LinkSocks messages built byte by byte in lib/ls_peer.py) as a client of our
# server and as a server of our client and provider.
. "$(dirname "$0")/lib/common.sh"

need_config LINKSOCKS
HAVE_TLS=0
grep -q '^CONFIG_TLS=y' "$OUT/.config" && command -v openssl >/dev/null && HAVE_TLS=1
SAN=0
grep -q -- '-fsanitize' "$OUT/.flags" 2>/dev/null && SAN=1
HAVE_WS_PY=0
$PY -c 'import websockets' 2>/dev/null && HAVE_WS_PY=1
ST=("$PY" "$HERE/sockstool.py")
PEER=("$PY" "$HERE/ls_peer.py")

# ---- helpers ----

# tb NAME CONFIG [args]: a tunnelbox in the background, log $WORK/NAME.log,
# its pid in PID_NAME (and in PIDS for the cleanup).
tb() {
	local name=$1 conf=$2
	shift 2
	"$TB" -c "$conf" "$@" >"$WORK/$name.log" 2>&1 &
	PIDS+=("$!")
	printf -v "PID_$name" '%s' "$!"
}
# wait_log FILE REGEX [SECONDS] [COUNT]: until FILE has COUNT matching lines.
wait_log() {
	local f=$1 re=$2 limit=${3:-5} n=${4:-1} i
	for ((i = 0; i < limit * 20; i++)); do
		[ "$(grep -Ec -- "$re" "$f" 2>/dev/null)" -ge "$n" ] && return 0
		sleep 0.05
	done
	return 1
}
# quiet CMD...: CMD's output only as "# " comments (our peers print words
# like "ok" that the runner must not count).
quiet() {
	local rc
	"$@" >"$WORK/cmd.log" 2>&1
	rc=$?
	sed 's/^/# /' "$WORK/cmd.log"
	return $rc
}
fetch() { # fetch WANT_SHA OUT curl-args...
	local want=$1 out=$2
	shift 2
	curl -sS --max-time 30 -o "$out" "$@" && [ "$(sha "$out")" = "$want" ]
}
alive() { kill -0 "$1" 2>/dev/null; }
pid_of() { local v=PID_$1; echo "${!v:-}"; } # pid_of NAME: the pid tb() recorded

# server_conf FILE WS_PORT ROUTER_DEFAULT EXTRA: a linksocks server listener.
server_conf() {
	cat >"$1" <<EOC
[[listener]]
name = "ls"
proto = "linksocks"
endpoint = "127.0.0.1:$2"
router = "main"
${4:-}

[[connector]]
name = "direct"
proto = "direct"

[[connector]]
name = "block"
proto = "block"

[[router]]
name = "main"
default = "$3"
EOC
}
# client_conf FILE SOCKS_PORT CONNECTOR_LINES: a SOCKS5 listener routed to a
# linksocks forward connector.
client_conf() {
	cat >"$1" <<EOC
[[listener]]
name = "in"
proto = "socks5"
endpoint = "127.0.0.1:$2"
router = "main"

[[connector]]
name = "ls"
proto = "linksocks"
$3

[[router]]
name = "main"
default = "ls"
EOC
}
# provider_conf FILE URL TOKEN [EXTRA]
provider_conf() {
	cat >"$1" <<EOC
[[listener]]
name = "prov"
proto = "linksocks-provider"
router = "main"
url = "$2"
token = "$3"
${4:-}

[[connector]]
name = "direct"
proto = "direct"

[[router]]
name = "main"
default = "direct"
EOC
}

# ---- targets: http files, TCP echo, UDP echo, half-close server ----
mkdir -p "$WORK/www"
head -c 10485760 /dev/urandom >"$WORK/www/b10"
head -c 209715200 /dev/urandom >"$WORK/www/b200"
# compressible: text lines with a counter (deflate gets about 1:5)
seq -f 'line %.0f of a compressible file, carried by tunnelbox' 1 200000 >"$WORK/www/z10"
SHA10=$(sha "$WORK/www/b10")
SHAZ=$(sha "$WORK/www/z10")
SHA200=$(sha "$WORK/www/b200")
start_http_server "$WORK/www" || { notok "http server starts"; finish; }
U10="http://127.0.0.1:$HTTP_PORT/b10"
UZ="http://127.0.0.1:$HTTP_PORT/z10"
U200="http://127.0.0.1:$HTTP_PORT/b200"
"${ST[@]}" echo-server --seconds 120 >"$WORK/echo.port" &
PIDS+=("$!")
"${ST[@]}" udp-echo-server --seconds 120 >"$WORK/uecho.port" &
PIDS+=("$!")
"${ST[@]}" halfclose-server --size 300000 --seconds 120 >"$WORK/hc.port" &
PIDS+=("$!")
for _ in $(seq 100); do
	[ -s "$WORK/echo.port" ] && [ -s "$WORK/uecho.port" ] && [ -s "$WORK/hc.port" ] && break
	sleep 0.05
done
EP=$(cat "$WORK/echo.port")
UEP=$(cat "$WORK/uecho.port")
HCP=$(cat "$WORK/hc.port")
CLOSED=$(free_port)

# ---- certificates for wss: a CA, a server certificate for 127.0.0.1, another CA ----
if [ $HAVE_TLS = 1 ] && ! (mkcerts) >"$WORK/certs.log" 2>&1; then
	sed 's/^/# /' "$WORK/certs.log"
	notok "test certificates"
	HAVE_TLS=0
fi

# ---- servers ----
# SF: forward tokens over ws (and wss on a second listener), router direct.
# SR: reverse tokens only reachable through providers: its own router sends
# everything to `block`, so a flow that succeeds went through a provider.
WSF=$(free_port) WSS=$(free_port) WSR=$(free_port) WSZ=$(free_port)
RS=$(free_port) RR=$(free_port) KS=$(free_port) NS=$(free_port) LS=$(free_port)
server_conf "$WORK/sf.toml" "$WSF" direct 'tokens = ["tok123"]'
# a second ws listener that gzips Data of 1 KiB and more (§3.5)
cat >>"$WORK/sf.toml" <<EOC

[[listener]]
name = "lsz"
proto = "linksocks"
endpoint = "127.0.0.1:$WSZ"
router = "main"
tokens = ["tok123"]
compress_threshold = 1024
compress_level = 1
EOC
if [ $HAVE_TLS = 1 ]; then
	cat >>"$WORK/sf.toml" <<EOC

[[listener]]
name = "lss"
proto = "linksocks"
endpoint = "127.0.0.1:$WSS"
router = "main"
tokens = ["tok123"]
tls_cert = "$WORK/srv.pem"
tls_key = "$WORK/srv.key"
EOC
fi
server_conf "$WORK/sr.toml" "$WSR" block 'tokens = ["fwdonblock"]
  [[listener.reverse]]
  token = "rtok"
  socks = "127.0.0.1:'"$RS"'"
  [[listener.reverse]]
  token = "rrtok"
  socks = "127.0.0.1:'"$RR"'"
  [[listener.reverse]]
  token = "ktok"
  socks = "127.0.0.1:'"$KS"'"
  user = "alice"
  pass = "s3cret"
  [[listener.reverse]]
  token = "ntok"
  socks = "127.0.0.1:'"$NS"'"
  [[listener.reverse]]
  token = "ltok"
  socks = "127.0.0.1:'"$LS"'"'
tb sf "$WORK/sf.toml" -v
tb sr "$WORK/sr.toml" -v
wait_port "$WSF" && wait_port "$WSR" || { notok "linksocks servers listen"; sed 's/^/# /' "$WORK"/s?.log; finish; }

# ---- clients and providers, all started together ----
CF=$(free_port) CB=$(free_port) CT=$(free_port) CZ=$(free_port)
client_conf "$WORK/cf.toml" "$CF" "url = \"ws://127.0.0.1:$WSF\"
token = \"tok123\""
tb cf "$WORK/cf.toml" -v
client_conf "$WORK/cz.toml" "$CZ" "url = \"ws://127.0.0.1:$WSZ\"
token = \"tok123\"
compress_threshold = 1024"
tb cz "$WORK/cz.toml" -v
client_conf "$WORK/ct.toml" "$CT" "url = \"ws://127.0.0.1:$WSF/socket/t\"
token = \"tok123\"
threads = 3
fast_open = true"
tb ct "$WORK/ct.toml"
# a forward client of SR: its Connects meet SR's `block` router
client_conf "$WORK/cb.toml" "$CB" "url = \"ws://127.0.0.1:$WSR/socket/fwd\"
token = \"fwdonblock\""
tb cb "$WORK/cb.toml"
provider_conf "$WORK/p1.toml" "ws://127.0.0.1:$WSR/socket/x" rtok
tb p1 "$WORK/p1.toml" -v
provider_conf "$WORK/pa.toml" "ws://127.0.0.1:$WSR" rrtok # URL auth (exactly /socket)
tb pa "$WORK/pa.toml" -v
provider_conf "$WORK/pb.toml" "ws://127.0.0.1:$WSR/socket/b" rrtok
tb pb "$WORK/pb.toml" -v
provider_conf "$WORK/pk.toml" "ws://127.0.0.1:$WSR/socket/k" ktok
tb pk "$WORK/pk.toml"
client_conf "$WORK/x1.toml" "$(free_port)" "url = \"ws://127.0.0.1:$WSF/socket/x\"
token = \"wrong\""
tb x1 "$WORK/x1.toml"
client_conf "$WORK/x2.toml" "$(free_port)" "url = \"ws://127.0.0.1:$WSF\"
token = \"wrong\"
retry_auth = true"
tb x2 "$WORK/x2.toml"
client_conf "$WORK/x3.toml" "$(free_port)" "url = \"ws://127.0.0.1:$WSF/nope\"
token = \"tok123\""
tb x3 "$WORK/x3.toml"
if [ $HAVE_TLS = 1 ]; then
	W1=$(free_port) W2=$(free_port) W3=$(free_port)
	client_conf "$WORK/w1.toml" "$W1" "url = \"wss://127.0.0.1:$WSS\"
token = \"tok123\"
ca_file = \"$WORK/ca.pem\""
	tb w1 "$WORK/w1.toml"
	client_conf "$WORK/w2.toml" "$W2" "url = \"wss://127.0.0.1:$WSS\"
token = \"tok123\"
ca_file = \"$WORK/other.pem\""
	tb w2 "$WORK/w2.toml"
	client_conf "$WORK/w3.toml" "$W3" "url = \"wss://127.0.0.1:$WSS/socket/z\"
token = \"tok123\"
ca_file = \"$WORK/other.pem\"
insecure = true"
	tb w3 "$WORK/w3.toml"
fi

# In the background while the rest runs (§5, §11): a SOCKS request to a
# client that never gets a WebSocket (the wrong CA), and one to a reverse
# port without a provider, each answered REP 3 after the 10 s wait.
rep3() { # rep3 PORT OUT
	local t0
	t0=$(date +%s%N)
	"${ST[@]}" connect --proxy "$1" --port "$HTTP_PORT" --expect 3 --timeout 20 >"$2" 2>&1
	echo "rc $? ms $((($(date +%s%N) - t0) / 1000000))" >>"$2"
}
rep3 "$NS" "$WORK/rep3.ns" &
REP3_PIDS=("$!")
if [ $HAVE_TLS = 1 ]; then
	wait_port "$W2"
	rep3 "$W2" "$WORK/rep3.w2" &
	REP3_PIDS+=("$!")
fi
PIDS+=("${REP3_PIDS[@]}")
# (each process's own log: the logger rate-limits a call site to a line a second)
all_up() {
	local f
	for f in cf cz ct cb p1 pa pb pk; do wait_log "$WORK/$f.log" 'authenticated' 5 || return 1; done
}
wait_port "$CF" && all_up ||
	{ notok "clients and providers authenticate"; sed 's/^/# /' "$WORK"/*.log; finish; }

# ---- forward and reverse ----
check "forward: 10 MB through the client's SOCKS5, ws, the server, intact" \
	fetch "$SHA10" "$WORK/o.fwd" --socks5-hostname "127.0.0.1:$CF" "$U10"
check "reverse: 10 MB through the server's reverse SOCKS5 port and a provider, intact" \
	fetch "$SHA10" "$WORK/o.rev" --socks5-hostname "127.0.0.1:$RS" "$U10"
check "reverse: the flow went through the provider" grep -q "prov: 127.0.0.1:$HTTP_PORT -> direct" "$WORK/p1.log"
fo_fetch() { # three at once through 3 WebSockets, fast-open
	local i pids=() bad=0
	for i in 1 2 3; do
		fetch "$SHA10" "$WORK/o.fo$i" --socks5-hostname "127.0.0.1:$CT" "$U10" &
		pids+=("$!")
	done
	for i in "${pids[@]}"; do wait "$i" || bad=1; done
	return $bad
}
check "forward, threads = 3 and fast_open: 3 concurrent 10 MB downloads, intact" fo_fetch
zfetch() { # both ends gzip (compress_threshold = 1024): text up, text and random bytes down
	fetch "$SHAZ" "$WORK/o.z1" --socks5-hostname "127.0.0.1:$CZ" "$UZ" &&
		fetch "$SHA10" "$WORK/o.z2" --socks5-hostname "127.0.0.1:$CZ" "$U10" &&
		quiet "${ST[@]}" echo --proxy "$CZ" --port "$EP" --size 10000000 --text
}
check "gzip on send, both ends: 10 MB of text and 10 MB of random bytes down, 10 MB of text echoed, intact" zfetch
# (the strict peer, which also sends gzip to sf, runs later in this script)
both_gzip() { grep -q "the peer sends gzip Data" "$WORK/sf.log" && grep -q "the peer sends gzip Data" "$WORK/cz.log"; }
check "gzip on send, both ends: each end received gzip Data (their -v logs say so)" both_gzip
check "no gzip where it is not configured: the forward client's WebSocket carries none" \
	bash -c "! grep -q gzip '$WORK/cf.log'"
check "the reverse server cannot reach the target itself (its router blocks: REP 4 to its forward client)" \
	quiet "${ST[@]}" connect --proxy "$CB" --port "$HTTP_PORT" --expect 4

# Two providers on one token (one URL-query auth, one binary Auth): a few
# flows go round-robin, so each provider's log shows flows.
ok_rr=0
for i in 1 2 3 4; do
	fetch "$SHA10" "$WORK/o.rr$i" --socks5-hostname "127.0.0.1:$RR" "$U10" && ok_rr=$((ok_rr + 1))
done
check "round-robin: 4 fetches through a token with two providers, all intact" [ $ok_rr = 4 ]
both_served() {
	grep -q "prov: 127.0.0.1:$HTTP_PORT -> direct" "$WORK/pa.log" &&
		grep -q "prov: 127.0.0.1:$HTTP_PORT -> direct" "$WORK/pb.log"
}
check "round-robin: both providers served flows" both_served

# A download through a reverse port whose provider comes a second later:
# the request waits for it (§11) instead of being refused.
curl -sS --max-time 20 -o "$WORK/o.late" --socks5-hostname "127.0.0.1:$LS" "$U10" 2>"$WORK/curl.late" &
LATE_PID=$!
PIDS+=("$LATE_PID")
sleep 1
provider_conf "$WORK/pl.toml" "ws://127.0.0.1:$WSR/socket/l" ltok
tb pl "$WORK/pl.toml"
wait "$LATE_PID"
check "a request waiting on a reverse port is served by a provider that arrives 1 s later, intact" \
	[ $? = 0 -a "$(sha "$WORK/o.late")" = "$SHA10" ]

# ---- UDP ----
# fd baselines: every association and channel below must give its sockets
# back (the egress side's UDP socket included, on the server and the provider)
declare -A FD0
for n in sf cf p1; do FD0[$n]=$(fd_count "$(pid_of $n)"); done
check "UDP echo through the forward tunnel (client's SOCKS5)" \
	quiet "${ST[@]}" udp-echo --proxy "$CF" --port "$UEP" --count 30 --size 1200
check "UDP echo through the reverse tunnel (server's SOCKS5, a provider)" \
	quiet "${ST[@]}" udp-echo --proxy "$RS" --port "$UEP" --count 30 --size 1200

# ---- TCP echo, refusals, many channels, half-close ----
check "forward: a refused target gets REP 4 (ConnectResponse failure, §5)" \
	quiet "${ST[@]}" connect --proxy "$CF" --port "$CLOSED" --expect 4
check "forward: UDP to a domain target (resolved by the server)" \
	quiet "${ST[@]}" udp-echo --proxy "$CF" --host localhost --port "$UEP" --count 5
check "300 concurrent channels on one WebSocket, each echoing" \
	quiet "${ST[@]}" many --proxy "$CF" --port "$EP" --count 300
fds_back() {
	local i n bad
	for i in $(seq 100); do
		bad=0
		for n in sf cf p1; do
			[ "$(fd_count "$(pid_of $n)")" -le "${FD0[$n]}" ] || bad=1
		done
		[ $bad = 0 ] && return 0
		sleep 0.05
	done
	for n in sf cf p1; do echo "# fds of $n: ${FD0[$n]} -> $(fd_count "$(pid_of $n)")"; done
	return 1
}
check "after the UDP associations and the 300 channels, the fd counts of the server, the client and the provider return to their baselines" fds_back
check "TCP echo, 4 MB both ways at once through the forward tunnel" \
	quiet "${ST[@]}" echo --proxy "$CF" --port "$EP" --size 4000000
# §4.3: the wire has no half-close. The client's FIN becomes Disconnect; the
# server shuts the target's write side and drops what comes back, so the
# response is lost: assert a prompt close and no corrupt byte.
t0=$(date +%s%N)
quiet "${ST[@]}" halfclose --proxy "$CF" --port "$HCP" --size 100000 --allow-loss
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "half-close (no half-close on the wire, §4.3): closed promptly (${ms} ms), no corrupt byte" \
	[ $rc = 0 -a $ms -lt 3000 ]
grep -q 'with 0 of' "$WORK/cmd.log" && echo "# half-close: the response after the client's FIN was lost (as §4.3 says)"

# ---- wss ----
if [ $HAVE_TLS = 1 ]; then
	wait_log "$WORK/w1.log" 'authenticated' 5
	check "wss: ca_file verifies the server; 10 MB intact" \
		fetch "$SHA10" "$WORK/o.w1" --socks5-hostname "127.0.0.1:$W1" "$U10"
	check "wss with another CA: the client logs the certificate rejection" \
		wait_log "$WORK/w2.log" 'tls: certificate of 127.0.0.1 rejected' 5
	check "wss with another CA: the client never authenticates" \
		bash -c "! grep -q authenticated '$WORK/w2.log'"
	wait_log "$WORK/w3.log" 'authenticated' 5
	check "wss insecure = true with another CA: works (binary Auth); 10 MB intact" \
		fetch "$SHA10" "$WORK/o.w3" --socks5-hostname "127.0.0.1:$W3" "$U10"
else
	echo "ok - wss # SKIP needs CONFIG_TLS and openssl"
fi

# ---- wrong token ----
check "wrong token: the client logs the refusal" wait_log "$WORK/x1.log" 'authentication failed: invalid token' 5
for _ in $(seq 100); do alive "$(pid_of x1)" || break; sleep 0.05; done
if alive "$(pid_of x1)"; then
	notok "wrong token: the client exits"
else
	wait "$(pid_of x1)"
	rc=$?
	check "wrong token: the client exits with a non-zero status ($rc)" [ $rc -ne 0 ]
fi
wait_log "$WORK/x2.log" 'authentication failed: invalid token' 5
sleep 0.5
check "wrong token with retry_auth = true: the client logs the refusal and keeps running" \
	bash -c "grep -q 'authentication failed: invalid token' '$WORK/x2.log' && kill -0 $(pid_of x2)"
check "a client whose URL path is not /socket logs the refused upgrade (HTTP 404) and retries" \
	bash -c "grep -q 'upgrade refused with HTTP 404' '$WORK/x3.log' && grep -q 'reconnecting in' '$WORK/x3.log'"
check "the server logged the refusal" wait_log "$WORK/sf.log" 'authentication failed: invalid token' 3

# ---- HTTP on the server's port (§2.1) ----
code=$(curl -sS --max-time 5 -o "$WORK/root.txt" -w '%{http_code}' "http://127.0.0.1:$WSF/")
check "GET / gives 200 and 'LinkSocks <ver> is running...'" \
	[ "$code" = 200 -a "$(grep -Ec '^LinkSocks v[0-9.]+ is running' "$WORK/root.txt")" = 1 ]
check "GET /socket without an upgrade gives 400" \
	[ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WSF/socket")" = 400 ]
check "GET /nope gives 404" \
	[ "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WSF/nope")" = 404 ]

# ---- an independent strict WebSocket peer ----
if [ $HAVE_WS_PY = 1 ]; then
	check "python3-websockets client, binary Auth on /socket/x: Connect, fragmented and gzip Data, Disconnect" \
		quiet timeout 30 "${PEER[@]}" client --url "ws://127.0.0.1:$WSF/socket/x" --token tok123 \
		--echo-port "$EP" --closed-port "$CLOSED"
	check "python3-websockets client against a compressing listener: our gzip Data decoded by Python's gzip" \
		quiet timeout 30 "${PEER[@]}" client --url "ws://127.0.0.1:$WSZ/socket/x" --token tok123 \
		--echo-port "$EP" --closed-port "$CLOSED" --expect-gzip
	check "python3-websockets client, URL-query auth on /socket: the same exchange" \
		quiet timeout 30 "${PEER[@]}" client --url "ws://127.0.0.1:$WSF/socket" --url-auth --token tok123 \
		--echo-port "$EP" --closed-port "$CLOSED"
	check "python3-websockets client, wrong token: AuthResponse 'invalid token', then Close 1008 (§11)" \
		quiet timeout 30 "${PEER[@]}" badauth --url "ws://127.0.0.1:$WSF/socket/x" --token nope --close-code 1008
	check "python3-websockets client, a reverse token asking for the forward role: refused" \
		quiet timeout 30 "${PEER[@]}" badauth --url "ws://127.0.0.1:$WSR/socket" --url-auth --token rtok
	check "python3-websockets client, a forward token asking for the provider role (binary Auth): refused" \
		quiet timeout 30 "${PEER[@]}" badauth --url "ws://127.0.0.1:$WSF/socket/r" --token tok123 --reverse

	# Our forward client against the strict peer as a server (it echoes
	# Data itself, TCP and UDP, and pings every second).
	"${PEER[@]}" server --token tok123 --mode egress --seconds 60 >"$WORK/pe.log" 2>&1 &
	PIDS+=("$!")
	wait_log "$WORK/pe.log" '^port ' 5
	PE=$(sed -n 's/^port //p' "$WORK/pe.log")
	CP=$(free_port)
	client_conf "$WORK/cp.toml" "$CP" "url = \"ws://127.0.0.1:$PE\"
token = \"tok123\""
	tb cp "$WORK/cp.toml"
	wait_port "$CP" && wait_log "$WORK/cp.log" 'authenticated' 5
	check "our client against a python3-websockets server: URL auth, 2 MB echoed through SOCKS5" \
		quiet "${ST[@]}" echo --proxy "$CP" --port 7 --size 2000000
	check "our client against a python3-websockets server: UDP echoed" \
		quiet "${ST[@]}" udp-echo --proxy "$CP" --host 192.0.2.1 --port 9 --count 10 --size 800
	check "our client against a python3-websockets server: the peer saw URL auth and no error" \
		bash -c "grep -q 'url auth: ok reverse=false' '$WORK/pe.log' && ! grep -q '^error' '$WORK/pe.log'"

	# Our provider against the strict peer as a server that opens channels.
	"${PEER[@]}" server --token rtok --mode opener --echo-port "$EP" --udp-echo-port "$UEP" --seconds 20 \
		>"$WORK/po.log" 2>&1 &
	PO_PID=$!
	PIDS+=("$PO_PID")
	wait_log "$WORK/po.log" '^port ' 5
	PO=$(sed -n 's/^port //p' "$WORK/po.log")
	provider_conf "$WORK/pp.toml" "ws://127.0.0.1:$PO/socket/p" rtok
	tb pp "$WORK/pp.toml"
	wait "$PO_PID"
	rc=$?
	sed 's/^/# /' "$WORK/po.log"
	check "our provider against a python3-websockets server: binary Auth, TCP and UDP channels echoed" \
		[ $rc = 0 ]
	kill "$(pid_of pp)" "$(pid_of cp)" 2>/dev/null
else
	echo "ok - strict WebSocket peer # SKIP python3-websockets is missing"
fi

# ---- provider killed mid-transfer ----
# A rate-limited download through the ktok port; the provider is killed -9
# halfway. curl must fail soon (not at its --max-time), the server stays up,
# a provider started afterwards serves a new download.
KA=alice:s3cret@127.0.0.1:$KS
curl -sS --max-time 40 --limit-rate 5M -o "$WORK/o.kill" --socks5-hostname "$KA" "$U200" \
	2>"$WORK/curl.kill" &
CURL_PID=$!
PIDS+=("$CURL_PID")
for _ in $(seq 100); do
	[ "$(stat -c %s "$WORK/o.kill" 2>/dev/null || echo 0)" -gt 5000000 ] && break
	sleep 0.05
done
disown "$(pid_of pk)"
kill -9 "$(pid_of pk)"
t0=$(date +%s%N)
for _ in $(seq 400); do alive "$CURL_PID" || break; sleep 0.05; done
ms=$((($(date +%s%N) - t0) / 1000000))
if alive "$CURL_PID"; then
	notok "provider killed: curl fails within 20 s"
else
	wait "$CURL_PID"
	rc=$?
	echo "# provider killed: curl ended ${ms} ms later with status $rc after $(stat -c %s "$WORK/o.kill") bytes"
	# What the provider sent before dying is still delivered (it sits in
	# kernel buffers at the reader's 5 MB/s), then the connection ends.
	check "provider killed mid-transfer: the SOCKS client gets an error soon, not at --max-time (${ms} ms)" \
		[ $rc -ne 0 -a $ms -lt 15000 ]
fi
check "the server is still running" alive "$(pid_of sr)"
check "the server logged the provider's departure" wait_log "$WORK/sr.log" 'provider for token ktok.* left' 5
tb pk2 "$WORK/pk.toml"
wait_log "$WORK/pk2.log" 'authenticated' 5
check "a provider started afterwards serves a new download (user/pass on the reverse port), intact" \
	fetch "$SHA10" "$WORK/o.k2" --socks5-hostname "$KA" "$U10"
check "the reverse port refuses a wrong password" \
	quiet "${ST[@]}" connect --proxy "$KS" --port "$HTTP_PORT" --user alice --pw nope --expect auth-failed

# The background REP 3 requests (started about 20 s ago).
for p in "${REP3_PIDS[@]}"; do wait "$p"; done
sed 's/^/# /' "$WORK"/rep3.*
rep3_ok() { grep -q '^rep=3' "$1" && awk '/^rc/ {exit !($2 == 0 && $4 >= 9000 && $4 < 13000)}' "$1"; }
check "reverse port without a provider: REP 3 after the 10 s wait" rep3_ok "$WORK/rep3.ns"
[ $HAVE_TLS = 1 ] && check "client without a WebSocket (wrong CA): REP 3 after the 10 s wait" rep3_ok "$WORK/rep3.w2"

# ---- server restart: providers and clients reconnect by themselves ----
disown "$(pid_of sr)"
kill -9 "$(pid_of sr)"
sleep 0.2
tb sr2 "$WORK/sr.toml" -v
wait_port "$WSR"
# (pk2 may reconnect within a second of its first line, which the logger
# then suppresses: it is checked by a download instead.)
reconnected() {
	local f
	for f in p1 pa pb cb; do wait_log "$WORK/$f.log" 'authenticated' 8 2 || return 1; done
}
check "server restarted: the providers and the client reconnect by themselves (backoff 1 s, jitter)" \
	reconnected
after_restart() {
	fetch "$SHA10" "$WORK/o.rs1" --socks5-hostname "127.0.0.1:$RS" "$U10" &&
		fetch "$SHA10" "$WORK/o.rs2" --socks5-hostname "127.0.0.1:$RR" "$U10" &&
		fetch "$SHA10" "$WORK/o.rs3" --socks5-hostname "$KA" "$U10" &&
		quiet "${ST[@]}" connect --proxy "$CB" --port "$HTTP_PORT" --expect 4
}
check "server restarted: downloads through the three reverse ports work again, intact" after_restart

# ---- 200 MB to a slow reader, with bounded memory ----
# curl reads at 20 MB/s while the target sends as fast as loopback allows:
# the tunnel must pause its sources instead of buffering (§11).
rss_watch() { # rss_watch PID OUT: peak VmRSS in kB until $WORK/rss.stop exists
	local peak=0 v
	while [ ! -e "$WORK/rss.stop" ]; do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
		echo "$peak" >"$2"
		sleep 0.1
	done
}
rm -f "$WORK/rss.stop"
rss_watch "$(pid_of sf)" "$WORK/rss.sf" &
RW1=$!
rss_watch "$(pid_of cf)" "$WORK/rss.cf" &
RW2=$!
PIDS+=("$RW1" "$RW2")
t0=$(date +%s%N)
curl -sS --max-time 40 --limit-rate 20M --socks5-hostname "127.0.0.1:$CF" "$U200" | sha256sum | cut -d' ' -f1 \
	>"$WORK/sha200" &
CURL_PID=$!
sleep 2 # the slow channel now holds the WebSocket paused most of the time
t1=$(date +%s%N)
quiet "${ST[@]}" echo --proxy "$CF" --port "$EP" --size 1000000 --timeout 20
HOL_RC=$?
HOL_MS=$((($(date +%s%N) - t1) / 1000000))
wait "$CURL_PID"
got=$(cat "$WORK/sha200")
ms=$((($(date +%s%N) - t0) / 1000000))
touch "$WORK/rss.stop"
wait "$RW1" "$RW2" 2>/dev/null
RSS_SF=$(cat "$WORK/rss.sf") RSS_CF=$(cat "$WORK/rss.cf")
echo "# 200 MB at 20 MB/s in ${ms} ms; peak VmRSS: server ${RSS_SF} kB, client ${RSS_CF} kB"
check "200 MB through the forward tunnel to a slow reader (curl --limit-rate 20M), intact" [ "$got" = "$SHA200" ]
if [ $SAN = 1 ]; then
	echo "ok - peak VmRSS below 64 MB # SKIP a sanitizer build (ASan's quarantine holds freed memory)"
else
	check "peak VmRSS during it stays below 64 MB (server ${RSS_SF} kB, client ${RSS_CF} kB)" \
		[ "$RSS_SF" -lt 65536 -a "$RSS_CF" -lt 65536 ]
fi
echo "# head-of-line: a 1 MB echo on the same WebSocket during the slow transfer took ${HOL_MS} ms"
check "head-of-line: another flow on the same WebSocket still completes during the slow transfer" \
	[ "$HOL_RC" = 0 ]

all_alive() { alive "$(pid_of sf)" && alive "$(pid_of cf)" && alive "$(pid_of sr2)" && alive "$(pid_of p1)"; }
check "every tunnelbox is still running" all_alive
if [ $HAVE_WS_PY = 1 ]; then
	check "python3-websockets client: a gzip bomb (33 MiB inflated) drops its channel, not the WebSocket" \
		quiet timeout 40 "${PEER[@]}" bomb --url "ws://127.0.0.1:$WSF/socket/x" --token tok123 --echo-port "$EP"
	check "the server is still running after the gzip bomb" alive "$(pid_of sf)"
fi
# A clean stop: SIGTERM lets a download in progress finish (the drain),
# then ends each role with status 0. An idle WebSocket does not hold a
# server's stop: cb stays connected to sr2 on purpose. In a sanitizer
# build, LeakSanitizer sees the whole teardown.
head -c 41943040 "$WORK/www/b200" >"$WORK/www/b40"
curl -sS --max-time 20 --limit-rate 20M -o "$WORK/o.drain" --socks5-hostname "127.0.0.1:$CF" \
	"http://127.0.0.1:$HTTP_PORT/b40" 2>"$WORK/curl.drain" &
DRAIN_CURL=$!
PIDS+=("$DRAIN_CURL")
sleep 0.5
STOP="sf cf ct sr2 p1 pa pb pk2 pl x2 x3"
[ $HAVE_TLS = 1 ] && STOP="$STOP w1 w2 w3"
stops() {
	local n pid bad=0 i
	for n in $STOP; do
		pid=$(pid_of $n)
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
	done
	for n in $STOP; do
		pid=$(pid_of $n)
		[ -n "$pid" ] || continue
		for i in $(seq 160); do alive "$pid" || break; sleep 0.05; done
		if alive "$pid"; then
			echo "# $n did not stop within 8 s"
			bad=1
		else
			wait "$pid"
			i=$?
			[ $i = 0 ] || { echo "# $n exited with status $i"; bad=1; }
		fi
	done
	return $bad
}
t0=$(date +%s%N)
check "SIGTERM stops the servers, clients and providers, status 0" stops
echo "# stopped in $((($(date +%s%N) - t0) / 1000000)) ms"
wait "$DRAIN_CURL"
check "SIGTERM during a download: the download completes intact (drained)" \
	[ $? = 0 -a "$(sha "$WORK/o.drain")" = "$(sha "$WORK/www/b40")" ]
if [ "$FAILS" -gt 0 ]; then
	for f in "$WORK"/*.log; do
		echo "# ---- $(basename "$f") (last lines)"
		tail -15 "$f" | sed 's/^/# /'
	done
fi
finish
