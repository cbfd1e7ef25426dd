#!/bin/bash
# Upstream-proxy connectors (`socks5`, `http`): tunnelbox A routes to a
# connector that dials through tunnelbox B. curl through A, credentials
# right and wrong, REP codes seen at A, an upstream that is down, bytes the
# proxy sends right after its reply, and linksocks -x on the dialing side.
. "$(dirname "$0")/lib/common.sh"

need_config CONN_UPSTREAM

serve_blob 2000000

# via_config FILE PORT PROTO CONNECTOR-LINES...: a socks5 listener on PORT
# routed to an upstream connector "up" of PROTO.
via_config() {
	local f=$1 port=$2 proto=$3
	shift 3
	{
		printf '[[listener]]\nname = "in"\nproto = "socks5"\nendpoint = "127.0.0.1:%s"\nrouter = "main"\n' "$port"
		printf '\n[[connector]]\nname = "up"\nproto = "%s"\n' "$proto"
		for l in "$@"; do echo "$l"; done
		printf '\n[[router]]\nname = "main"\ndefault = "up"\n'
	} >"$f"
}

# ---- B: the upstream gateways ----
PB=$(free_port) PBA=$(free_port) PBH=$(free_port) PBHA=$(free_port)
simple_config "$WORK/b.toml" socks5 "$PB"
start b.log "$TB" -v -c "$WORK/b.toml"
simple_config "$WORK/ba.toml" socks5 "$PBA" 'auth = { user = "alice", pass = "s3cret" }'
start ba.log "$TB" -c "$WORK/ba.toml"
simple_config "$WORK/bh.toml" http "$PBH"
start bh.log "$TB" -c "$WORK/bh.toml"
simple_config "$WORK/bha.toml" http "$PBHA" 'auth = { user = "bob", pass = "pa:ss" }'
start bha.log "$TB" -c "$WORK/bha.toml"
for p in "$PB" "$PBA" "$PBH" "$PBHA"; do
	wait_port "$p" 10 || { notok "upstream gateway on $p listens"; show b.log ba.log bh.log bha.log; finish; }
done

# ---- A: the gateways that dial through B ----
P1=$(free_port) P2=$(free_port) P3=$(free_port) P4=$(free_port) P5=$(free_port) P6=$(free_port)
P7=$(free_port)
DOWN=$(free_port)
via_config "$WORK/a1.toml" "$P1" socks5 "endpoint = \"127.0.0.1:$PB\""
via_config "$WORK/a2.toml" "$P2" socks5 "url = \"socks5://alice:s3cret@127.0.0.1:$PBA\""
via_config "$WORK/a3.toml" "$P3" socks5 "endpoint = \"127.0.0.1:$PBA\"" 'user = "alice"' 'pass = "wrong"'
via_config "$WORK/a4.toml" "$P4" http "endpoint = \"localhost:$PBH\""
via_config "$WORK/a5.toml" "$P5" http "url = \"http://bob:pa%3Ass@127.0.0.1:$PBHA\""
via_config "$WORK/a6.toml" "$P6" socks5 "endpoint = \"127.0.0.1:$DOWN\""
via_config "$WORK/a7.toml" "$P7" http "endpoint = \"127.0.0.1:$PBHA\"" 'user = "bob"' 'pass = "nope"'
for i in 1 2 3 4 5 6 7; do
	start "a$i.log" "$TB" -c "$WORK/a$i.toml"
done
for p in "$P1" "$P2" "$P3" "$P4" "$P5" "$P6" "$P7"; do
	wait_port "$p" 10 || { notok "gateway A on $p listens"; show a1.log a4.log; finish; }
done

check "socks5 upstream: curl --socks5-hostname through A -> B gets the file intact" fetch_via "$P1" "$WORK/o1"
if grep -q "localhost:$HTTP_PORT\|127.0.0.1:$HTTP_PORT" "$WORK/b.log"; then
	ok "B (-v) logged the flow to the origin"
else
	notok "B (-v) logged the flow to the origin"
	show b.log
fi
check "socks5 upstream with the right user/pass (url form)" fetch_via "$P2" "$WORK/o2"
check "socks5 upstream with a wrong password: REP 2 at A (TB_EDENIED)" \
	$PY "$HERE/sockstool.py" connect --proxy "$P3" --port "$HTTP_PORT" --expect 2
