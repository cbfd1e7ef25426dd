#!/usr/bin/python3
"""ls_peer.py: an independent LinkSocks peer for the integration tests.

The WebSocket layer is Debian's python3-websockets (10.x, legacy asyncio API),
a strict RFC 6455 implementation: it checks Sec-WebSocket-Accept, masking in
the right direction, opcodes and close codes. The LinkSocks messages are built
and parsed here byte by byte from spec/linksocks.md §3; nothing is shared
with tunnelbox. Every wait has a timeout. Exit status 0 means the check
passed; stdout says what was seen.

  client  --url ws://H:P/socket/x --token T --echo-port E [--echo-host H] [--url-auth]
          against a tunnelbox server: Auth (binary, or URL query), ping,
          an unknown type, Connect/Data (fragmented, and gzip)/Disconnect to a
          TCP echo server, a refused Connect, a second channel, close.
  bomb    --url ws://H:P/socket/x --token T --echo-port E
          a gzip Data that inflates past the 32 MiB cap: the channel is
          dropped with a Disconnect, the WebSocket carries a new channel.
  badauth --url ... --token WRONG [--reverse] [--url-auth]
          expects AuthResponse{0, "invalid token"}, then the close.
  server  --token T --mode egress|opener [--echo-port E --udp-echo-port U]
          a strict server for a tunnelbox client. egress: URL auth on
          /socket, then every Connect succeeds and Data is echoed by the peer
          itself (TCP and UDP). opener: a provider authenticates, the peer
          opens a TCP channel to E and a UDP association to U through it,
          checks the echoes, prints "opener: ok" and exits."""
import argparse
import asyncio
import gzip
import hashlib
import os
import struct
import sys
import urllib.parse

import websockets
import websockets.exceptions

T = 10.0  # seconds, every wait

AUTH, AUTH_RESP, CONNECT, DATA, CONNECT_RESP, DISCONNECT = 1, 2, 3, 4, 5, 6
TCP, UDP = 1, 2


# ---- messages (§3.3), byte by byte ----

def s8(b):
    assert len(b) <= 255
    return bytes([len(b)]) + b


def m_auth(token, reverse, instance):
    return b"\x01\x01" + s8(token) + bytes([1 if reverse else 0]) + instance


def m_auth_resp(ok, err=b""):
    return b"\x01\x02\x01" if ok else b"\x01\x02\x00" + s8(err)


def m_connect_tcp(ch, host, port):
    return b"\x01\x03\x01" + ch + s8(host.encode()) + struct.pack(">H", port)


def m_connect_udp(ch):
    return b"\x01\x03\x02" + ch


def m_data(proto, ch, payload, comp=0, trailer=b""):
    return b"\x01\x04" + bytes([proto]) + ch + bytes([comp]) + struct.pack(">I", len(payload)) + payload + trailer


def m_connect_resp(ok, ch, err=b""):
    return b"\x01\x05" + (b"\x01" + ch if ok else b"\x00" + ch + s8(err))


def m_disconnect(ch, err=b""):
    return b"\x01\x06" + ch + (s8(err) if err else b"")


def udp_pair(host, port):
    """§3.4: Len(1) Addr Port(2); an empty pair is 00 0000."""
    return s8(host.encode()) + struct.pack(">H", port) if host else b"\x00\x00\x00"


