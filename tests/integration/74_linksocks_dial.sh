#!/bin/bash
# The LinkSocks client's WebSocket dial (spec/linksocks.md §2.2), on loopback:
# (a) through an HTTP CONNECT proxy (lib/dialtool.py, which counts CONNECTs):
#     the TOML `proxy` key, proxy credentials, a SOCKS5 proxy (a tunnelbox),
#     and the CLI's reading of HTTP_PROXY/HTTPS_PROXY/NO_PROXY and -E, as
#     Go's http.ProxyFromEnvironment;
# (b) redirects of the upgrade (301/302/307/308, absolute ws:// and http://,
#     absolute-path and relative Locations, chains of 3 and 5), with the auth
#     style of the final path; a chain of 6 fails and is retried with backoff;
# (c) wss through the proxy, and a ws:// URL redirected to wss://.
# Transfers are checked by SHA-256.
. "$(dirname "$0")/lib/common.sh"

need_config LINKSOCKS
need_config CONN_UPSTREAM
HAVE_TLS=0
has_config TLS && command -v openssl >/dev/null && HAVE_TLS=1
DT=("$PY" "$HERE/dialtool.py")

alive() { kill -0 "$1" 2>/dev/null; }
# wait_log FILE REGEX [SECONDS] [COUNT]: until FILE has COUNT matching lines.
wait_log() {
	local f=$1 re=$2 limit=${3:-5} n=${4:-1} i
	for ((i = 0; i < limit * 20; i++)); do
		[ "$(grep -Ec -- "$re" "$f" 2>/dev/null)" -ge "$n" ] && return 0
		sleep 0.05
	done
	return 1
}
count() { grep -Ec -- "$2" "$WORK/$1" 2>/dev/null; } # count LOG REGEX
# client_conf FILE SOCKS_PORT URL [extra connector lines]: a forward client.
client_conf() {
	cat >"$1" <<EOC
[[listener]]
name = "socks"
proto = "socks5"
endpoint = "127.0.0.1:$2"
router = "main"

[[connector]]
name = "linksocks"
proto = "linksocks"
url = "$3"
token = "tok"
${4:-}

[[router]]
name = "main"
default = "linksocks"
EOC
}
# up NAME SOCKS_PORT: the client NAME authenticated and its SOCKS5 port is open.
up() { wait_log "$WORK/$1.log" 'authenticated' 15 "${3:-1}" && wait_port "$2" 5; }
# through NAME SOCKS_PORT DESC [WEBSOCKETS]: a download through the client, checked.
through() {
	if up "$1" "$2" "${4:-1}" && fetch_via "$2" "$WORK/$1.out"; then
		ok "$3"
	else
		notok "$3"
		show "$1.log"
	fi
}

if [ $HAVE_TLS = 1 ] && ! (mkcerts) >"$WORK/certs.log" 2>&1; then
	show certs.log
	notok "test certificates"
	HAVE_TLS=0
fi

serve_blob 10000000

# ---- the server: ws, and wss when built with TLS ----
WP=$(free_port) WSS=$(free_port)
cat >"$WORK/srv.toml" <<EOC
[[listener]]
name = "ls"
proto = "linksocks"
endpoint = "127.0.0.1:$WP"
router = "main"
tokens = ["tok"]

[[connector]]
name = "direct"
proto = "direct"

[[router]]
name = "main"
default = "direct"
EOC
if [ $HAVE_TLS = 1 ]; then
	cat >>"$WORK/srv.toml" <<EOC

[[listener]]
name = "lss"
proto = "linksocks"
endpoint = "127.0.0.1:$WSS"
router = "main"
tokens = ["tok"]
tls_cert = "$WORK/srv.pem"
tls_key = "$WORK/srv.key"
EOC
fi
start srv.log "$TB" -c "$WORK/srv.toml"
SRV=$LAST_PID
wait_port "$WP" 10 || { notok "the server starts"; show srv.log; finish; }

# ---- the proxies ----
PP=$(free_port) PA=$(free_port)
start proxy.out "${DT[@]}" proxy --port "$PP" --log "$WORK/proxy.log" --map example.test=127.0.0.1
start proxya.out "${DT[@]}" proxy --port "$PA" --log "$WORK/proxya.log" --auth 'alice:pa:ss'
wait_port "$PP" 10 && wait_port "$PA" 10 || { notok "the test proxies start"; finish; }