check "socks5 upstream with a wrong password: curl fails" \
	bash -c "! curl -sS --max-time 5 -o /dev/null --socks5-hostname '127.0.0.1:$P3' '$URL' 2>/dev/null"
check "http upstream (CONNECT) through a tunnelbox http listener" fetch_via "$P4" "$WORK/o4"
check "http upstream with Proxy-Authorization Basic (%-encoded password)" fetch_via "$P5" "$WORK/o5"
check "http upstream with a wrong password: 407 -> REP 2 at A" \
	$PY "$HERE/sockstool.py" connect --proxy "$P7" --port "$HTTP_PORT" --expect 2
closed=$(free_port)
check "a refused target behind the socks5 upstream gets REP 5 at A" \
	$PY "$HERE/sockstool.py" connect --proxy "$P1" --port "$closed" --expect 5
check "a refused target behind the http upstream gets REP 5 at A" \
	$PY "$HERE/sockstool.py" connect --proxy "$P4" --port "$closed" --expect 5
t0=$(date +%s%N)
check "the upstream being down gives REP 5 at A" \
	$PY "$HERE/sockstool.py" connect --proxy "$P6" --port "$HTTP_PORT" --expect 5 --timeout 5
t1=$(date +%s%N)
check "... quickly (under 2 s)" test $(((t1 - t0) / 1000000)) -lt 2000

# ---- bytes sent together with the reply are not lost ----
cat >"$WORK/fake.py" <<'EOP'
import socket, sys, threading
kind, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(8)
def serve(c):
    c.settimeout(10)
    try:
        if kind == "socks5":
            c.recv(3)                      # 05 01 00
            c.sendall(b"\x05\x00")
            c.recv(300)                    # the CONNECT request
            c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50" + b"BANNER\n")
        else:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(1000)
                if not d: return
                buf += d
            c.sendall(b"HTTP/1.1 200 Connection established\r\nX: y\r\n\r\nBANNER\n")
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOP
cat >"$WORK/banner.py" <<'EOP'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\x05\x01\x00"); assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x01\x00\x03\x07example\x00\x50")
r = b""
while len(r) < 10: r += s.recv(10 - len(r))
assert r[1] == 0, r
got = b""
while len(got) < 7: got += s.recv(7 - len(got))
assert got == b"BANNER\n", got
s.sendall(b"ping"); e = b""
while len(e) < 4: e += s.recv(4 - len(e))
assert e == b"ping", e
EOP
for kind in socks5 http; do
	FP=$(free_port) PF=$(free_port)
	start "fake-$kind.log" $PY "$WORK/fake.py" "$kind" "$FP"
	via_config "$WORK/af-$kind.toml" "$PF" "$kind" "endpoint = \"127.0.0.1:$FP\""
	start "af-$kind.log" "$TB" -c "$WORK/af-$kind.toml"
	if wait_port "$FP" 10 && wait_port "$PF" 10 && $PY "$WORK/banner.py" "$PF" 2>"$WORK/banner.err"; then
		ok "$kind upstream: bytes in the same segment as the proxy's reply reach the client, then it echoes"
	else
		notok "$kind upstream: bytes in the same segment as the proxy's reply reach the client, then it echoes"
		show banner.err "af-$kind.log"
	fi
done

# ---- UDP through a socks5 upstream (RFC 1928 UDP ASSOCIATE at B) ----
start uecho.log $PY "$HERE/sockstool.py" udp-echo-server --seconds 60
for ((i = 0; i < 100; i++)); do UEP=$(head -1 "$WORK/uecho.log" 2>/dev/null); [ -n "$UEP" ] && break; sleep 0.05; done
check "socks5 upstream: UDP ASSOCIATE at A, datagrams relayed through B's association, all 20 echoed" \
	$PY "$HERE/sockstool.py" udp-echo --proxy "$P1" --port "$UEP" --count 20 --size 1200
check "socks5 upstream with user/pass: UDP echoed too" \
	$PY "$HERE/sockstool.py" udp-echo --proxy "$P2" --port "$UEP" --count 5 --size 100
