#!/usr/bin/python3
"""ws_peer.py: an independent, strict WebSocket peer for 60_ws_interop.sh.

Built on Debian's python3-websockets (10.4, asyncio API), which fails the
connection on any protocol violation (masking, RSV bits, opcodes, UTF-8 in
text, control frame rules). Run with /usr/bin/python3.

  ws_peer.py server PORT [--fragment N]   echo server on 127.0.0.1:PORT; echoes
                                          longer than N go out as fragments; pings
                                          each client once; one line per connection:
                                          "conn ok ..." or "conn FAIL ..."
  ws_peer.py client URL N [--fragment N]  send N messages (text and binary, up to
                                          8 MiB, some pipelined), check the echoes,
                                          ping, close 1000 and check the code echoed
  ws_peer.py raw PORT MODE                hand-made frames to a server, checking its
                                          answer (see RAW_MODES)

Exit status 0 means every check passed; otherwise the reason is printed.
"""
import asyncio
import base64
import functools
import hashlib
import os
import socket
import struct
import sys

import websockets

MAX_SIZE = 32 << 20  # spec/linksocks.md §2.4: 32 MiB per message
SIZES = [0, 1, 125, 126, 127, 4095, 4096, 4097, 65535, 65536, 70000, 1 << 20, 8 << 20]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@functools.lru_cache(maxsize=None)
def payload(m):
    """Message m: even ones text (ASCII), odd ones binary."""
    n = SIZES[m % len(SIZES)]
    if m % 2 == 0:
        block = "".join(chr(ord("a") + (i * 5 + m) % 26) for i in range(26))
        return (block * (n // 26 + 1))[:n]
    block = bytes((i * 11 + m * 3) & 0xFF for i in range(4093))  # a prime period
    return (block * (n // 4093 + 1))[:n]


def chunks(msg, size):
    return [msg[i:i + size] for i in range(0, len(msg), size)]


# ---- server ----

def serve(port, fragment):
    async def handler(ws):
        n = 0
        try:
            ua = ws.request_headers.get("User-Agent")
            extra = ws.request_headers.get("X-Test")
            pinged = False
            async for msg in ws:
                n += 1
                if fragment and len(msg) > fragment:
                    await ws.send(chunks(msg, fragment))
                else:
                    await ws.send(msg)
                if not pinged:  # the client must answer pings (RFC 6455 §5.5.2)
                    pinged = True
                    waiter = await ws.ping(b"py-ping")
                    await asyncio.wait_for(waiter, 10)
            if ws.close_code != 1000:
                raise RuntimeError(f"close code {ws.close_code}")
            if ua != "ws_echo" or extra != "1":
                raise RuntimeError(f"request headers: User-Agent {ua!r} X-Test {extra!r}")
            print(f"conn ok path={ws.path} messages={n} close={ws.close_code}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            print(f"conn FAIL after {n} messages: {type(e).__name__}: {e}", flush=True)

    async def main():
        async with websockets.serve(handler, "127.0.0.1", port, max_size=MAX_SIZE, ping_interval=None,
                                    compression=None):
            print(f"listening on {port}", flush=True)
            await asyncio.Future()

    asyncio.run(main())


# ---- client ----

async def client(url, count, fragment):
    # The default offers permessage-deflate: the server must not accept it.
    async with websockets.connect(url, max_size=MAX_SIZE, ping_interval=None, open_timeout=10,
                                  close_timeout=10) as ws:
        if "Sec-WebSocket-Extensions" in ws.response_headers:
            raise RuntimeError("server accepted an extension")
        m = 0
        while m < count:
            batch = list(range(m, min(count, m + 4)))  # pipelined: 4 before reading
            for k in batch:
                msg = payload(k)
                await ws.send(chunks(msg, fragment) if fragment and len(msg) > fragment else msg)
            for k in batch:
                echo = await asyncio.wait_for(ws.recv(), 60)
                if echo != payload(k):
                    raise RuntimeError(f"echo {k} differs (type {type(echo).__name__}, {len(echo)} bytes)")
            m += len(batch)
        waiter = await ws.ping(b"abc")
        await asyncio.wait_for(waiter, 10)
        await ws.close(1000, "bye")
    if ws.close_code != 1000:
        raise RuntimeError(f"server answered close with {ws.close_code}")
    print(f"ok {count} messages echoed, pong, close {ws.close_code}")


# ---- raw frames ----

def mask_frame(first, op_payload, length=None, ext=None):
    """A client frame: first byte, masked payload (random key)."""
    key = os.urandom(4)
    n = len(op_payload) if length is None else length
    if ext is not None:
        head = bytes([first, 0x80 | ext[0]]) + ext[1]
    elif n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", n)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(op_payload))
    return head + key + body


class Raw:
    def __init__(self, port, version="13", first=b""):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /socket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
               f"Sec-WebSocket-Version: {version}\r\n\r\n")
        self.s.sendall(req.encode() + first)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.more()
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = self.head.decode()

    def more(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def check_101(self):
        want = base64.b64encode(hashlib.sha1((self.key + GUID).encode()).digest()).decode()
        lines = self.head.split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        if not lines[0].startswith("HTTP/1.1 101"):
            raise RuntimeError(f"status line {lines[0]!r}")
        if fields.get("sec-websocket-accept") != want or fields.get("upgrade", "").lower() != "websocket":
            raise RuntimeError(f"bad 101: {fields}")

    def frame(self):
        """The next server frame: (fin, opcode, payload); servers never mask."""
        while len(self.buf) < 2:
            self.more()
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise RuntimeError("server frame is masked")
        n, off = b1 & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self.more()
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self.more()
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        while len(self.buf) < off + n:
            self.more()
        p, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 >> 7, b0 & 0x0F, p

    def expect_close(self, code):
        fin, op, p = self.frame()
        if op != 8 or len(p) < 2 or struct.unpack("!H", p[:2])[0] != code:
            raise RuntimeError(f"expected close {code}, got opcode {op} payload {p[:20].hex()}")
        self.expect_eof()

    def expect_eof(self):
        try:
            while True:
                self.more()
        except EOFError:
            return


def raw_bad(port, data, code):
    r = Raw(port)
    r.check_101()
    r.s.sendall(data)
    r.expect_close(code)


def raw_version(port):
    r = Raw(port, version="8")
    if not r.head.startswith("HTTP/1.1 426") or "Sec-WebSocket-Version: 13" not in r.head:
        raise RuntimeError(f"expected 426 naming version 13, got {r.head!r}")


def raw_ping_close(port):
    # The first frame rides in the request's segment (the server keeps it).
    r = Raw(port, first=mask_frame(0x82, b"early"))
    r.check_101()
    if r.frame() != (1, 2, b"early"):
        raise RuntimeError("first frame not echoed")
    r.s.sendall(mask_frame(0x89, b"xyz"))
    if r.frame() != (1, 10, b"xyz"):
        raise RuntimeError("ping not answered with its payload")
    # Fragments with a ping between them, reassembled and echoed as one.
    r.s.sendall(mask_frame(0x02, b"ab") + mask_frame(0x89, b"") + mask_frame(0x80, b"cd"))
    got = [r.frame(), r.frame()]
    if sorted(got) != sorted([(1, 10, b""), (1, 2, b"abcd")]):
        raise RuntimeError(f"fragments: {got}")
    r.s.sendall(mask_frame(0x88, struct.pack("!H", 4321) + b"bye"))
    r.expect_close(4321)


RAW_MODES = {
    "unmasked": lambda p: raw_bad(p, b"\x82\x01x", 1002),
    "rsv": lambda p: raw_bad(p, mask_frame(0xC2, b"x"), 1002),
    "opcode": lambda p: raw_bad(p, mask_frame(0x83, b"x"), 1002),
    "continuation": lambda p: raw_bad(p, mask_frame(0x80, b"x"), 1002),
    "data_in_fragments": lambda p: raw_bad(p, mask_frame(0x02, b"a") + mask_frame(0x82, b"b"), 1002),
    "control_long": lambda p: raw_bad(p, mask_frame(0x89, b"x" * 126), 1002),
    "control_fragmented": lambda p: raw_bad(p, mask_frame(0x09, b""), 1002),
    "close_code": lambda p: raw_bad(p, mask_frame(0x88, struct.pack("!H", 1005)), 1002),
    "length_top_bit": lambda p: raw_bad(p, mask_frame(0x82, b"", ext=(127, struct.pack("!Q", 1 << 63))), 1002),
    # Only the header: 1009 must come before the payload does.
    "too_big": lambda p: raw_bad(p, mask_frame(0x82, b"", length=MAX_SIZE + 1), 1009),
    "version": raw_version,
    "ping_close": raw_ping_close,
}


def main():
    a = sys.argv[1:]
    fragment = 0
    if "--fragment" in a:
        i = a.index("--fragment")
        fragment = int(a[i + 1])
        del a[i:i + 2]
    try:
        if len(a) == 2 and a[0] == "server":
            serve(int(a[1]), fragment)
        elif len(a) == 3 and a[0] == "client":
            asyncio.run(client(a[1], int(a[2]), fragment))
        elif len(a) == 3 and a[0] == "raw" and a[2] in RAW_MODES:
            RAW_MODES[a[2]](int(a[1]))
            print(f"ok raw {a[2]}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