# ==== (a) the TOML proxy key ====
SP=$(free_port)
client_conf "$WORK/c1.toml" "$SP" "ws://127.0.0.1:$WP" "threads = 2
proxy = \"http://127.0.0.1:$PP\""
start c1.log "$TB" -c "$WORK/c1.toml"
C1=$LAST_PID
through c1 "$SP" "proxy: 10 MB through the client's SOCKS5, its two WebSockets dialled through the HTTP proxy" 2
n=$(count proxy.log "^CONNECT 127\.0\.0\.1:$WP\$")
check "proxy: exactly one CONNECT per WebSocket (2 WebSockets, saw $n)" [ "$n" = 2 ]
check "proxy: the client logs that its dial goes through the proxy" \
	grep -q "dial goes through the http proxy 127.0.0.1:$PP" "$WORK/c1.log"
kill "$C1"

# credentials from the URL, %-decoded: Proxy-Authorization Basic alice:pa:ss
SP=$(free_port)
client_conf "$WORK/c2.toml" "$SP" "ws://127.0.0.1:$WP" "proxy = \"http://alice:pa%3Ass@127.0.0.1:$PA\""
start c2.log "$TB" -c "$WORK/c2.toml"
C2=$LAST_PID
through c2 "$SP" "proxy: credentials in the proxy URL are sent (Proxy-Authorization Basic)"
check "proxy: the credentials never reach the log" bash -c "! grep -q 'pa%3Ass\|pa:ss' '$WORK/c2.log'"
kill "$C2"

# wrong credentials: 407, the client says so and keeps retrying
SP=$(free_port)
client_conf "$WORK/c3.toml" "$SP" "ws://127.0.0.1:$WP" "proxy = \"http://alice:nope@127.0.0.1:$PA\""
start c3.log "$TB" -c "$WORK/c3.toml"
C3=$LAST_PID
if wait_log "$WORK/proxya.log" '^DENIED' 10 2 && alive "$C3" && grep -q "through the http proxy 127.0.0.1:$PA: denied" "$WORK/c3.log"; then
	ok "proxy: refused credentials (407) fail the dial, which is retried; the client stays up"
else
	notok "proxy: refused credentials (407) fail the dial, which is retried; the client stays up"
	show c3.log
fi
kill "$C3"

# a SOCKS5 proxy: a tunnelbox with a socks5 listener
S5=$(free_port)
simple_config "$WORK/s5.toml" socks5 "$S5"
start s5.log "$TB" -c "$WORK/s5.toml"
wait_port "$S5" 10
SP=$(free_port)
client_conf "$WORK/c4.toml" "$SP" "ws://127.0.0.1:$WP" "proxy = \"socks5://127.0.0.1:$S5\""
start c4.log "$TB" -c "$WORK/c4.toml"
C4=$LAST_PID
through c4 "$SP" "proxy: socks5:// works too (through a tunnelbox SOCKS5 listener)"
kill "$C4"

check "proxy: an https:// proxy is refused with a clear error" bash -c "
	printf '[[listener]]\nname=\"s\"\nproto=\"socks5\"\nendpoint=\"127.0.0.1:1\"\nrouter=\"r\"\n[[connector]]\nname=\"l\"\nproto=\"linksocks\"\nurl=\"ws://h\"\nproxy=\"https://p:1\"\n[[router]]\nname=\"r\"\ndefault=\"l\"\n' >'$WORK/bad.toml'
	! '$TB' -c '$WORK/bad.toml' --check >'$WORK/bad.out' 2>&1 && grep -q 'https:// proxy is not supported' '$WORK/bad.out'"
check "proxy: proxy = \"\" means none" bash -c "
	sed 's|^proxy = .*|proxy = \"\"|' '$WORK/c1.toml' >'$WORK/none.toml' && '$TB' -c '$WORK/none.toml' --check >/dev/null 2>&1"

