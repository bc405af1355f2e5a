#!/usr/bin/env python3
"""Sends the same raw requests through several forward proxies to a recording origin.

Usage: proxy_battery.py ORIGIN_PORT ORIGIN2_PORT NAME=PORT [NAME=PORT ...]
       (the first proxy is ours, the rest are peers)

The origins run here: each connection's bytes are recorded exactly, and each request is
answered once complete (the path picks the answer: hop-by-hop response fields, chunked,
no length, ...). Every case carries a token in its paths, so what an origin received is
matched to the case and the proxy. A row shows, per proxy, the status lines the client
read and what reached the origin (requests, their lines, and watched fields); it is
marked `<<` when ours differs from every peer. Exits 0.
"""
import re
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

RECORD = {}  # token -> list of bytes, one per upstream connection
LOCK = threading.Lock()


def request_len(buf):
    """The length of the first request in buf, once it is all there."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").lower()
    start = end + 4
    if "\r\ntransfer-encoding: chunked" in head:
        body = buf[start:]
        last = 0 if body.startswith(b"0\r\n") else body.find(b"\r\n0\r\n")
        if last < 0:
            return None
        fin = body.find(b"\r\n\r\n", last)
        return None if fin < 0 else start + fin + 4
    m = re.search(r"\r\ncontent-length:\s*(\d+)", head)
    n = start + (int(m.group(1)) if m else 0)
    return n if len(buf) >= n else None


def answer(req):
    line = req.split(b"\r\n", 1)[0]
    if b"resp-hop" in line:
        return (b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop, keep-alive\r\nX-Resp-Hop: 1\r\n"
                b"Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic realm=o\r\n"
                b"Content-Length: 2\r\n\r\nok")
    if b"chunked" in line:
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    if b"nolen" in line:
        return b"HTTP/1.0 200 OK\r\n\r\nbody until close"
    if b"dup-cl" in line:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"
    if b"cl-te" in line:
        return (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nok\r\n0\r\n\r\n")
    if b"extra" in line:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 Smuggled\r\nContent-Length: 0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def record(req):
    m = re.search(rb"/(c\d+-\w+)", req)
    if m:
        with LOCK:
            RECORD.setdefault(m.group(1).decode(), []).append(req)


def serve(conn):
    """Answers each request on the connection in turn (proxies may keep it open);
    whatever cannot be read as a request is recorded as it is."""
    conn.settimeout(3)
    buf = b""
    try:
        while True:
            n = request_len(buf)
            if n is not None:
                req, buf = buf[:n], buf[n:]
                record(req)
                reply = answer(req)
                conn.sendall(reply)
                if b"Content-Length: 2\r\n\r\nok" != reply[-21:] and not reply.endswith(b"0\r\n\r\n"):
                    break  # answers of doubtful framing end their connection
                continue
            d = conn.recv(65536)
            if not d:
                break
            buf += d
    except OSError:
        pass
    finally:
        conn.close()
    if buf:
        record(buf)


def origin(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)

    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def big(n):
    return "GET http://{O}/{T} HTTP/1.1\r\nHost: {O}\r\nX-Big: " + "a" * n + "\r\n\r\n"


H = "Host: {O}\r\n"
CASES = [
    # (name, request (str, {O} origin, {O2} second origin, {T} token), watched fields)
    ("plain GET", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("Connection-listed field", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "Connection: X-Hop, close\r\nX-Hop: secret\r\n\r\n", ["x-hop"]),
    ("Keep-Alive, TE, Trailer, Upgrade", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\n\r\n", ["keep-alive", "te", "trailer", "upgrade"]),
    ("Proxy-Connection", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "Proxy-Connection: keep-alive\r\nConnection: close\r\n\r\n", ["proxy-connection"]),
    ("Proxy-Authorization (no auth set)", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "Proxy-Authorization: Basic YTpi\r\nConnection: close\r\n\r\n", ["proxy-authorization"]),
    ("response hop-by-hop fields", "GET http://{O}/{T}/resp-hop HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", ["<x-resp-hop", "<keep-alive", "<upgrade", "<proxy-authenticate"]),
    ("Via added (request / response)", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", ["via", "<via"]),
    ("pipelined: 2nd with credentials", "GET http://{O}/{T}/first HTTP/1.1\r\n" + H + "\r\nGET http://{O}/{T}/second HTTP/1.1\r\n" + H + "Proxy-Authorization: Basic YTpi\r\nConnection: close\r\n\r\n", ["proxy-authorization"]),
    ("keep-alive to two origins", "GET http://{O}/{T}/a HTTP/1.1\r\n" + H + "\r\nGET http://{O2}/{T}/b HTTP/1.1\r\nHost: {O2}\r\nConnection: close\r\n\r\n", []),
    ("Content-Length 5 + 0", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello", ["content-length"]),
    ("Content-Length + chunked", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ["content-length", "transfer-encoding"]),
    ("Transfer-Encoding: identity", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Transfer-Encoding: identity\r\n\r\nhello", ["transfer-encoding"]),
    ("chunked in HTTP/1.0", "POST http://{O}/{T} HTTP/1.0\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ["transfer-encoding"]),
    ("Content-Length: +5", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello", []),
    ("space before colon", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Content-Length : 5\r\n\r\nhello", []),
    ("two Host fields", "GET http://{O}/{T} HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", []),
    ("Host differs from URL", "GET http://{O}/{T} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n", ["host"]),
    ("obs-fold", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "X-A: 1\r\n 2\r\nConnection: close\r\n\r\n", []),
    ("bare LF line ends", "GET http://{O}/{T} HTTP/1.1\n" + "Host: {O}\nConnection: close\n\n", []),
    ("chunked request body", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", ["transfer-encoding", "content-length"]),
    ("Content-Length request body", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Content-Length: 5\r\nConnection: close\r\n\r\nhello", ["content-length"]),
    ("Expect: 100-continue", "POST http://{O}/{T} HTTP/1.1\r\n" + H + "Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", ["expect"]),
    ("chunked response", "GET http://{O}/{T}/chunked HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", ["<transfer-encoding", "<content-length"]),
    ("response without length", "GET http://{O}/{T}/nolen HTTP/1.1\r\n" + H + "\r\n", ["<connection"]),
    ("response with 2 lengths", "GET http://{O}/{T}/dup-cl HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("response with CL + chunked", "GET http://{O}/{T}/cl-te HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", ["<content-length", "<transfer-encoding"]),
    ("bytes after the response", "GET http://{O}/{T}/extra HTTP/1.1\r\n" + H + "\r\nGET http://{O}/{T}/next HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("HEAD", "HEAD http://{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("HTTP/1.0 request", "GET http://{O}/{T} HTTP/1.0\r\n" + H + "\r\n", []),
    ("OPTIONS Max-Forwards: 0", "OPTIONS http://{O}/{T} HTTP/1.1\r\n" + H + "Max-Forwards: 0\r\nConnection: close\r\n\r\n", []),
    ("OPTIONS Max-Forwards: 3", "OPTIONS http://{O}/{T} HTTP/1.1\r\n" + H + "Max-Forwards: 3\r\nConnection: close\r\n\r\n", ["max-forwards=2"]),
    ("TRACE Max-Forwards: 0", "TRACE http://{O}/{T} HTTP/1.1\r\n" + H + "Max-Forwards: 0\r\nConnection: close\r\n\r\n", []),
    ("TRACE", "TRACE http://{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("origin-form request", "GET /{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("https:// URL without CONNECT", "GET https://{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("user:pass@ in URL", "GET http://u:p@{O}/{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", ["authorization"]),
    ("CONNECT then a request", "CONNECT {O} HTTP/1.1\r\nHost: {O}\r\n\r\nGET /{T} HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", []),
    ("garbage", "\x16\x03\x01\x00\xff garbage {T}\r\n\r\n", []),
    ("head of 64 KB", big(64 << 10), []),
    ("head of 1 MB", big(1 << 20), []),
    ("150 header lines", "GET http://{O}/{T} HTTP/1.1\r\n" + H + "".join(f"X-{i}: v\r\n" for i in range(150)) + "Connection: close\r\n\r\n", []),
]


def talk(port, data):
    """Sends data, reads until close, 2 s of silence or 6 s in all."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    sender = threading.Thread(target=lambda: _send(s, data), daemon=True)
    sender.start()
    s.settimeout(2)
    end = time.time() + 6
    try:
        while time.time() < end:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except ConnectionResetError:
        got += b" RST"
    except OSError:
        pass
    s.close()
    return got


