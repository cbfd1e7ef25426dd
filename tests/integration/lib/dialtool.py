#!/usr/bin/python3
"""dialtool.py: the far ends of a LinkSocks client's WebSocket dial, for
74_linksocks_dial.sh (spec/linksocks.md §2.2). Loopback only.

  proxy    --port P --log FILE [--map NAME=IP]... [--auth USER:PASS]
           an HTTP CONNECT proxy. Every CONNECT is logged as one line
           "CONNECT host:port" (or "DENIED ..." / "REFUSED ...") before it is
           served. A target that is not a loopback address, "localhost" or a
           --map name (whose IP must be loopback) is refused with 403: the
           proxy never sends traffic off the machine. With --auth, a missing
           or wrong Proxy-Authorization (Basic) gets 407.
  redirect --port P --log FILE [--rule PATH STATUS LOCATION]... [--forward H:P]
           answers a GET for PATH (the query ignored) with STATUS and
           Location: LOCATION; a GET for /socket or below is relayed to the
           WebSocket server at H:P (so a relative redirect can end on a real
           server); anything else 404. Every request target is logged.

Threads, one per connection; every socket wait has a timeout."""
import argparse
import base64
import ipaddress
import select
import socket
import socketserver
import sys
import threading

T = 10.0
LOCK = threading.Lock()


def log(path, line):
    with LOCK, open(path, "a") as f:
        f.write(line + "\n")


def read_head(sock):
    """The request head (bytes, without the blank line) and what followed."""
    buf = b""
    sock.settimeout(T)
    while b"\r\n\r\n" not in buf:
        if len(buf) > 16384:
            raise ValueError("head too large")
        d = sock.recv(4096)
        if not d:
            raise ValueError("eof in head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def pipe(a, b):
    """Both ways until both sides are done, half-closes passed on."""
    a.settimeout(None)
    b.settimeout(None)
    peer = {a: b, b: a}
    open_ = [a, b]
    while open_:
        r, _, _ = select.select(open_, [], [], 120)
        if not r:
            return
        for s in r:
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if d:
                try:
                    peer[s].sendall(d)
                except OSError:
                    return
                continue
            open_.remove(s)
            try:
                peer[s].shutdown(socket.SHUT_WR)
            except OSError:
                pass


def connect_loopback(host, port):
    s = socket.create_connection((host, port), timeout=T)
    return s


class Proxy(socketserver.BaseRequestHandler):
    def handle(self):
        o = self.server.opts
        c = self.request
        try:
            head, rest = read_head(c)
        except (OSError, ValueError):
            return
        method, target = (head.split(" ") + ["", ""])[:2]
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if o.auth:
            want = "Basic " + base64.b64encode(o.auth.encode()).decode()
            if header(head, "Proxy-Authorization") != want:
                log(o.log, "DENIED " + target)
                c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                          b"Proxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                return
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        ip = o.maps.get(host.lower(), host)
        if not port.isdigit() or not is_loopback(ip):
            log(o.log, "REFUSED " + target)
            c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        log(o.log, "CONNECT " + target)
        try:
            t = connect_loopback(ip, int(port))
        except OSError:
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with t:
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                t.sendall(rest)
            pipe(c, t)


class Redirect(socketserver.BaseRequestHandler):
    def handle(self):
        o = self.server.opts
        c = self.request
        try:
            head, rest = read_head(c)
        except (OSError, ValueError):
            return
        line = head.split("\r\n", 1)[0]
        parts = line.split(" ")
        target = parts[1] if len(parts) == 3 else ""
        log(o.log, "GET " + target)
        path = target.split("?", 1)[0]
        if path in o.rules:
            status, loc = o.rules[path]
            c.sendall(("HTTP/1.1 %s Moved\r\nLocation: %s\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n" % (status, loc)).encode("latin-1"))
            return
        if o.forward and (path == "/socket" or path.startswith("/socket/")):
            h, _, p = o.forward.rpartition(":")
            try:
                t = connect_loopback(h, int(p))
            except OSError:
                return
            with t:
                t.sendall(head.encode("latin-1") + b"\r\n\r\n" + rest)
                pipe(c, t)
            return
        c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["proxy", "redirect"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--map", action="append", default=[])
    ap.add_argument("--auth")
    ap.add_argument("--rule", nargs=3, action="append", default=[])
    ap.add_argument("--forward")
    o = ap.parse_args()
    o.maps = {}
    for m in o.map:
        name, _, ip = m.partition("=")
        if not is_loopback(ip):
            sys.exit("--map: %s is not a loopback address" % ip)
        o.maps[name.lower()] = ip
    o.rules = {r[0]: (r[1], r[2]) for r in o.rule}
    if o.forward and not is_loopback(o.forward.rpartition(":")[0]):
        sys.exit("--forward: loopback only")
    open(o.log, "a").close()
    srv = Server(("127.0.0.1", o.port), Proxy if o.mode == "proxy" else Redirect)
    srv.opts = o
    srv.serve_forever()


if __name__ == "__main__":
    main()