def parse(m):
    """Returns a dict; raises ValueError on anything malformed."""
    if len(m) < 2 or m[0] != 1:
        raise ValueError("bad header %s" % m[:2].hex())
    t = m[1]
    d = {"type": t}
    if t == AUTH:
        n = m[2]
        d["token"] = m[3:3 + n]
        d["reverse"] = m[3 + n] != 0
        d["instance"] = m[4 + n:20 + n]
        if len(d["instance"]) != 16:
            raise ValueError("short Auth")
    elif t == AUTH_RESP:
        d["ok"] = m[2] != 0
        d["error"] = m[4:4 + m[3]] if not d["ok"] and len(m) > 3 else b""
    elif t == CONNECT:
        d["proto"], d["ch"] = m[2], m[3:19]
        if d["proto"] == TCP:
            n = m[19]
            d["host"] = m[20:20 + n].decode()
            d["port"] = struct.unpack(">H", m[20 + n:22 + n])[0]
    elif t == DATA:
        d["proto"], d["ch"], d["comp"] = m[2], m[3:19], m[19]
        n = struct.unpack(">I", m[20:24])[0]
        d["payload"] = m[24:24 + n]
        if len(d["payload"]) != n:
            raise ValueError("short Data")
        rest = m[24 + n:]
        if d["proto"] == UDP:
            pairs = []
            for _ in range(2):
                a = rest[0]
                pairs.append((rest[1:1 + a].decode(), struct.unpack(">H", rest[1 + a:3 + a])[0]))
                rest = rest[3 + a:]
            d["pairs"] = pairs
    elif t == CONNECT_RESP:
        d["ok"], d["ch"] = m[2] != 0, m[3:19]
        d["error"] = m[20:20 + m[19]] if not d["ok"] and len(m) > 19 else b""
    elif t == DISCONNECT:
        d["ch"] = m[2:18]
        d["error"] = m[19:19 + m[18]] if len(m) > 18 else b""
    return d


GZIP_SEEN = [0]  # gzip Data messages received (decoded by Python's gzip)


def payload_of(d):
    if d["comp"] == 1:
        GZIP_SEEN[0] += 1
        return gzip.decompress(d["payload"])
    return d["payload"]


def frags(msg, size=4096):
    """As the reference client (§2.4): 4096-byte fragments."""
    return [msg[i:i + size] for i in range(0, len(msg), size)]


async def recv_msg(ws, want=None, skip=(), timeout=T):
    """Next message, parsed; types in skip are passed over."""
    while True:
        raw = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(raw, str):
            raise ValueError("a text frame (we expect binary, §2.4)")
        d = parse(raw)
        if d["type"] in skip:
            continue
        if want is not None and d["type"] != want:
            raise ValueError("expected type %d, got %d (%s)" % (want, d["type"], raw[:40].hex()))
        return d


# ---- client (against a tunnelbox server) ----

def auth_url(url, token, url_auth, reverse=False):
    if not url_auth:
        return url
    q = urllib.parse.urlencode({"instance": "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1",
                                "reverse": "true" if reverse else "false",
                                "token": hashlib.sha256(token.encode()).hexdigest()})
    return url + "?" + q


async def echo_over(ws, ch, data, gz=False):
    """Sends data on channel ch (fragmented; gzip when asked) and reads it
    back from the echo server through the tunnel."""
    if gz:
        await ws.send(m_data(TCP, ch, gzip.compress(data), comp=1))
    else:
        await ws.send(frags(m_data(TCP, ch, data)))
    got = b""
    while len(got) < len(data):
        d = await recv_msg(ws, DATA)
        if d["ch"] != ch:
            raise ValueError("Data on an unexpected channel")
        got += payload_of(d)
    if got != data:
        raise ValueError("echo mismatch: %d bytes, sha %s" % (len(got), hashlib.sha256(got).hexdigest()[:12]))


