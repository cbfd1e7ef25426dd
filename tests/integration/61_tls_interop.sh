#!/bin/bash
# TLS filter against independent peers on loopback: our client (lib/tls_echo.c)
# against `openssl s_server`, and `openssl s_client` and curl against our
# server. Certificates are made here with openssl (test-only, in $WORK).
. "$(dirname "$0")/lib/common.sh"

need_config TLS
if ! command -v openssl >/dev/null; then
	echo "# openssl (Debian package openssl) is missing"
	exit 77
fi

# ---- the C peer, built against this build's library (and its sanitizers) ----
read -ra SAN <<<"$(grep -o -- '-fsanitize=[^ ]*' "$OUT/.flags" 2>/dev/null | head -1)"
ECHO=$WORK/tls_echo
if ! gcc -std=gnu11 -O1 -g "${SAN[@]}" -I"$ROOT/include" -I"$OUT/include" -D_GNU_SOURCE \
	"$HERE/tls_echo.c" "$OUT/libtb.a" -lmbedtls -lmbedx509 -lmbedcrypto -lcares -o "$ECHO" 2>"$WORK/cc.log"; then
	cat "$WORK/cc.log"
	notok "tls_echo builds against $OUT/libtb.a"
	finish
fi

# ---- certificates: a CA, a server certificate for localhost, another CA ----
(mkcerts) >"$WORK/certs.log" 2>&1 || { cat "$WORK/certs.log"; notok "test certificates"; finish; }
C=$WORK

# ---- our client against openssl s_server -rev ----
# start_s_server LOG: one connection, ALPN http/1.1; sets SP. It says ACCEPT
# when it listens (a probe connection would use up its one accept).
start_s_server() {
	SP=$(free_port)
	openssl s_server -accept "127.0.0.1:$SP" -cert "$C/srv.pem" -key "$C/srv.key" -rev -naccept 1 \
		-alpn http/1.1 </dev/null >"$1" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 200); do grep -qs '^ACCEPT' "$1" && return 0; sleep 0.05; done
	return 1
}
client() { # client LOG NAME [opts]: our client against $SP
	local log=$1 name=$2
	shift 2
	timeout 30 "$ECHO" client "127.0.0.1:$SP" "$name" --seconds 20 "$@" >"$log" 2>&1
}

start_s_server "$WORK/s1.log"
client "$WORK/c1.log" localhost --ca "$C/ca.pem" --alpn h2,http/1.1 --lines 16384
rc=$?
check "our client verifies openssl s_server and gets 16384 reversed lines (~1 MiB) back" \
	[ $rc -eq 0 -a "$(grep -c '^lines 16384$' "$WORK/c1.log")" = 1 ]
check "ALPN: client offers h2,http/1.1, s_server picks http/1.1" grep -q '^alpn http/1.1$' "$WORK/c1.log"
check "s_server saw the offer and the choice" grep -q 'ALPN protocols selected: http/1.1' "$WORK/s1.log"
[ $rc -eq 0 ] || { cat "$WORK/c1.log"; tail -5 "$WORK/s1.log"; }

start_s_server "$WORK/s2.log"
client "$WORK/c2.log" localhost --ca "$C/other.pem" --lines 1
rc=$?
check "our client refuses s_server's certificate under the wrong CA" \
	[ $rc -eq 1 -a "$(grep -c 'certificate of localhost rejected' "$WORK/c2.log")" = 1 ]

start_s_server "$WORK/s3.log"
client "$WORK/c3.log" not-localhost.test --ca "$C/ca.pem" --lines 1
rc=$?
check "our client refuses s_server under a name its certificate lacks" \
	[ $rc -eq 1 -a "$(grep -c 'certificate of not-localhost.test rejected' "$WORK/c3.log")" = 1 ]

