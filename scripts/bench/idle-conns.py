#!/usr/bin/env python3
"""Hold N idle HTTP keep-alive connections to a server and report its memory.

Each connection sends one request and reads the complete response, so the server
has really set the connection up (parsed a request, answered it), then the
connection sits idle. With all N open, the script sums the resident memory of the
given process and its children (RSS, and PSS, which counts shared pages once).

usage: idle-conns.py HOST:PORT PID [N] [PATH]
"""
import os
import resource
import selectors
import socket
import sys
import time


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
    host, port = sys.argv[1].rsplit(":", 1)
    pid = int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.time() + 120
    # Open in batches so the listen backlog is never the limit being measured.
    pending = 0
    done = 0
    failed = 0
    while (len(socks) < n or pending) and time.time() < deadline:
        while len(socks) < n and pending < 500:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((host, int(port)))
            except BlockingIOError:
                pass
            sel.register(s, selectors.EVENT_WRITE, [b"", False])
            socks.append(s)
            pending += 1
        for key, ev in sel.select(timeout=1):
            s, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE and not st[1]:
                try:
                    s.send(req)
                except OSError:
                    failed += 1
                    pending -= 1
                    sel.unregister(s)
                    continue
                st[1] = True
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                failed += 1
                pending -= 1
                sel.unregister(s)
                continue
            st[0] += chunk
            head, sep, body = st[0].partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(body) >= length:
                    done += 1
                    pending -= 1
                    sel.unregister(s)
    time.sleep(1.0)
    pids = tree(pid)
    rss = sum(mem_kib(p, "VmRSS:") for p in pids)
    pss = sum(mem_kib(p, "Pss:") for p in pids)
    # Still open? A server that dropped idle connections would not count.
    alive = 0
    for s in socks:
        try:
            alive += 1 if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"" else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print(f"connections={n} answered={done} failed={failed} still_open={alive} "
          f"processes={len(pids)} rss_mib={rss / 1024:.1f} pss_mib={pss / 1024:.1f}")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