# ==== (a) the environment, read by the CLI (Go's ProxyFromEnvironment) ====
# cfg VAR=VALUE... -- ARGS: the client's printed configuration, with only
# the given proxy variables set.
cfg() {
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy -u NO_PROXY -u no_proxy -u REQUEST_METHOD \
		"${envs[@]}" "$TB" linksocks client "$@" --print-config 2>"$WORK/cfg.err"
}
proxy_is() { # proxy_is WANT VAR=VALUE... -- ARGS ("" for none)
	local want=$1 got
	shift
	got=$(cfg "$@" | sed -n 's/^proxy = "\(.*\)"$/\1/p')
	[ "$got" = "$want" ] || { echo "# got '$got', want '$want'"; return 1; }
}
H=http://127.0.0.1:$PP
check "env: ws://example.test uses HTTP_PROXY" proxy_is "$H" HTTP_PROXY="$H" -- -u ws://example.test:1
check "env: http_proxy (lower case) alone is used" proxy_is "$H" http_proxy="$H" -- -u ws://example.test:1
check "env: HTTP_PROXY wins over http_proxy when both are set (Go's getEnvAny order)" \
	proxy_is "$H" HTTP_PROXY="$H" http_proxy=http://other:1 -- -u ws://example.test:1
check "env: an empty HTTP_PROXY lets http_proxy apply" \
	proxy_is "$H" HTTP_PROXY= http_proxy="$H" -- -u ws://example.test:1
check "env: wss:// uses HTTPS_PROXY, not HTTP_PROXY" \
	proxy_is "http://s:3" HTTP_PROXY="$H" HTTPS_PROXY=s:3 -- -u wss://example.test
check "env: wss:// without HTTPS_PROXY is direct" proxy_is "" HTTP_PROXY="$H" -- -u example.test
check "env: a bare host means http://, port 80 as Go" proxy_is "http://p.test:80" HTTP_PROXY=p.test -- -u ws://example.test
check "env: socks5:// is accepted" proxy_is "socks5://127.0.0.1:1080" HTTP_PROXY=socks5://127.0.0.1 -- -u ws://example.test
check "env: never for 127.0.0.1" proxy_is "" HTTP_PROXY="$H" -- -u ws://127.0.0.1:1
check "env: never for localhost (the default URL)" proxy_is "" HTTP_PROXY="$H" --
check "env: never for [::1]" proxy_is "" HTTP_PROXY="$H" -- -u 'ws://[::1]:1'
check "env: NO_PROXY=example.test skips it" proxy_is "" HTTP_PROXY="$H" NO_PROXY=example.test -- -u ws://example.test
check "env: no_proxy=.test (a suffix) skips it" proxy_is "" HTTP_PROXY="$H" no_proxy=a.org,.test -- -u ws://x.example.test
check "env: NO_PROXY=* skips it" proxy_is "" HTTP_PROXY="$H" NO_PROXY='*' -- -u ws://example.test
check "env: NO_PROXY with another port does not" \
	proxy_is "$H" HTTP_PROXY="$H" NO_PROXY=example.test:8080 -- -u ws://example.test:1
check "env: NO_PROXY with a CIDR" proxy_is "" HTTP_PROXY="$H" NO_PROXY=10.0.0.0/8 -- -u ws://10.1.2.3:1
check "env: -E ignores the environment" proxy_is "" HTTP_PROXY="$H" -- -E -u ws://example.test
check "env: --no-env-proxy=false keeps it" proxy_is "$H" HTTP_PROXY="$H" -- --no-env-proxy=false -u ws://example.test:1
check "env: REQUEST_METHOD (CGI) disables HTTP_PROXY (httpoxy, as Go)" \
	proxy_is "" HTTP_PROXY="$H" REQUEST_METHOD=GET -- -u ws://example.test:1
check "env: an https:// HTTPS_PROXY is a usage error (exit 2)" \
	bash -c "env -u HTTP_PROXY -u http_proxy HTTPS_PROXY=https://p '$TB' linksocks client -u example.test --print-config >/dev/null 2>&1; [ \$? = 2 ]"
check "env: the provider gets the proxy too" bash -c "
	HTTP_PROXY='$H' '$TB' linksocks provider -u ws://example.test --print-config | grep -q '^proxy = \"$H\"'"