start_s_server "$WORK/s4.log"
client "$WORK/c4.log" localhost --insecure --ca "$C/other.pem" --lines 10
check "our client with insecure talks to s_server despite the wrong CA" grep -q '^lines 10$' "$WORK/c4.log"

start_s_server "$WORK/s5.log"
client "$WORK/c5.log" 127.0.0.1 --ca "$C/ca.pem" --lines 10
check "our client verifies s_server by its IP address SAN" grep -q '^lines 10$' "$WORK/c5.log"

# ---- openssl s_client and curl against our server ----
# start_echo LOG [opts]: our server; sets EP.
start_echo() {
	local log=$1
	shift
	"$ECHO" server "$C/srv.pem" "$C/srv.key" --alpn http/1.1 --seconds 60 -v "$@" >"$log.port" 2>"$log" &
	PIDS+=("$!")
	for _ in $(seq 100); do [ -s "$log.port" ] && break; sleep 0.05; done
	EP=$(sed -n 's/^port //p' "$log.port")
	[ -n "$EP" ]
}
s_client() { # s_client [opts]: to our server, output in $WORK/sc.out
	timeout 20 openssl s_client -connect "127.0.0.1:$EP" -servername localhost -CAfile "$C/ca.pem" \
		-verify_return_error "$@" >"$WORK/sc.out" 2>"$WORK/sc.err"
}

start_echo "$WORK/e1.log" || notok "our echo server starts"
(printf 'hello from s_client\n'; sleep 1) | s_client -alpn h2,http/1.1
rc=$?
check "openssl s_client verifies our server and gets its line echoed" \
	[ $rc -eq 0 -a "$(grep -c '^hello from s_client$' "$WORK/sc.out")" = 1 ]
s_client_saw() {
	grep -q 'Verify return code: 0 (ok)' "$WORK/sc.out" && grep -q 'ALPN protocol: http/1.1' "$WORK/sc.out" &&
		grep -q 'Protocol *: TLSv1.2' "$WORK/sc.out"
}
check "s_client: verify return code 0, ALPN http/1.1, TLS 1.2" s_client_saw
sleep 0.2
check "our server took s_client's close_notify (no truncation logged)" \
	[ "$(grep -c 'conn: eof' "$WORK/e1.log")" = 1 -a "$(grep -c 'without close_notify' "$WORK/e1.log")" = 0 ]

head -c 1048576 /dev/urandom >"$WORK/blob"
start_echo "$WORK/e2.log" --close-after 1048576 || notok "our echo server starts"
s_client -quiet <"$WORK/blob" # -quiet: ign_eof, our server ends it
rc=$?
check "1 MiB through s_client -> our server -> s_client, ended by our close_notify" \
	[ $rc -eq 0 -a "$(sha "$WORK/sc.out")" = "$(sha "$WORK/blob")" ]
check "s_client saw no EOF without close_notify" [ "$(grep -ci 'unexpected eof' "$WORK/sc.err")" = 0 ]

if command -v curl >/dev/null; then
	start_echo "$WORK/e3.log" --http "$WORK/blob" || notok "our https server starts"
	v=$(timeout 20 curl -sS --cacert "$C/ca.pem" -o "$WORK/curl.out" -w '%{http_version}' \
		"https://localhost:$EP/blob" 2>"$WORK/curl.err")
	check "curl --cacert verifies our server and downloads 1 MiB intact (HTTP/$v)" \
		[ "$(sha "$WORK/curl.out" 2>/dev/null)" = "$(sha "$WORK/blob")" -a "$v" = 1.1 ]
	timeout 20 curl -sS --cacert "$C/other.pem" -o /dev/null "https://localhost:$EP/" 2>/dev/null
	check "curl with the other CA refuses our server (exit 60)" [ $? -eq 60 ]
	check "our server logged curl's session with ALPN http/1.1" grep -q 'alpn http/1.1' "$WORK/e3.log"
else
	echo "ok - curl checks # SKIP curl is not installed"
fi
finish
