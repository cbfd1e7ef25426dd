#!/usr/bin/python3
"""sockstool.py: small, independent SOCKS5/TCP/UDP peers for the integration tests.

Written from RFC 1928/1929 for these tests; it shares no code with tunnelbox.
Every operation has a timeout. Exit status 0 means the check passed; a line on
stdout says what was seen."""
import argparse
import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time

T = 10.0  # seconds, every blocking call


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("short read: %d of %d" % (len(b), n))
        b += c
    return b


def socks_addr(host, port):
    try:
        return b"\x01" + socket.inet_pton(socket.AF_INET, host) + struct.pack(">H", port)
    except OSError:
        pass
    try:
        return b"\x04" + socket.inet_pton(socket.AF_INET6, host) + struct.pack(">H", port)
    except OSError:
        h = host.encode()
        return b"\x03" + bytes([len(h)]) + h + struct.pack(">H", port)


def read_socks_addr(s):
    atyp = recv_exact(s, 1)[0]
    if atyp == 1:
        ip = socket.inet_ntop(socket.AF_INET, recv_exact(s, 4))
    elif atyp == 4:
        ip = socket.inet_ntop(socket.AF_INET6, recv_exact(s, 16))
    elif atyp == 3:
        ip = recv_exact(s, recv_exact(s, 1)[0]).decode()
    else:
        raise ValueError("bad atyp %d" % atyp)
    return ip, struct.unpack(">H", recv_exact(s, 2))[0]


def handshake(proxy_port, cmd, host, port, user=None, pw=None):
    """Returns (socket, rep, bound addr)."""
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=T)
    if user is None:
        s.sendall(b"\x05\x01\x00")
    else:
        s.sendall(b"\x05\x01\x02")
    ver, method = recv_exact(s, 2)
    if method == 0xFF:
        return s, "no-method", None
    if method == 0x02:
        u, p = user.encode(), pw.encode()
        s.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        if recv_exact(s, 2)[1] != 0:
            return s, "auth-failed", None
    s.sendall(b"\x05" + bytes([cmd]) + b"\x00" + socks_addr(host, port))
    ver, rep, rsv = recv_exact(s, 3)
    bnd = read_socks_addr(s)
    return s, rep, bnd


def cmd_udp_echo(a):
    """UDP ASSOCIATE, send N datagrams to an echo server, expect them back."""
    ctl, rep, bnd = handshake(a.proxy, 3, "0.0.0.0", 0)
    if rep != 0 or a.expect != "0":
        print("udp associate: rep=%r (expected %s)" % (rep, a.expect))
        return 0 if str(rep) == a.expect else 1
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(T)
    relay = (bnd[0] if bnd[0] != "0.0.0.0" else "127.0.0.1", bnd[1])
    got = 0
    for i in range(a.count):
        payload = os.urandom(a.size) + struct.pack(">I", i)
        hdr = b"\x00\x00\x00" + socks_addr(a.host, a.port)
        u.sendto(hdr + payload, relay)
        data, src = u.recvfrom(65535)
        if src[1] != relay[1]:
            print("reply from an unexpected port %r" % (src,))
            return 1
        # RSV RSV FRAG ATYP ...
        if data[:3] != b"\x00\x00\x00":
            print("bad reply header %r" % data[:4])
            return 1
        atyp = data[3]
        off = {1: 4 + 4 + 2, 4: 4 + 16 + 2}.get(atyp)
        if off is None:
            off = 5 + data[4] + 2
        if data[off:] != payload:
            print("payload mismatch on datagram %d" % i)
            return 1
        got += 1
    # A FRAG != 0 datagram must be dropped (RFC 1928 §7, no reassembly).
    u.sendto(b"\x00\x00\x01" + socks_addr(a.host, a.port) + b"fragment", relay)
    u.settimeout(0.5)
    try:
        data, _ = u.recvfrom(65535)
        print("a FRAG=1 datagram was relayed")
        return 1
    except socket.timeout:
        pass
    ctl.close()
    print("udp echo: %d/%d datagrams" % (got, a.count))
    return 0


def cmd_udp_echo_server(a):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", a.port))
    print(u.getsockname()[1], flush=True)
    end = time.time() + a.seconds
    while time.time() < end:
        r, _, _ = select.select([u], [], [], 0.5)
        if r:
            data, src = u.recvfrom(65535)
            u.sendto(data, src)
    return 0


