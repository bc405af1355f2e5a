#!/usr/bin/env python3
"""Sends the same raw HTTP/1 requests to several servers and prints their status codes.

Usage: http_battery.py NAME=PORT [NAME=PORT ...]   (the first two are ours, the rest peers)

Each request goes on a fresh loopback connection; only the status line is read. A row
is marked `<<` when one of ours answers differently from every peer. `{ETAG}` and `{LM}`
in a request are filled per server from its answer to `GET /digits.txt`. Exits 0.
"""
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

OLD = "Thu, 01 Jan 1970 00:00:01 GMT"
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"


def g(target="/digits.txt", extra="", version="HTTP/1.1", method="GET", host="Host: t\r\n"):
    return f"{method} {target} {version}\r\n{host}{extra}\r\n".encode("latin-1")


def raw(s):
    return s.encode("latin-1")


R = []  # (group, name, request bytes)


def add(group, name, req):
    R.append((group, name, req if isinstance(req, bytes) else raw(req)))


# ---- request line -----------------------------------------------------------------
L = "request line"
add(L, "GET / HTTP/1.1", g("/"))
add(L, "GET / HTTP/1.0 (no Host)", g("/", version="HTTP/1.0", host=""))
add(L, "HTTP/1.1 without Host", g("/", host=""))
add(L, "lowercase method", g("/", method="get"))
add(L, "two spaces before target", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n")
add(L, "trailing space after version", "GET / HTTP/1.1 \r\nHost: t\r\n\r\n")
add(L, "HTTP/0.9 style (no version)", "GET /\r\n\r\n")
add(L, "lowercase http/1.1", g("/", version="http/1.1"))
add(L, "HTTP/1.2", g("/", version="HTTP/1.2"))
add(L, "HTTP/2.0", g("/", version="HTTP/2.0"))
add(L, "HTTP/3.0", g("/", version="HTTP/3.0"))
add(L, "HTTP/1", g("/", version="HTTP/1"))
add(L, "HTTP/1.10", g("/", version="HTTP/1.10"))
add(L, "HTTP/01.1", g("/", version="HTTP/01.1"))
add(L, "HTTP/9.9", g("/", version="HTTP/9.9"))
add(L, "h2c preface PRI * HTTP/2.0", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
add(L, "GET * HTTP/1.1", g("*"))
add(L, "target without slash", g("digits.txt"))
add(L, "absolute-form http://", g("http://t/digits.txt"))
add(L, "absolute-form https://", g("https://t/digits.txt"))
add(L, "absolute-form other host", g("http://other.example/digits.txt"))
add(L, "double slash //digits.txt", g("//digits.txt"))
add(L, "query", g("/digits.txt?x=1&y"))
add(L, "fragment in target", g("/digits.txt#frag"))
add(L, "percent-encoded letter", g("/%64igits.txt"))
add(L, "percent-encoded dot", g("/digits%2etxt"))
add(L, "bad percent %zz", g("/%zz"))
add(L, "truncated percent %4", g("/digits.txt%4"))
add(L, "percent-encoded NUL", g("/%00"))
add(L, "space inside target", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n")
add(L, "DEL byte in target", g("/\x7f"))
add(L, "raw UTF-8 in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n")
add(L, "bare LF line ends", "GET /digits.txt HTTP/1.1\nHost: t\n\n")
add(L, "empty lines before request", "\r\n\r\nGET /digits.txt HTTP/1.1\r\nHost: t\r\n\r\n")
add(L, "tabs as separators", "GET\t/\tHTTP/1.1\r\nHost: t\r\n\r\n")
add(L, "URI of 9000 bytes", g("/" + "a" * 9000))
add(L, "URI of 2000 bytes (404)", g("/" + "a" * 2000))
add(L, "garbage line", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n")
add(L, "method only", "GET\r\n\r\n")

# ---- header syntax ----------------------------------------------------------------
H = "header syntax"
add(H, "two Host lines", g("/", extra="Host: u\r\n"))
add(H, "line without colon", g("/", extra="NoColon\r\n"))
add(H, "space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n")
add(H, "obs-fold continuation", g("/", extra="X-A: a\r\n b\r\n"))
add(H, "bad char in name", g("/", extra="X(A: a\r\n"))
add(H, "empty name", g("/", extra=": a\r\n"))
add(H, "NUL in value", g("/", extra="X-A: a\x00b\r\n"))
add(H, "CR alone in value", g("/", extra="X-A: a\rb\r\n"))
add(H, "header line of 20000 bytes", g("/", extra="X-A: " + "a" * 20000 + "\r\n"))
add(H, "header line of 4000 bytes", g("/", extra="X-A: " + "a" * 4000 + "\r\n"))
add(H, "101 header lines", g("/", extra="".join(f"X-{i}: v\r\n" for i in range(101))))
add(H, "60 header lines", g("/", extra="".join(f"X-{i}: v\r\n" for i in range(60))))
add(H, "value with trailing spaces", g("/", extra="X-A: a   \r\n"))
add(H, "empty value", g("/", extra="X-A:\r\n"))
add(H, "obs-text in value", g("/", extra="X-A: \xe9\r\n"))
add(H, "Connection: close", g("/", extra="Connection: close\r\n"))
add(H, "Connection: keep-alive, Upgrade", g("/", extra="Connection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n"))
add(H, "Expect: 100-continue (no body)", g("/", extra="Expect: 100-continue\r\n"))
add(H, "Expect: something-else", g("/", extra="Expect: something-else\r\n"))

# ---- Host forms -------------------------------------------------------------------
O = "Host"
for name, v in [
    ("empty", ""),
    ("name:port", "t:80"),
    ("IPv4", "127.0.0.1"),
    ("IPv6 literal", "[::1]"),
    ("IPv6 literal with port", "[::1]:80"),
    ("bad host/x", "bad host/x"),
    ("a/b", "a/b"),
    ("port not a number", "t:abc"),
    ("colon, empty port", "t:"),
    ("..", ".."),
    ("a..b", "a..b"),
    ("leading dash", "-a"),
    ("underscore", "a_b"),
    ("punycode", "xn--bcher-kva.example"),
    ("backslash", "t\\x"),
    ("unclosed [", "[::1"),
    ("port 99999", "t:99999"),
    ("userinfo", "user@t"),
    ("two ports", "t:1:2"),
    ("trailing dot", "t."),
]:
    add(O, f"Host: {name}", g("/", host=f"Host: {v}\r\n"))
add(O, "Host on HTTP/1.0", g("/", version="HTTP/1.0"))
add(O, "bad Host on HTTP/1.0", g("/", version="HTTP/1.0", host="Host: bad host/x\r\n"))

# ---- methods and paths ------------------------------------------------------------
M = "method/path"
add(M, "HEAD /", g("/", method="HEAD"))
add(M, "POST / (no body)", g("/", method="POST", extra="Content-Length: 0\r\n"))
add(M, "POST / with body", g("/", method="POST", extra="Content-Length: 3\r\n") + b"abc")
add(M, "PUT /digits.txt", g(method="PUT", extra="Content-Length: 0\r\n"))
add(M, "DELETE /digits.txt", g(method="DELETE"))
add(M, "OPTIONS *", g("*", method="OPTIONS"))
add(M, "OPTIONS /", g("/", method="OPTIONS"))
add(M, "TRACE /", g("/", method="TRACE"))
add(M, "CONNECT t:80", g("t:80", method="CONNECT"))
add(M, "PATCH /", g("/", method="PATCH"))
add(M, "unknown method FOO", g("/", method="FOO"))
add(M, "bad method G@T", g("/", method="G@T"))
add(M, "method of 100 letters", g("/", method="X" * 100))
add(M, "directory without slash", g("/dir"))
add(M, "directory with slash", g("/dir/"))
add(M, "directory without index", g("/noindex/"))
add(M, "missing file", g("/missing.txt"))
add(M, "file with trailing slash", g("/digits.txt/"))
add(M, "HEAD missing file", g("/missing.txt", method="HEAD"))

# ---- conditionals -----------------------------------------------------------------
C = "conditional"
for name, extra in [
    ("If-None-Match: *", "If-None-Match: *"),
    ("If-None-Match: own ETag", "If-None-Match: {ETAG}"),
    ("If-None-Match: W/own ETag", "If-None-Match: W/{ETAG}"),
    ("If-None-Match: other", 'If-None-Match: "x"'),
    ("If-None-Match: list with own", 'If-None-Match: "x", {ETAG}'),
    ("If-None-Match: unquoted junk", "If-None-Match: junk"),
    ("If-Modified-Since: own date", "If-Modified-Since: {LM}"),
    ("If-Modified-Since: 1970", f"If-Modified-Since: {OLD}"),
    ("If-Modified-Since: 2100", f"If-Modified-Since: {FUTURE}"),
    ("If-Modified-Since: garbage", "If-Modified-Since: yesterday"),
    ("INM other + IMS own date", 'If-None-Match: "x"\r\nIf-Modified-Since: {LM}'),
    ("INM own + IMS 1970", f"If-None-Match: {{ETAG}}\r\nIf-Modified-Since: {OLD}"),
    ("If-Match: own ETag", "If-Match: {ETAG}"),
    ("If-Match: other", 'If-Match: "x"'),
    ("If-Match: *", "If-Match: *"),
    ("If-Match: W/own ETag", "If-Match: W/{ETAG}"),
    ("If-Unmodified-Since: 1970", f"If-Unmodified-Since: {OLD}"),
    ("If-Unmodified-Since: own date", "If-Unmodified-Since: {LM}"),
    ("If-Unmodified-Since: garbage", "If-Unmodified-Since: never"),
    ("If-Match own + IUS 1970", f"If-Match: {{ETAG}}\r\nIf-Unmodified-Since: {OLD}"),
    ("If-Match other + INM own", 'If-Match: "x"\r\nIf-None-Match: {ETAG}'),
    ("IUS 1970 + INM own", f"If-Unmodified-Since: {OLD}\r\nIf-None-Match: {{ETAG}}"),
]:
    add(C, name, g(extra=extra + "\r\n"))
add(C, "HEAD + If-None-Match own", g(method="HEAD", extra="If-None-Match: {ETAG}\r\n"))
add(C, "If-Match other on missing file", g("/missing.txt", extra='If-Match: "x"\r\n'))
add(C, "If-None-Match * on missing file", g("/missing.txt", extra="If-None-Match: *\r\n"))

# ---- ranges -----------------------------------------------------------------------
G = "range"
for name, v in [
    ("0-0", "bytes=0-0"),
    ("0-0,2-3 (two parts)", "bytes=0-0,2-3"),
    ("0-1,2-3 (adjacent)", "bytes=0-1,2-3"),
    ("-3 (suffix)", "bytes=-3"),
    ("5- (open)", "bytes=5-"),
    ("100- (past the end)", "bytes=100-"),
    ("3-1 (reversed)", "bytes=3-1"),
    ("x (junk)", "bytes=x"),
    ("items=0-1 (other unit)", "items=0-1"),
    ("0-0,100-200 (one satisfiable)", "bytes=0-0,100-200"),
    ("100-200,300-400 (none satisfiable)", "bytes=100-200,300-400"),
    ("17 ranges", "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 10)) + "," + ",".join(f"{i}-{i}" for i in range(0, 7))),
    ("0-7,2-9 (overlap > file)", "bytes=0-7,2-9"),
    ("empty set", "bytes="),
    ("-0", "bytes=-0"),
    ("spaces around =", "bytes = 0-0"),
    ("0-0, ,2-3 (empty member)", "bytes=0-0, ,2-3"),
    ("huge number", "bytes=0-99999999999999999999"),
]:
    add(G, f"Range: {name}", g(extra=f"Range: {v}\r\n"))
add(G, "two Range lines", g(extra="Range: bytes=0-0\r\nRange: bytes=1-1\r\n"))
add(G, "If-Range own ETag", g(extra="Range: bytes=0-0\r\nIf-Range: {ETAG}\r\n"))
add(G, "If-Range other ETag", g(extra='Range: bytes=0-0\r\nIf-Range: "x"\r\n'))
add(G, "If-Range own date", g(extra="Range: bytes=0-0\r\nIf-Range: {LM}\r\n"))
add(G, "If-Range 1970", g(extra=f"Range: bytes=0-0\r\nIf-Range: {OLD}\r\n"))
add(G, "If-Range W/own ETag", g(extra="Range: bytes=0-0\r\nIf-Range: W/{ETAG}\r\n"))
add(G, "big file, three ranges", g("/big.bin", extra="Range: bytes=0-9,5000-5009,-10\r\n"))
add(G, "HEAD with two ranges", g(method="HEAD", extra="Range: bytes=0-0,2-3\r\n"))
add(G, "Range on a 404", g("/missing.txt", extra="Range: bytes=0-0\r\n"))

# ---- transfer codings and bodies ----------------------------------------------------
T = "framing"
add(T, "TE chunked, valid body", g(extra="Transfer-Encoding: chunked\r\n") + b"3\r\nabc\r\n0\r\n\r\n")
add(T, "TE xchunked", g(extra="Transfer-Encoding: xchunked\r\n"))
add(T, "TE identity", g(extra="Transfer-Encoding: identity\r\n"))
add(T, "TE gzip, chunked", g(extra="Transfer-Encoding: gzip, chunked\r\n") + b"0\r\n\r\n")
add(T, "TE chunked, chunked", g(extra="Transfer-Encoding: chunked, chunked\r\n") + b"0\r\n\r\n")
add(T, "TE chunked, gzip", g(extra="Transfer-Encoding: chunked, gzip\r\n"))
add(T, "TE gzip", g(extra="Transfer-Encoding: gzip\r\n"))
add(T, "TE chunked + Content-Length", g(extra="Transfer-Encoding: chunked\r\nContent-Length: 5\r\n") + b"0\r\n\r\n")
add(T, "two different Content-Lengths", g(extra="Content-Length: 1\r\nContent-Length: 2\r\n") + b"ab")
add(T, "two equal Content-Lengths", g(extra="Content-Length: 2\r\nContent-Length: 2\r\n") + b"ab")
add(T, "Content-Length: 2, 2", g(extra="Content-Length: 2, 2\r\n") + b"ab")
add(T, "Content-Length: -1", g(extra="Content-Length: -1\r\n"))
add(T, "Content-Length: abc", g(extra="Content-Length: abc\r\n"))
add(T, "Content-Length: +5", g(extra="Content-Length: +5\r\n") + b"abcde")
add(T, "GET with a 5-byte body", g(extra="Content-Length: 5\r\n") + b"abcde")
add(T, "TE chunked on HTTP/1.0", g(version="HTTP/1.0", extra="Transfer-Encoding: chunked\r\n") + b"0\r\n\r\n")
add(T, "TE chunked, bad chunk size", g(extra="Transfer-Encoding: chunked\r\n") + b"zz\r\n\r\n")
add(T, "Content-Length: 2000000", g(extra="Content-Length: 2000000\r\n"))
add(T, "TE chunked, chunk of 2 MiB", g(extra="Transfer-Encoding: chunked\r\n") + b"200000\r\n")
add(T, "TE 'chunked ' (trailing space)", g(extra="Transfer-Encoding: chunked \r\n") + b"0\r\n\r\n")
add(T, "TE empty value", g(extra="Transfer-Encoding: \r\n"))

# ---- traversal --------------------------------------------------------------------
X = "traversal"
for t in [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/dir/../digits.txt",
    "/dir/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..",
    "/dir/..%5c..%5csecret.txt",
    "/./digits.txt",
    "//..//secret.txt",
    "/digits.txt%00.html",
    "/.%2e/secret.txt",
    "/dir/./../digits.txt",
    "/link-out",
]:
    add(X, t, g(t))


def status(port, req, timeout=3.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(req)
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            if not buf:
                return "EOF"
            line = buf.split(b"\n", 1)[0]
            parts = line.split(b" ")
            if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
                return parts[1].decode()
            return "junk"
    except socket.timeout:
        return "T/O"
    except ConnectionResetError:
        return "RST"
    except OSError as e:
        return f"E{e.errno}"


def validators(port):
    """The server's ETag and Last-Modified for /digits.txt."""
    et, lm = '"none"', OLD
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(g(extra="Connection: close\r\n"))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    for line in buf.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.lower() == "etag":
            et = v.strip()
        elif k.lower() == "last-modified":
            lm = v.strip()
    return et, lm


def run(name_port):
    name, port = name_port
    et, lm = validators(port)
    out = []
    for _, _, req in R:
        req = req.replace(b"{ETAG}", et.encode()).replace(b"{LM}", lm.encode())
        out.append(status(port, req))
    return name, out


def main():
    servers = [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[1:]]
    ours, peers = servers[:2], servers[2:]
    with ThreadPoolExecutor(len(servers)) as ex:
        results = dict(ex.map(run, servers))
    names = [n for n, _ in servers]
    w = max(len(n) for _, n, _ in R) + 2
    print(f"{'#':>3}  {'group':<14}{'request':<{w}}" + "".join(f"{n:>10}" for n in names))
    marked = 0
    for i, (group, name, _) in enumerate(R):
        row = [results[n][i] for n in names]
        theirs = {results[n][i] for n, _ in peers}
        odd = any(results[n][i] not in theirs for n, _ in ours)
        marked += odd
        print(f"{i + 1:>3}  {group:<14}{name:<{w}}" + "".join(f"{c:>10}" for c in row) + ("  <<" if odd else ""))
    print(f"\n{len(R)} requests; {marked} rows where ours differ from every peer (marked <<)")


if __name__ == "__main__":
    main()