# (A routes each datagram when it is sent, so the association itself opens)
check "http upstream carries TCP only: a datagram routed to it is dropped, not sent some other way" \
	bash -c "! $PY '$HERE/sockstool.py' udp-echo --proxy '$P4' --port '$UEP' --count 1 --timeout 2 >/dev/null"
check "... and A still relays TCP through it" fetch_via "$P4" "$WORK/o4b"
# An independent SOCKS5 UDP relay (this script's own, in Python) that names
# its relay as 0.0.0.0: the client must send to the proxy's own address.
cat >"$WORK/udprelay.py" <<'EOP'
import select, socket, struct, sys, threading
port = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(8)
def serve(c):
    c.settimeout(10)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    try:
        assert c.recv(3) == b"\x05\x01\x00"
        c.sendall(b"\x05\x00")
        req = c.recv(300)
        assert req[:4] == b"\x05\x03\x00\x01", req        # UDP ASSOCIATE, IPv4 DST
        c.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00" + struct.pack(">H", u.getsockname()[1]))
        client = None
        c.setblocking(False)
        while True:
            r, _, _ = select.select([u, c], [], [], 20)
            if not r: break
            if c in r:
                try:
                    if not c.recv(100): break
                except BlockingIOError:
                    pass
            if u in r:
                d, src = u.recvfrom(65535)
                if src[1] == u.getsockname()[1]: continue
                if client is None or src == client:     # from the client: unwrap
                    if d[:3] != b"\x00\x00\x00" or d[3] != 1: continue
                    client = src
                    dst = (socket.inet_ntoa(d[4:8]), struct.unpack(">H", d[8:10])[0])
                    u.sendto(d[10:], dst)
                else:                                   # from a target: wrap
                    u.sendto(b"\x00\x00\x00\x01" + socket.inet_aton(src[0]) + struct.pack(">H", src[1]) + d, client)
    except (OSError, AssertionError) as e:
        print("relay:", e, flush=True)
    c.close(); u.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOP
RP=$(free_port) PR=$(free_port)
start udprelay.log $PY "$WORK/udprelay.py" "$RP"
via_config "$WORK/ar.toml" "$PR" socks5 "endpoint = \"127.0.0.1:$RP\""
start ar.log "$TB" -c "$WORK/ar.toml"
if wait_port "$RP" 10 && wait_port "$PR" 10; then
	check "an independent SOCKS5 UDP relay (BND 0.0.0.0): datagrams reach the echo server and come back" \
		$PY "$HERE/sockstool.py" udp-echo --proxy "$PR" --port "$UEP" --count 10 --size 500
else
	notok "an independent SOCKS5 UDP relay (BND 0.0.0.0): datagrams reach the echo server and come back"
	show udprelay.log ar.log
fi

# ---- linksocks -x on the side that dials ----
if has_config LINKSOCKS; then
	WP=$(free_port) SP=$(free_port)
	# B's log is rate-limited per call site (one line a second): let it pass.
	sleep 1.1
	before=$(grep -c "$HTTP_PORT" "$WORK/b.log")
	start ls.log "$TB" linksocks server -d -t T -P "$WP" -H 127.0.0.1 -x "socks5://127.0.0.1:$PB"
	start lc.log "$TB" linksocks client -t T -u "ws://127.0.0.1:$WP" -p "$SP"
	if wait_port "$WP" 10 && wait_port "$SP" 10 && fetch_via "$SP" "$WORK/o8"; then
		ok "linksocks server -x socks5://B: curl through the client gets the file intact"
	else
		notok "linksocks server -x socks5://B: curl through the client gets the file intact"
		show ls.log lc.log
	fi
	for ((i = 0; i < 40; i++)); do after=$(grep -c "$HTTP_PORT" "$WORK/b.log"); [ "$after" -gt "$before" ] && break; sleep 0.05; done
	[ "$after" -gt "$before" ] || show b.log ls.log lc.log
	check "... and B's log shows the flow" test "$after" -gt "$before"
	check "linksocks server -x ftp://... is a usage error (exit 2)" \
		bash -c "'$TB' linksocks server -t T -x ftp://h --print-config >/dev/null 2>&1; [ \$? = 2 ]"
	check "linksocks client -r -x http://... emits an http upstream connector" \
		bash -c "'$TB' linksocks client -r -t T -x http://u:p@h:3128 --print-config | grep -q '^default = \"upstream\"'"
fi
finish