check "env: the printed configuration passes tunnelbox --check" bash -c "
	HTTP_PROXY='http://u:p%40@127.0.0.1:1' '$TB' linksocks client -u ws://example.test --print-config >'$WORK/e.toml' &&
	'$TB' -c '$WORK/e.toml' --check >/dev/null 2>&1"

# end to end: a name that is not loopback-exempt, resolved by the proxy
SP=$(free_port)
before=$(count proxy.log "^CONNECT example\.test:$WP\$")
start c5.log env -u NO_PROXY -u no_proxy -u REQUEST_METHOD HTTP_PROXY="$H" \
	"$TB" linksocks client -t tok -u "ws://example.test:$WP" -p "$SP"
C5=$LAST_PID
through c5 "$SP" "env: linksocks client -u ws://example.test with HTTP_PROXY: the dial goes through the proxy, 10 MB intact"
n=$(count proxy.log "^CONNECT example\.test:$WP\$")
check "env: the proxy got the name, unresolved (CONNECT example.test:$WP, $((n - before)) time(s))" [ $((n - before)) = 1 ]
kill "$C5"

# ==== (b) redirects ====
RP=$(free_port)
R=ws://127.0.0.1:$RP
start redir.out "${DT[@]}" redirect --port "$RP" --log "$WORK/redir.log" --forward "127.0.0.1:$WP" \
	--rule /r301 301 "ws://127.0.0.1:$WP/socket" \
	--rule /chain/1 302 /chain/2 \
	--rule /chain/2 307 3 \
	--rule /chain/3 308 ../socket \
	--rule /bin 301 "http://127.0.0.1:$RP/socket/x" \
	--rule /five/1 301 /five/2 --rule /five/2 302 /five/3 --rule /five/3 303 /five/4 \
	--rule /five/4 307 /five/5 --rule /five/5 308 /socket \
	--rule /six/1 301 /six/2 --rule /six/2 301 /six/3 --rule /six/3 301 /six/4 \
	--rule /six/4 301 /six/5 --rule /six/5 301 /six/6 --rule /six/6 301 /socket \
	--rule /nowhere 302 'ftp://127.0.0.1/'
wait_port "$RP" 10 || { notok "the redirect server starts"; finish; }

SP=$(free_port)
client_conf "$WORK/r1.toml" "$SP" "$R/r301"
start r1.log "$TB" -c "$WORK/r1.toml"
through r1 "$SP" "redirect: 301 to an absolute ws:// URL on the real server, 10 MB intact"
check "redirect: one log line per redirect" grep -q "HTTP 301 redirect 1/5 to ws://127.0.0.1:$WP/socket" "$WORK/r1.log"
kill "$LAST_PID"

SP=$(free_port)
client_conf "$WORK/r2.toml" "$SP" "$R/chain/1"
start r2.log "$TB" -c "$WORK/r2.toml"
through r2 "$SP" "redirect: a chain of 3 (302 absolute-path, 307 relative, 308 ../socket), 10 MB intact"
check "redirect: the chain was walked in order" bash -c "
	grep -E '^GET /(chain|socket)' '$WORK/redir.log' | head -4 | cut -d'?' -f1 | tr '\n' ' ' | grep -qx 'GET /chain/1 GET /chain/2 GET /chain/3 GET /socket '"
check "redirect: the final path /socket got URL-query auth (§2.3)" grep -Eq '^GET /socket\?instance=.*&token=[0-9a-f]{64}$' "$WORK/redir.log"
check "redirect: the first request carried no auth query" bash -c "! grep -q '^GET /chain/1?' '$WORK/redir.log'"
kill "$LAST_PID"

SP=$(free_port)
client_conf "$WORK/r3.toml" "$SP" "$R/bin"
start r3.log "$TB" -c "$WORK/r3.toml"
through r3 "$SP" "redirect: 301 to http://.../socket/x (mapped to ws), binary Auth on the final path, 10 MB intact"
check "redirect: /socket/x was requested without a query (binary Auth, §2.3)" grep -qx 'GET /socket/x' "$WORK/redir.log"
kill "$LAST_PID"