async def client(a):
    token = a.token.encode()
    url = auth_url(a.url, a.token, a.url_auth)
    # compression left at its default: the client offers permessage-deflate
    # and the server must not accept it (§2.4).
    async with websockets.connect(url, max_size=32 << 20, ping_interval=None, open_timeout=T,
                                  close_timeout=T) as ws:
        if ws.extensions:
            raise ValueError("the server accepted an extension: %r" % ws.extensions)
        if not a.url_auth:
            await ws.send(m_auth(token, False, os.urandom(16)))
        d = await recv_msg(ws, AUTH_RESP)
        if not d["ok"]:
            raise ValueError("auth refused: %r" % d["error"])
        print("auth ok (%s)" % ("URL query" if a.url_auth else "binary Auth"))
        await asyncio.wait_for(await ws.ping(b"p"), T)
        print("ping answered")
        # §3.1: unknown types are ignored (0x0B as v1.8 sends it).
        await ws.send(b"\x01\x0b\x00\x00\x00\x02{}")
        # Data and Disconnect for a channel that does not exist: dropped.
        await ws.send(m_data(TCP, os.urandom(16), b"stray"))
        await ws.send(m_disconnect(os.urandom(16), b"EOF"))
        a_ch = os.urandom(16)
        await ws.send(m_connect_tcp(a_ch, a.echo_host, a.echo_port))
        d = await recv_msg(ws, CONNECT_RESP)
        if not d["ok"] or d["ch"] != a_ch:
            raise ValueError("connect failed: %r" % d)
        await echo_over(ws, a_ch, os.urandom(20000))
        print("20000 bytes echoed (sent in 4096-byte fragments)")
        await echo_over(ws, a_ch, os.urandom(3000) * 50, gz=True)
        print("150000 bytes echoed (sent gzip-compressed)")
        if a.expect_gzip:
            await echo_over(ws, a_ch, (b"tunnelbox " + os.urandom(6)) * 40000)
            if not GZIP_SEEN[0]:
                raise ValueError("the server sent no gzip Data (compression = 01)")
            print("the server gzipped %d Data messages; Python's gzip decoded them" % GZIP_SEEN[0])
        await ws.send(m_disconnect(a_ch, b"EOF"))
        # §4.1: a refused dial is a ConnectResponse failure with a reason.
        b_ch = os.urandom(16)
        await ws.send(m_connect_tcp(b_ch, a.echo_host, a.closed_port))
        d = await recv_msg(ws, CONNECT_RESP, skip=(DATA, DISCONNECT))
        if d["ok"] or d["ch"] != b_ch or not d["error"]:
            raise ValueError("a refused target was not refused: %r" % d)
        print("refused target: %r" % d["error"].decode(errors="replace"))
        c_ch = os.urandom(16)
        await ws.send(m_connect_tcp(c_ch, a.echo_host, a.echo_port))
        d = await recv_msg(ws, CONNECT_RESP, skip=(DATA, DISCONNECT))
        if not d["ok"] or d["ch"] != c_ch:
            raise ValueError("second connect failed: %r" % d)
        await echo_over(ws, c_ch, b"second channel " * 100)
        await ws.send(m_disconnect(c_ch))
        print("second channel ok")
        await ws.close(1000)
    if ws.close_code != 1000:
        raise ValueError("close code %r" % ws.close_code)
    print("closed 1000")
    return 0


async def bomb(a):
    """§3.5: 1 KiB may inflate to 1 MiB; a receiver caps it (32 MiB) and
    drops the channel, not the WebSocket."""
    async with websockets.connect(a.url, compression=None, max_size=32 << 20, ping_interval=None,
                                  open_timeout=T, close_timeout=T) as ws:
        await ws.send(m_auth(a.token.encode(), False, os.urandom(16)))
        if not (await recv_msg(ws, AUTH_RESP))["ok"]:
            raise ValueError("auth refused")
        ch = os.urandom(16)
        await ws.send(m_connect_tcp(ch, "127.0.0.1", a.echo_port))
        d = await recv_msg(ws, CONNECT_RESP)
        if not d["ok"]:
            raise ValueError("connect failed")
        z = gzip.compress(bytes(33 << 20), 9)
        await ws.send(m_data(TCP, ch, z, comp=1))
        print("sent %d gzip bytes that inflate to 33 MiB" % len(z))
        while True:
            d = await recv_msg(ws, None, timeout=2 * T)
            if d["type"] == DISCONNECT and d["ch"] == ch:
                print("the channel was dropped: %r" % d["error"])
                break
            if d["type"] == DATA:
                raise ValueError("inflated bytes reached the target and came back")
        c2 = os.urandom(16)
        await ws.send(m_connect_tcp(c2, "127.0.0.1", a.echo_port))
        d = await recv_msg(ws, CONNECT_RESP, skip=(DATA, DISCONNECT))
        if not d["ok"] or d["ch"] != c2:
            raise ValueError("second connect failed: %r" % d)
        await echo_over(ws, c2, b"still alive " * 100)
        print("the WebSocket still carries a new channel")
        await ws.close(1000)
    return 0