def _send(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass


def fields(raw, name):
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return [l.split(":", 1)[1].strip() for l in head.split("\r\n")[1:]
            if ":" in l and l.split(":", 1)[0].strip().lower() == name]


def summary(client, seen, watch):
    statuses = re.findall(rb"HTTP/1\.[01] (\d\d\d)", client)
    out = ",".join(s.decode() for s in statuses) or "-"
    if client.endswith(b" RST"):
        out += " RST"
    reqs = []
    for conn in seen:
        for m in re.finditer(rb"(?:^|\r\n\r\n|\n\n)([A-Z]+ \S+ HTTP/1\.[01])", conn):
            line = m.group(1).decode("latin-1")
            method, target, ver = line.split(" ")
            reqs.append(f"{method} {'abs ' if target.startswith('http') else ''}{ver[-3:]}")
    out += f" | {len(reqs)} up" + (f" ({'; '.join(sorted(set(reqs)))})" if reqs else "")
    marks = []
    for w in watch:
        if w.startswith("<"):
            name = w[1:]
            if fields(client, name):
                marks.append(f"<{name}")
        elif "=" in w:
            name, val = w.split("=")
            vals = [v for c in seen for v in fields(c, name)]
            marks.append(f"{name}={','.join(vals) or '-'}")
        elif name_in(seen, w):
            marks.append(w)
    if marks:
        out += " [" + " ".join(marks) + "]"
    return out


def name_in(seen, name):
    return any(fields(c, name) for c in seen)


def main():
    o1, o2 = int(sys.argv[1]), int(sys.argv[2])
    proxies = [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[3:]]
    origin(o1)
    origin(o2)
    time.sleep(0.2)
    rows = []
    for i, (name, req, watch) in enumerate(CASES):
        def one(p):
            pname, port = p
            token = f"c{i}-{pname}"
            data = (req.replace("{O2}", f"127.0.0.1:{o2}")
                    .replace("{O}", f"127.0.0.1:{o1}")
                    .replace("{T}", token)).encode("latin-1")
            client = talk(port, data)
            time.sleep(0.3)
            with LOCK:
                seen = list(RECORD.get(token, []))
            return summary(client, seen, watch)
        with ThreadPoolExecutor(len(proxies)) as ex:
            cells = list(ex.map(one, proxies))
        ours, peers = cells[0], cells[1:]
        differs = all(ours != p for p in peers)
        rows.append((name, cells, differs))
    w = max(len(r[0]) for r in rows)
    cw = [max(len(p[0]), *(len(r[1][j]) for r in rows)) for j, p in enumerate(proxies)]
    print(f"{'case':<{w}}  " + "  ".join(f"{p[0]:<{cw[j]}}" for j, p in enumerate(proxies)))
    for name, cells, differs in rows:
        line = f"{name:<{w}}  " + "  ".join(f"{c:<{cw[j]}}" for j, c in enumerate(cells))
        print(line + ("  <<" if differs else ""))
    print("\ncell: status lines the client read | requests that reached an origin "
          "(method, abs = still absolute-form, version) [watched fields present; "
          "<name: in the response the client read]")
    print(f"rows where {proxies[0][0]} differs from every peer: {sum(r[2] for r in rows)}")


if __name__ == "__main__":
    main()
