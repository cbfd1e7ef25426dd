#!/usr/bin/python3
"""t2stool.py: plain-socket clients and servers for the tun2socks tests.

Clients run in the namespace routed through the TUN device, servers outside
it; nothing here knows about proxies. Every blocking call has a timeout.
Servers print their port (or "ready") on stdout once listening.

  udp-echo-server --bind IP [--port N]      echo datagrams (port 0: any)
  udp-echo --host IP --port N [--count --size]
  dns-server --bind IP --port N             answer each datagram once (echo)
  halfclose-server --bind IP                read to EOF, then send the sha256 of what came
  halfclose --host IP --port N [--size]     send, shut write, expect the sha256 back
  echo-server --bind IP                     TCP echo, many clients (threads)
  many --host IP --port N --conns N         N concurrent echo round trips
  hold --host IP --port N --conns N --seconds S   open N connections, keep them
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time

T = 10.0


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen_tcp(bind, port=0):
    s = socket.socket(family(bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(1024)
    print(s.getsockname()[1], flush=True)
    return s


def cmd_udp_echo_server(a):
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    print(s.getsockname()[1], flush=True)
    end = time.time() + a.seconds
    s.settimeout(1)
    while time.time() < end:
        try:
            d, peer = s.recvfrom(65535)
        except socket.timeout:
            continue
        s.sendto(d, peer)


def cmd_dns_server(a):
    cmd_udp_echo_server(a)


def cmd_udp_echo(a):
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((a.host, a.port))
    got = 0
    for i in range(a.count):
        msg = os.urandom(a.size)
        for _ in range(3):
            s.send(msg)
            try:
                if s.recv(65535) == msg:
                    got += 1
                    break
            except socket.timeout:
                pass
    if got != a.count:
        print("udp-echo: %d of %d echoed" % (got, a.count), file=sys.stderr)
        sys.exit(1)


def serve_halfclose(c):
    c.settimeout(T)
    h = hashlib.sha256()
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            h.update(d)
        c.sendall(h.hexdigest().encode())
        c.shutdown(socket.SHUT_WR)
        c.recv(1)
    except OSError:
        pass
    c.close()


def accept_loop(a, serve):
    """Each connection to a.bind in its own thread, until a.seconds pass without one."""
    s = listen_tcp(a.bind)
    s.settimeout(a.seconds)
    while True:
        try:
            c, _ = s.accept()
        except socket.timeout:
            return
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def cmd_halfclose_server(a):
    accept_loop(a, serve_halfclose)


def cmd_halfclose(a):
    s = socket.create_connection((a.host, a.port), timeout=T)
    data = os.urandom(a.size)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    if got.decode() != hashlib.sha256(data).hexdigest():
        print("halfclose: reply %r" % got[:80], file=sys.stderr)
        sys.exit(1)


def serve_echo(c):
    c.settimeout(60)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()


def cmd_echo_server(a):
    accept_loop(a, serve_echo)


def cmd_many(a):
    bad = []

    def one(i):
        try:
            s = socket.create_connection((a.host, a.port), timeout=T)
            msg = os.urandom(a.size)
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(65536)
                if not d:
                    break
                got += d
            if got != msg:
                bad.append(i)
            s.close()
        except OSError as e:
            bad.append((i, str(e)))

    th = [threading.Thread(target=one, args=(i,)) for i in range(a.conns)]
    for t in th:
        t.start()
    for t in th:
        t.join(T * 3)
    if bad:
        print("many: %d of %d failed: %r" % (len(bad), a.conns, bad[:5]), file=sys.stderr)
        sys.exit(1)


def cmd_hold(a):
    conns = []
    for i in range(a.conns):
        try:
            s = socket.create_connection((a.host, a.port), timeout=T)
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise OSError("no echo")
            conns.append(s)
        except OSError as e:
            print("hold: connection %d: %s" % (i, e), file=sys.stderr)
            sys.exit(1)
    print("held %d" % len(conns), flush=True)
    time.sleep(a.seconds)
    # Which of them are still alive (a reset one reads EOF or an error)?
    alive = 0
    for s in conns:
        try:
            s.settimeout(2)
            s.sendall(b"y")
            if s.recv(1) == b"y":
                alive += 1
        except OSError:
            pass
    print("alive %d" % alive, flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("udp-echo-server", "dns-server"):
        q = sub.add_parser(name)
        q.add_argument("--bind", required=True)
        q.add_argument("--port", type=int, default=0)
        q.add_argument("--seconds", type=float, default=120)
    for name in ("halfclose-server", "echo-server"):
        q = sub.add_parser(name)
        q.add_argument("--bind", required=True)
        q.add_argument("--seconds", type=float, default=120)
    q = sub.add_parser("udp-echo")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--count", type=int, default=10)
    q.add_argument("--size", type=int, default=512)
    q = sub.add_parser("halfclose")
    q.add_argument("--host", required=True)
    q.add_argument("--port", type=int, required=True)
    q.add_argument("--size", type=int, default=100000)
    for name in ("many", "hold"):
        q = sub.add_parser(name)
        q.add_argument("--host", required=True)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--conns", type=int, default=200)
        q.add_argument("--size", type=int, default=1000)
        q.add_argument("--seconds", type=float, default=1)
    a = p.parse_args()
    globals()["cmd_" + a.cmd.replace("-", "_")](a)


if __name__ == "__main__":
    main()