SP=$(free_port)
client_conf "$WORK/r5.toml" "$SP" "$R/five/1"
start r5.log "$TB" -c "$WORK/r5.toml"
through r5 "$SP" "redirect: a chain of 5 (301, 302, 303, 307, 308) is followed"
kill "$LAST_PID"

SP=$(free_port)
client_conf "$WORK/r6.toml" "$SP" "$R/six/1"
socket_before=$(count redir.log '^GET /socket\?')
start r6.log "$TB" -c "$WORK/r6.toml"
R6=$LAST_PID
if wait_log "$WORK/r6.log" 'stopped after 5 redirects' 10 && wait_log "$WORK/redir.log" '^GET /six/1$' 10 2 &&
	wait_log "$WORK/r6.log" 'reconnecting in' 5 2 && alive "$R6"; then
	ok "redirect: a chain of 6 fails cleanly; the client retries from the configured URL with backoff and stays up"
else
	notok "redirect: a chain of 6 fails cleanly; the client retries from the configured URL with backoff and stays up"
	show r6.log
fi
check "redirect: the 6th redirect is never followed" [ "$(count redir.log '^GET /socket\?')" = "$socket_before" ]
check "redirect: a SOCKS5 request while no WebSocket is up is refused, not hung" \
	bash -c "! curl -sS --max-time 15 -o /dev/null --socks5-hostname 127.0.0.1:$SP '$URL' 2>/dev/null"
kill "$R6"

SP=$(free_port)
client_conf "$WORK/r7.toml" "$SP" "$R/nowhere"
start r7.log "$TB" -c "$WORK/r7.toml"
if wait_log "$WORK/r7.log" "redirect to 'ftp://127.0.0.1/': not an http\(s\) or ws\(s\) URL" 10 && alive "$LAST_PID"; then
	ok "redirect: a Location with another scheme fails the attempt clearly"
else
	notok "redirect: a Location with another scheme fails the attempt clearly"
	show r7.log
fi
kill "$LAST_PID"

# a redirect through the proxy: every hop is its own CONNECT
SP=$(free_port)
client_conf "$WORK/r8.toml" "$SP" "$R/r301" "proxy = \"http://127.0.0.1:$PP\""
before=$(count proxy.log "^CONNECT 127\.0\.0\.1:$RP\$")
start r8.log "$TB" -c "$WORK/r8.toml"
through r8 "$SP" "redirect + proxy: the redirected dial goes through the proxy too"
check "redirect + proxy: one CONNECT to the redirecting server" [ "$(count proxy.log "^CONNECT 127\.0\.0\.1:$RP\$")" = $((before + 1)) ]
kill "$LAST_PID"

# ==== (c) wss ====
if [ $HAVE_TLS = 1 ] && wait_port "$WSS" 5; then
	SP=$(free_port)
	client_conf "$WORK/t1.toml" "$SP" "wss://127.0.0.1:$WSS" "ca_file = \"$WORK/ca.pem\"
proxy = \"http://127.0.0.1:$PP\""
	start t1.log "$TB" -c "$WORK/t1.toml"
	through t1 "$SP" "wss through the HTTP proxy (TLS inside the CONNECT tunnel, CA verified), 10 MB intact"
	check "wss: one CONNECT to the wss port" [ "$(count proxy.log "^CONNECT 127\.0\.0\.1:$WSS\$")" = 1 ]
	kill "$LAST_PID"

	RT=$(free_port)
	start redirt.out "${DT[@]}" redirect --port "$RT" --log "$WORK/redirt.log" \
		--rule /up 302 "https://127.0.0.1:$WSS/socket"
	wait_port "$RT" 10
	SP=$(free_port)
	client_conf "$WORK/t2.toml" "$SP" "ws://127.0.0.1:$RT/up" "ca_file = \"$WORK/ca.pem\""
	start t2.log "$TB" -c "$WORK/t2.toml"
	through t2 "$SP" "redirect from ws:// to https:// (mapped to wss, TLS set up on demand), 10 MB intact"
	kill "$LAST_PID"
else
	echo "# no TLS in this build (or no openssl): wss checks skipped"
fi

check "the server is still up" alive "$SRV"
finish
