#!/bin/bash
# curl through the gateway: SOCKS5 (remote DNS), HTTP absolute-URI and
# CONNECT, mixed sniffing, username/password, and routing to `block`.
. "$(dirname "$0")/lib/common.sh"

mkdir -p "$WORK/www"
head -c 3000000 /dev/urandom >"$WORK/www/blob"
want=$(sha "$WORK/www/blob")
start_http_server "$WORK/www" || { notok "http server starts"; finish; }
URL="http://127.0.0.1:$HTTP_PORT/blob"
URL_NAME="http://localhost:$HTTP_PORT/blob"

P=$(free_port)
simple_config "$WORK/mixed.toml" mixed "$P"
start_gateway "$WORK/mixed.toml"
wait_port "$P" || { notok "gateway listens"; cat "$WORK/gw.log"; finish; }

fetch() { # fetch OUT curl-args...
	local out=$1
	shift
	curl -sS --max-time 20 -o "$out" "$@" && [ "$(sha "$out")" = "$want" ]
}
check "curl --socks5-hostname (name resolved by the gateway)" fetch "$WORK/o1" --socks5-hostname "127.0.0.1:$P" "$URL_NAME"
check "curl --socks5 (IP target)" fetch "$WORK/o2" --socks5 "127.0.0.1:$P" "$URL"
check "curl -x http:// absolute-URI forwarding" fetch "$WORK/o3" -x "http://127.0.0.1:$P" "$URL"
check "curl -p -x http:// CONNECT tunnel" fetch "$WORK/o4" -p -x "http://127.0.0.1:$P" "$URL"

# Username/password (RFC 1929) on a socks5 listener.
PA=$(free_port)
simple_config "$WORK/auth.toml" socks5 "$PA" 'auth = { user = "alice", pass = "s3cret" }'
start_gateway "$WORK/auth.toml"
wait_port "$PA" || notok "auth gateway listens"
check "socks5 with the right password" fetch "$WORK/o5" --socks5-hostname "alice:s3cret@127.0.0.1:$PA" "$URL"
check "socks5 with a wrong password is refused" \
	bash -c "! curl -sS --max-time 5 -o /dev/null --socks5-hostname 'alice:nope@127.0.0.1:$PA' '$URL' 2>/dev/null"
check "socks5 without credentials gets no acceptable method (0xFF)" \
	$PY "$HERE/sockstool.py" raw --proxy "$PA" --hex 050100 --expect 05ff

# Routing: names under .blocked.test go to `block`; curl sees a refusal.
PR=$(free_port)
cat >"$WORK/route.toml" <<EOC
[[listener]]
name = "in"
proto = "socks5"
endpoint = "127.0.0.1:$PR"
router = "main"

[[connector]]
name = "direct"
proto = "tcp"

[[connector]]
name = "deny"
proto = "block"

[[router]]
name = "main"
default = "direct"
[[router.route_rules]]
name = "blocked"
select = "deny"
exclude = []

[[data]]
name = "blocked"
format = "domain"
data = """
blocked.test
"""
EOC
start_gateway "$WORK/route.toml"
wait_port "$PR" || notok "router gateway listens"
check "a blocked domain gets REP 2 (not allowed by ruleset)" \
	$PY "$HERE/sockstool.py" connect --proxy "$PR" --host www.blocked.test --port 80 --expect 2
check "an unblocked target still passes" fetch "$WORK/o6" --socks5-hostname "127.0.0.1:$PR" "$URL"
closed=$(free_port)
check "a refused target gets REP 5 (connection refused)" \
	$PY "$HERE/sockstool.py" connect --proxy "$PR" --port "$closed" --expect 5
check "BIND gets REP 7 (command not supported)" \
	$PY "$HERE/sockstool.py" connect --proxy "$PR" --port "$HTTP_PORT" --cmd 2 --expect 7
check "an unresolvable name gets REP 4 (host unreachable)" \
	$PY "$HERE/sockstool.py" connect --proxy "$PR" --host nosuchhost.invalid --port 80 --expect 4
finish
