#!/bin/bash
# The LinkSocks HTTP API (spec/linksocks.md §8) behind `linksocks server -k`:
# the key check, tokens added at run time (forward, reverse with its SOCKS5
# port), the status list, deletion closing a token's clients, 405 and 400.
. "$(dirname "$0")/lib/common.sh"

need_config LINKSOCKS

serve_blob 500000

api() { # api METHOD PATH [BODY]: prints "STATUS BODY"; uses the key
	local m=$1 p=$2
	shift 2
	curl -sS --max-time 10 -o "$WORK/api.out" -w '%{http_code}' -X "$m" -H "X-API-Key: $KEY" \
		${1+--data-binary "$1"} "http://127.0.0.1:$WP$p"
	printf ' %s' "$(cat "$WORK/api.out")"
}

KEY='s3cret key'
WP=$(free_port)
start srv.log "$TB" linksocks server -k "$KEY" -t ignored -P "$WP" -H 127.0.0.1
SRV=$LAST_PID
wait_port "$WP" 10 || { notok "server -k listens"; show srv.log; finish; }

r=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WP/api/status")
check "401 without X-API-Key (got $r)" [ "$r" = 401 ]
r=$(curl -sS --max-time 10 -o "$WORK/401" -w '%{http_code}' -H 'X-API-Key: wrong' "http://127.0.0.1:$WP/api/status")
r="$(cat "$WORK/401") $r"
check "401 with a wrong key and the reference's body (got $r)" \
	[ "$r" = '{"success":false,"error":"invalid API key"} 401' ]
r=$(curl -sS --max-time 10 "http://127.0.0.1:$WP/")
check "the / page says the API is on" [ "$r" = "LinkSocks v1.7.15 is running. API endpoints available at /api/*" ]
r=$(api GET /api/status)
check "CLI tokens are ignored with -k: status lists none (got $r)" [ "$r" = '200 {"version":"v1.7.15","tokens":[]}' ]

r=$(api POST /api/token '{"type":"forward","token":"fwd1"}')
check "POST a forward token (got $r)" [ "$r" = '200 {"success":true,"token":"fwd1"}' ]
r=$(api POST /api/token '{"type":"forward","token":"fwd1"}')
check "the same token again: 200 token already exists (got $r)" \
	[ "$r" = '200 {"success":false,"error":"token already exists"}' ]
SP=$(free_port)
start fc.log "$TB" linksocks client -t fwd1 -u "ws://127.0.0.1:$WP" -p "$SP" --no-reconnect
FC=$LAST_PID
if wait_port "$SP" 10 && fetch_via "$SP" "$WORK/o1"; then
	ok "a forward client with the API token fetches through its SOCKS5"
else
	notok "a forward client with the API token fetches through its SOCKS5"
	show srv.log fc.log
fi

RP=$(free_port)
r=$(api POST /api/token "{\"type\":\"reverse\",\"token\":\"rev1\",\"port\":$RP}")
check "POST a reverse token with a port (got $r)" [ "$r" = "200 {\"success\":true,\"token\":\"rev1\",\"port\":$RP}" ]
check "its SOCKS5 port listens at once" wait_port "$RP" 5
start rp.log "$TB" linksocks provider -t rev1 -u "ws://127.0.0.1:$WP"
if fetch_via "$RP" "$WORK/o2"; then
	ok "a provider joins; curl through the reverse token's port gets the file"
else
	notok "a provider joins; curl through the reverse token's port gets the file"
	show srv.log rp.log
fi
r=$(api POST /api/token '{"type":"reverse"}')
check "a reverse token without a port gets a generated token and a port (got $r)" \
	grep -Eq '^200 \{"success":true,"token":"[0-9a-f]{16}","port":[0-9]+\}$' <<<"$r"
r=$(api POST /api/token '{"type":"connector","token":"con1","reverse_token":"rev1"}')
check "POST a connector token (got $r)" [ "$r" = '200 {"success":true,"token":"con1"}' ]
r=$(api POST /api/token '{"type":"connector"}')
check "a connector without reverse_token: 200 success:false (got $r)" \
	[ "$r" = '200 {"success":false,"error":"reverse_token is required for connector token"}' ]

r=$(api GET /api/status)
check "status: the forward token with one client (got $r)" \
	grep -q '{"token":"fwd1","type":"forward","clients_count":1}' <<<"$r"
check "status: the reverse token with its provider, port and connector" \
	grep -q "{\"token\":\"rev1\",\"type\":\"reverse\",\"clients_count\":1,\"port\":$RP,\"connector_tokens\":\[\"con1\"\]}" <<<"$r"

r=$(api DELETE /api/token/fwd1)
check "DELETE the forward token (got $r)" [ "$r" = '200 {"success":true,"token":"fwd1"}' ]
for i in $(seq 50); do grep -qi 'closed\|disconnect\|lost\|refused\|stopp' "$WORK/fc.log" && break; sleep 0.1; done
check "its client is disconnected (client log)" grep -qi 'closed\|disconnect\|lost\|refused\|stopp' "$WORK/fc.log"
if fetch_via "$SP" "$WORK/o3" 2>/dev/null; then
	notok "a new fetch through the removed token's client fails"
else
	ok "a new fetch through the removed token's client fails"
fi
r=$(api DELETE /api/token '{"token":"nosuch"}')
check "DELETE an unknown token by body: success (got $r)" [ "$r" = '200 {"success":true,"token":"nosuch"}' ]
r=$(api DELETE /api/token/rev1)
check "DELETE the reverse token" [ "$r" = '200 {"success":true,"token":"rev1"}' ]
r=$(api GET /api/status)
check "status: rev1 and con1 are gone (got $r)" eval '! grep -q "rev1\|con1\|fwd1" <<<"$r"'
check "the reverse token's SOCKS5 port is closed" eval "! wait_port $RP 1"

r=$(api GET /api/token)
check "405 on GET /api/token, empty body (got '$r')" [ "$r" = '405 ' ]
r=$(api POST /api/token '{"type":"forward",')
check "400 on a bad body (got $r)" [ "$r" = '400 invalid request body' ]
r=$(api POST /api/token '{"type":"sideways"}')
check "400 on an unknown type (got $r)" [ "$r" = '400 invalid token type' ]

kill "$SRV"
for i in $(seq 100); do [ -e /proc/$SRV ] || break; sleep 0.05; done
wait "$SRV"
rc=$?
check "SIGTERM stops the server with exit code 0 (got $rc)" [ "$rc" = 0 ]
finish