async def badauth(a):
    url = auth_url(a.url, a.token, a.url_auth, a.reverse)
    async with websockets.connect(url, compression=None, ping_interval=None, open_timeout=T,
                                  close_timeout=T) as ws:
        if not a.url_auth:
            await ws.send(m_auth(a.token.encode(), a.reverse, os.urandom(16)))
        d = await recv_msg(ws, AUTH_RESP)
        print("AuthResponse ok=%s error=%r" % (d["ok"], d["error"]))
        if d["ok"] or d["error"] != a.expect_error.encode():
            return 1
        try:
            await asyncio.wait_for(ws.recv(), T)
            print("a message after the failure")
            return 1
        except websockets.exceptions.ConnectionClosed:
            pass
    print("closed with code %r" % ws.close_code)
    return 0 if a.close_code is None or ws.close_code == a.close_code else 1


# ---- server (a tunnelbox client connects to it) ----

async def egress_session(ws, a):
    """A forward client's server: Connects succeed, Data comes back."""
    chans = {}
    async for raw in ws:
        d = parse(raw)
        t = d["type"]
        if t == CONNECT:
            chans[d["ch"]] = d
            await ws.send(m_connect_resp(True, d["ch"]))
            if d["proto"] == TCP:
                log("connect tcp %s:%d" % (d["host"], d["port"]))
            else:
                log("connect udp")
        elif t == DATA and d["ch"] in chans:
            p = payload_of(d)
            if d["proto"] == TCP:
                # Back as Data of at most 10000 bytes each, fragmented
                # (§2.4: our client SHOULD accept fragments).
                for i in range(0, len(p), 10000):
                    await ws.send(frags(m_data(TCP, d["ch"], p[i:i + 10000]), 3000))
            else:
                # §3.4: the opener sent pair 1 empty, pair 2 the target;
                # the reply has pair 1 = its source, pair 2 empty.
                (h1, p1), (h2, p2) = d["pairs"]
                if h1 or p1:
                    log("udp: pair 1 not empty")
                    continue
                await ws.send(m_data(UDP, d["ch"], p, trailer=udp_pair(h2, p2) + udp_pair("", 0)))
        elif t == DISCONNECT:
            if chans.pop(d["ch"], None) is not None:
                # §10.6: the reference answers with a Disconnect of its own
                # for the channel already closed; it must be dropped.
                await ws.send(m_disconnect(d["ch"]))


async def opener_session(ws, a, done):
    """A provider's server: open channels through it and check echoes."""
    ch = os.urandom(16)
    await ws.send(m_connect_tcp(ch, "127.0.0.1", a.echo_port))
    d = await recv_msg(ws, CONNECT_RESP)
    if not d["ok"] or d["ch"] != ch:
        raise ValueError("provider: connect failed %r" % d)
    await echo_over(ws, ch, os.urandom(100000))
    log("tcp through the provider ok")
    await ws.send(m_disconnect(ch, b"EOF"))
    u = os.urandom(16)
    await ws.send(m_connect_udp(u))
    d = await recv_msg(ws, CONNECT_RESP, skip=(DATA, DISCONNECT))
    if not d["ok"] or d["ch"] != u:
        raise ValueError("provider: udp association refused %r" % d)
    for i in range(5):
        payload = os.urandom(500) + bytes([i])
        await ws.send(m_data(UDP, u, payload, trailer=udp_pair("", 0) + udp_pair("127.0.0.1", a.udp_echo_port)))
        d = await recv_msg(ws, DATA, skip=(DISCONNECT,))
        (h1, p1), (h2, p2) = d["pairs"]
        if d["ch"] != u or d["payload"] != payload or (h1, p1) != ("127.0.0.1", a.udp_echo_port) or h2 or p2:
            raise ValueError("provider: bad udp reply %r" % ((h1, p1, h2, p2),))
    log("udp through the provider ok")
    await ws.send(m_disconnect(u))
    done.set_result(0)


