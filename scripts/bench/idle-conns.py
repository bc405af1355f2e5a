#!/usr/bin/env python3
"""Hold N idle HTTP keep-alive connections to a server and report its memory.

Each connection sends one request and reads the complete response, so the server
has really set the connection up (parsed a request, answered it), then the
connection sits idle. With all N open, the script sums the resident memory of the
given process and its children (RSS, and PSS, which counts shared pages once).

usage: idle-conns.py HOST:PORT PID [N] [PATH] [--tls] [--h2] [--before-kib K]

--tls   the connections are TLS (handshake done before the request; the
        certificate is not verified), ALPN http/1.1, or h2 with --h2
--h2    the request is one HTTP/2 stream (with --tls: ALPN h2; without: h2c
        with prior knowledge), the connection left open after its answer
--before-kib K   the server's RSS before the run (KiB), so the output also
        gives the growth per connection
Opening stops after 300 s whatever the count (the output says how many made it).
"""
import os
import resource
import selectors
import socket
import ssl
import struct
import sys
import time

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_request(host, path, tls):
    """The client preface, an empty SETTINGS and one GET on stream 1 (HPACK:
    static-table indices, literals without indexing, no Huffman)."""

    def literal(index, value):
        v = value.encode()
        assert index < 15 and len(v) < 127
        return bytes([index, len(v)]) + v

    scheme = b"\x87" if tls else b"\x86"  # https, http
    block = b"\x82" + scheme + literal(4, path) + literal(1, host)  # GET
    frames = struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0)
    frames += struct.pack(">I", len(block))[1:] + b"\x01\x05" + struct.pack(">I", 1) + block
    return H2_PREFACE + frames


def h2_answered(buf, sock_send):
    """Whether the frames in buf end stream 1; ACKs the server's SETTINGS."""
    pos = 0
    done = False
    while len(buf) - pos >= 9:
        length = int.from_bytes(buf[pos : pos + 3], "big")
        kind, flags = buf[pos + 3], buf[pos + 4]
        stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        if len(buf) - pos - 9 < length:
            break
        if kind == 0x4 and not flags & 0x1:
            sock_send(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
            done = True
        if kind == 0x7:
            raise OSError("GOAWAY")
        pos += 9 + length
    return done, pos


def h1_answered(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return len(body) >= length


def tree(pid):
    """pid and every descendant (worker processes of a master)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    for k in kids:
        out += tree(k)
    return out


def mem_kib(pid, field):
    path = f"/proc/{pid}/smaps_rollup" if field == "Pss:" else f"/proc/{pid}/status"
    key = field if field == "Pss:" else "VmRSS:"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    flags = {a for a in sys.argv[1:] if a in ("--tls", "--h2")}
    args = [a for a in sys.argv[1:] if a not in flags]
    before = None
    if "--before-kib" in args:
        i = args.index("--before-kib")
        before = int(args[i + 1])
        del args[i : i + 2]
    host, port = args[0].rsplit(":", 1)
    pid = int(args[1])
    n = int(args[2]) if len(args) > 2 else 10000
    path = args[3] if len(args) > 3 else "/"
    tls, h2 = "--tls" in flags, "--h2" in flags
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 100 > hard:
        sys.exit(f"RLIMIT_NOFILE {hard} is below {n} connections")
    if h2:
        req = h2_request("localhost", path, tls)
    else:
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["h2"] if h2 else ["http/1.1"])
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.time() + 300
    # Open in batches so the listen backlog is never the limit being measured.
    # Each connection's state: [received bytes, stage], stage 0 connecting (and
    # handshaking), 1 request sent.
    pending = 0
    done = 0
    failed = 0

    def fail(s):
        nonlocal failed, pending
        failed += 1
        pending -= 1
        sel.unregister(s)

    while (len(socks) < n or pending) and time.time() < deadline:
        while len(socks) < n and pending < 200:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((host, int(port)))
            except BlockingIOError:
                pass
            if ctx:
                s = ctx.wrap_socket(s, server_hostname="localhost", do_handshake_on_connect=False)
            sel.register(s, selectors.EVENT_WRITE, [b"", 0])
            socks.append(s)
            pending += 1
        for key, ev in sel.select(timeout=1):
            s, st = key.fileobj, key.data
            if st[1] == 0:
                try:
                    if ctx:
                        s.do_handshake()
                        if s.selected_alpn_protocol() != ("h2" if h2 else "http/1.1"):
                            raise OSError(f"ALPN gave {s.selected_alpn_protocol()}")
                    s.sendall(req)
                except ssl.SSLWantReadError:
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                except ssl.SSLWantWriteError:
                    sel.modify(s, selectors.EVENT_WRITE, st)
                    continue
                except OSError:
                    fail(s)
                    continue
                st[1] = 1
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                chunk = s.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                fail(s)
                continue
            st[0] += chunk
            if h2:
                try:
                    answered, used = h2_answered(st[0], s.sendall)
                except OSError:
                    fail(s)
                    continue
                st[0] = st[0][used:]
            else:
                answered = h1_answered(st[0])
            if answered:
                done += 1
                pending -= 1
                sel.unregister(s)
    time.sleep(2.0)
    pids = tree(pid)
    rss = sum(mem_kib(p, "VmRSS:") for p in pids)
    pss = sum(mem_kib(p, "Pss:") for p in pids)
    # Still open? A server that dropped idle connections would not count.
    alive = 0
    for s in socks:
        try:
            raw = socket.socket(fileno=os.dup(s.fileno()))
            try:
                alive += 1 if raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"" else 0
            finally:
                raw.close()
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    line = (f"connections={n} answered={done} failed={failed} still_open={alive} "
            f"processes={len(pids)} rss_mib={rss / 1024:.1f} pss_mib={pss / 1024:.1f}")
    if before is not None and done:
        line += f" kib_per_conn={(rss - before) / done:.1f}"
    print(line)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