def cmd_halfclose_server(a):
    """Reads until EOF, then answers with sha256(request) and as many bytes."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(8)
    print(ls.getsockname()[1], flush=True)
    ls.settimeout(a.seconds)
    while True:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            return 0
        c.settimeout(T)
        h = hashlib.sha256()
        n = 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        c.sendall(h.hexdigest().encode() + b"\n" + b"z" * n)
        c.close()


def cmd_halfclose(a):
    s, rep, _ = handshake(a.proxy, 1, a.host, a.port)
    if rep != 0:
        print("connect refused rep=%r" % (rep,))
        return 1
    body = os.urandom(a.size)
    s.sendall(body)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    want = hashlib.sha256(body).hexdigest().encode() + b"\n" + b"z" * a.size
    if got != want and a.allow_loss and want.startswith(got):
        # A tunnel without half-close (LinkSocks, spec §4.3) may end the
        # whole connection at our FIN: accept a clean prefix, never garbage.
        print("half-close: connection closed after our FIN with %d of %d bytes (a clean prefix)"
              % (len(got), len(want)))
        return 0
    if got != want:
        print("half-close: got %d bytes, wanted %d" % (len(got), len(want)))
        return 1
    print("half-close: %d bytes back after our FIN" % len(got))
    return 0


def cmd_echo(a):
    """CONNECT to an echo server, stream --size random bytes while reading
    them back, compare by SHA-256."""
    s, rep, _ = handshake(a.proxy, 1, a.host, a.port)
    if rep != 0:
        print("connect refused rep=%r" % (rep,))
        return 1
    if a.text:  # compressible: short random words repeated
        words = [os.urandom(4).hex().encode() + b" " for _ in range(64)]
        body = b"".join(words[i % 61] for i in range(a.size // 9 + 1))[:a.size]
    else:
        body = os.urandom(a.size)
    err = []

    def send():
        try:
            s.sendall(body)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=send, daemon=True)
    th.start()
    h = hashlib.sha256()
    n = 0
    while n < a.size:
        b = s.recv(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    th.join(T)
    s.close()
    if err or n != a.size or h.hexdigest() != hashlib.sha256(body).hexdigest():
        print("echo: %d of %d bytes back, %s" % (n, a.size, "sha ok" if n == a.size else "short"), err)
        return 1
    print("echo: %d bytes back, sha256 matches" % n)
    return 0


def cmd_connect(a):
    """CONNECT and report the REP code (for refusal tests)."""
    try:
        s, rep, _ = handshake(a.proxy, a.cmd, a.host, a.port, a.user, a.pw)
    except (EOFError, ConnectionResetError) as e:
        print("closed: %s" % e)
        return 0 if a.expect == "closed" else 1
    print("rep=%s" % rep)
    return 0 if str(rep) == a.expect else 1


def cmd_raw(a):
    """Send raw hex bytes; print the reply bytes in hex (until EOF/timeout)."""
    s = socket.create_connection(("127.0.0.1", a.proxy), timeout=T)
    s.sendall(bytes.fromhex(a.hex))
    s.settimeout(3)
    got = b""
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except socket.timeout:
        print("timeout; got %s" % got.hex())
        return 1
    print(got.hex())
    return 0 if got.hex() == a.expect else 1


def cmd_many(a):
    """Open N proxied connections at once through SOCKS5 to an echo-ish
    server, exchange a line on each, hold them, then close them all."""
    socks = []
    for i in range(a.count):
        s = socket.create_connection(("127.0.0.1", a.proxy), timeout=T)
        socks.append(s)
    for s in socks:
        s.sendall(b"\x05\x01\x00\x05\x01\x00" + socks_addr(a.host, a.port))
    ok = 0
    for s in socks:
        r = recv_exact(s, 2 + 10)
        if r[:2] == b"\x05\x00" and r[3] == 0:
            ok += 1
    for s in socks:
        s.sendall(b"x")
    echoed = sum(1 for s in socks if recv_exact(s, 1) == b"x")
    print("connections: %d replies ok, %d echoed" % (ok, echoed), flush=True)
    if a.hold:
        time.sleep(a.hold)
    for s in socks:
        s.close()
    return 0 if ok == a.count and echoed == a.count else 1


def cmd_echo_server(a):
    """TCP echo server (threads, bounded lifetime)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(1024)
    print(ls.getsockname()[1], flush=True)
    end = time.time() + a.seconds

    def serve(c):
        c.settimeout(a.seconds)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        c.close()

    ls.settimeout(0.5)
    while time.time() < end:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    return 0


def main():
    global T
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd_name", required=True)
    for name in ("udp-echo", "halfclose", "connect", "many", "echo"):
        q = sub.add_parser(name)
        q.add_argument("--proxy", type=int, required=True)
        q.add_argument("--host", default="127.0.0.1")
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--count", type=int, default=10)
        q.add_argument("--size", type=int, default=1000)
        q.add_argument("--user")
        q.add_argument("--pw")
        q.add_argument("--cmd", type=int, default=1)
        q.add_argument("--expect", default="0")
        q.add_argument("--hold", type=float, default=0)
        q.add_argument("--allow-loss", action="store_true")
        q.add_argument("--text", action="store_true", help="echo: compressible bytes, not random ones")
        q.add_argument("--timeout", type=float, default=T, help="seconds, every blocking call")
    q = sub.add_parser("raw")
    q.add_argument("--proxy", type=int, required=True)
    q.add_argument("--hex", required=True)
    q.add_argument("--expect", required=True)
    for name in ("udp-echo-server", "halfclose-server", "echo-server"):
        q = sub.add_parser(name)
        q.add_argument("--port", type=int, default=0)
        q.add_argument("--size", type=int, default=100000)
        q.add_argument("--seconds", type=float, default=60)
    a = p.parse_args()
    T = getattr(a, "timeout", T)
    fn = {
        "udp-echo": cmd_udp_echo, "halfclose": cmd_halfclose, "connect": cmd_connect,
        "many": cmd_many, "echo": cmd_echo, "raw": cmd_raw, "udp-echo-server": cmd_udp_echo_server,
        "halfclose-server": cmd_halfclose_server, "echo-server": cmd_echo_server,
    }[a.cmd_name]
    try:
        return fn(a)
    except Exception as e:  # a failed check, reported as such
        print("error: %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