def log(s):
    print(s, flush=True)


async def server(a):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    want_hex = hashlib.sha256(a.token.encode()).hexdigest()

    async def handler(ws, path):
        u = urllib.parse.urlsplit(path)
        q = urllib.parse.parse_qs(u.query)
        try:
            if u.path == "/socket":
                # §2.3 Style A: the query carries sha256(token) and the role.
                role = q.get("reverse", [""])[0]
                ok = q.get("token", [""])[0] == want_hex and set(q) == {"instance", "reverse", "token"}
                reverse = role == "true"
                log("url auth: %s reverse=%s" % ("ok" if ok else "bad", role))
            else:
                d = await recv_msg(ws, AUTH)
                ok = d["token"] == a.token.encode()
                reverse = d["reverse"]
                log("binary auth: %s reverse=%s" % ("ok" if ok else "bad", reverse))
            if not ok or reverse != (a.mode == "opener"):
                await ws.send(m_auth_resp(False, b"invalid token"))
                return
            await ws.send(m_auth_resp(True))
            if a.mode == "egress":
                await egress_session(ws, a)
            else:
                await opener_session(ws, a, done)
                await asyncio.sleep(0.2)
        except (websockets.exceptions.ConnectionClosed, asyncio.TimeoutError) as e:
            log("session ended: %s" % type(e).__name__)
        except Exception as e:
            log("error: %s: %s" % (type(e).__name__, e))
            if not done.done():
                done.set_result(1)

    # ping_interval: this server pings every second, and drops a client
    # that does not answer within 3 s (a client MUST answer Pings).
    async with websockets.serve(handler, "127.0.0.1", a.port, compression=None, max_size=32 << 20,
                                ping_interval=1, ping_timeout=3) as srv:
        log("port %d" % srv.sockets[0].getsockname()[1])
        try:
            return await asyncio.wait_for(done, a.seconds)
        except asyncio.TimeoutError:
            return 0 if a.mode == "egress" else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("client", "badauth", "bomb"):
        q = sub.add_parser(name)
        q.add_argument("--url", required=True)
        q.add_argument("--token", required=True)
        q.add_argument("--url-auth", action="store_true")
        q.add_argument("--echo-port", type=int, default=0)
        q.add_argument("--echo-host", default="127.0.0.1", help="client: where the echo server is")
        q.add_argument("--closed-port", type=int, default=1)
        q.add_argument("--expect-error", default="invalid token")
        q.add_argument("--close-code", type=int)
        q.add_argument("--reverse", action="store_true", help="badauth: ask for the provider role")
        q.add_argument("--expect-gzip", action="store_true", help="client: the server must gzip its Data")
    q = sub.add_parser("server")
    q.add_argument("--port", type=int, default=0)
    q.add_argument("--token", required=True)
    q.add_argument("--mode", choices=("egress", "opener"), required=True)
    q.add_argument("--echo-port", type=int, default=0)
    q.add_argument("--udp-echo-port", type=int, default=0)
    q.add_argument("--seconds", type=float, default=60)
    a = p.parse_args()
    fn = {"client": client, "badauth": badauth, "bomb": bomb, "server": server}[a.cmd]
    try:
        return asyncio.run(fn(a))
    except Exception as e:  # a failed check, reported as such
        print("error: %s: %s" % (type(e).__name__, e), flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
