"""Runs the shell examples of README.md and docs/*.md, so every command shown works as written.

What runs (everything else in the pages is prose to this script):
  <!-- doctest [server [keep]] [root] [ports=P,Q] [timeout=SECS] -->
  ```sh
      the fenced block right after the mark, run as one bash script from the repository
      root with `set -e`;
      `server` starts it in the background (its own session), waits until each of its
      ports accepts a connection, and stops it (SIGTERM, then SIGKILL) once the page is
      done; `keep` leaves it running for the pages after (the README's quick start),
      and such blocks of the README run first even when only other pages are named; a
      server on the port of an earlier one of the page replaces it; `root` blocks are
      skipped (and said so) when not run as root.
  <!-- doctest table [skip="TEXT"] -->
      before a table with "start" and "then try" columns: each row whose cells are one
      code span is a server (start), stopped once a command has tried it (then try); a
      row whose first cells contain TEXT is skipped; a start command already kept
      running is not started twice.

Ports: every port a block declares (and, in tables, every 127.0.0.1:PORT of a start
command) must be free when the run begins; a busy one is replaced in every block by a free
port, so the examples never meet a server they did not start; for the same reason the run
has its own XDG_RUNTIME_DIR (the capstone's pid files). A failing command is reported
as FILE:LINE with its output.

Usage: doctest.py [-v] [--list] [FILE...]   (default: README.md docs/*.md)
"""

import argparse
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARK = re.compile(r"^<!--\s*doctest(.*?)-->\s*$")
FENCE = re.compile(r"^(```+)\s*(sh|bash|console)?\s*$")
ATTR = re.compile(r'(\w+)(?:=("[^"]*"|\S+))?')
LOCAL_PORT = re.compile(r"127\.0\.0\.1:(\d+)")
PRELUDE = "set -eE -o pipefail; trap 'echo \"__doctest_failed_at__ $LINENO\" >&2' ERR\n"
DEFAULT_TIMEOUT = 120
SERVER_WAIT = 60


class Block:
    def __init__(self, path, line, text, server=False, ports=(), timeout=None, origin="block",
                 keep=False, root=False):
        self.path = path
        self.root = root  # runs only as root (skipped otherwise)
        self.keep = keep  # a server that stays up for the rest of the run
        self.line = line  # line of the block's first command in the page
        self.text = text
        self.server = server
        self.ports = list(ports)
        self.timeout = timeout
        self.origin = origin

    def where(self, offset=0):
        return f"{os.path.relpath(self.path, ROOT)}:{self.line + offset}"


def parse_attrs(s):
    attrs = {}
    for key, value in ATTR.findall(s):
        attrs[key] = value.strip('"') if value else True
    return attrs


def code_span(cell):
    """The command in a table cell that is exactly one code span, else None."""
    cell = cell.strip()
    m = re.fullmatch(r"`([^`]+)`", cell)
    return m.group(1).replace("\\|", "|") if m else None


def split_row(line):
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def parse(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        mark = MARK.match(lines[i])
        m = FENCE.match(lines[i + 1]) if mark and i + 1 < len(lines) else None
        t = mark if mark and parse_attrs(mark.group(1)).get("table") else None
        if m:
            attrs = parse_attrs(mark.group(1))
            fence = m.group(1)
            j = i + 2
            while j < len(lines) and lines[j].strip() != fence:
                j += 1
            ports = [int(p) for p in str(attrs.get("ports", "")).split(",") if p]
            timeout = int(attrs["timeout"]) if "timeout" in attrs else None
            blocks.append(Block(path, i + 3, "\n".join(lines[i + 2 : j]) + "\n",
                                server="server" in attrs, ports=ports, timeout=timeout,
                                keep="keep" in attrs, root="root" in attrs))
            i = j + 1
            continue
        if mark and not t:
            raise SystemExit(f"{path}:{i + 1}: a doctest mark must be followed by a ```sh block or a table")
        if t:
            skip = parse_attrs(t.group(1)).get("skip")
            j = i + 1
            header = split_row(lines[j])
            cols = [h.lower() for h in header]
            start_col, try_col = cols.index("start"), cols.index("then try")
            j += 2  # header and separator
            while j < len(lines) and lines[j].startswith("|"):
                cells = split_row(lines[j])
                if skip and any(skip in c for c in cells[:start_col]):
                    j += 1
                    continue
                start, attempt = code_span(cells[start_col]), code_span(cells[try_col])
                if start:
                    ports = [int(p) for p in LOCAL_PORT.findall(start)]
                    blocks.append(Block(path, j + 1, start + "\n", server=True, ports=ports,
                                        origin="table start"))
                if attempt:
                    blocks.append(Block(path, j + 1, attempt + "\n", origin="table try"))
                j += 1
            i = j
            continue
        i += 1
    return blocks


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(taken):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            return port


def remap_ports(blocks):
    """Moves every declared port that is busy now to a free one, in every block of the run."""
    declared = sorted({p for b in blocks for p in b.ports})
    taken = set(declared)
    mapping = {}
    for port in declared:
        if not port_free(port):
            mapping[port] = free_port(taken)
            taken.add(mapping[port])
    if not mapping:
        return {}
    pattern = re.compile(r"(?<![\d.])(%s)(?!\d)" % "|".join(str(p) for p in mapping))
    # A server whose command only implies its port (the quick start's capstone listens
    # on 8080 by default) cannot be moved: say what to stop rather than fail on.
    for b in blocks:
        implied = [p for p in b.ports if p in mapping and not pattern.search(b.text)]
        if b.server and implied:
            sys.exit(f"doctest: port {implied[0]} is busy, and {b.where()} starts a server "
                     f"whose command implies that port; stop what holds it "
                     f"(a quick-start capstone: target/release/capstone -s quit) and run again")
    for b in blocks:
        b.text = pattern.sub(lambda m: str(mapping[int(m.group(1))]), b.text)
        b.ports = [mapping.get(p, p) for p in b.ports]
    return mapping


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop(proc):
    """Stops the block's whole session: the shell and whatever it left running."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def tail(text, n=30):
    lines = text.rstrip("\n").split("\n")
    return "\n".join("    " + l for l in lines[-n:])


class Runner:
    def __init__(self, verbose, workdir):
        self.verbose = verbose
        self.workdir = workdir
        self.failures = []
        self.skipped = []
        self.count = 0

    def fail(self, where, message, output=""):
        self.failures.append(where)
        print(f"FAIL {where}: {message}")
        if output.strip():
            print(tail(output))

    def script(self, block):
        path = os.path.join(self.workdir, f"block-{self.count}.sh")
        with open(path, "w") as f:
            f.write(PRELUDE + block.text)
        return path

    def start_server(self, block, servers):
        self.count += 1
        log = open(os.path.join(self.workdir, f"server-{self.count}.log"), "w+")
        proc = subprocess.Popen(["bash", self.script(block)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        proc.ports = set(block.ports)
        servers.append(proc)
        deadline = time.time() + (block.timeout or SERVER_WAIT)
        waiting = list(block.ports)
        while waiting and time.time() < deadline:
            if proc.poll() is not None:
                break
            waiting = [p for p in waiting if not accepts(p)]
            if waiting:
                time.sleep(0.2)
        if not block.ports:
            time.sleep(1)
        log.flush()
        log.seek(0)
        output = re.sub(r"__doctest_failed_at__ \d+\n?", "", log.read())
        if proc.poll() is not None:
            self.fail(block.where(), f"server exited with status {proc.returncode}", output)
        elif waiting:
            self.fail(block.where(), f"server not accepting on port(s) {waiting}", output)
        else:
            print(f"ok   {block.where()} (server{' on ' + ','.join(map(str, block.ports)) if block.ports else ''})")
            if self.verbose:
                print(tail(output))

    def run(self, block):
        self.count += 1
        timeout = block.timeout or DEFAULT_TIMEOUT
        proc = subprocess.Popen(["bash", self.script(block)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, text=True, errors="replace")
        try:
            output, _ = proc.communicate(timeout=timeout)
        except KeyboardInterrupt:
            stop(proc)
            raise
        except subprocess.TimeoutExpired:
            stop(proc)
            output, _ = proc.communicate()
            self.fail(block.where(), f"timed out after {timeout} s", output)
            return
        stop(proc)  # anything the block left in the background
        m = re.search(r"__doctest_failed_at__ (\d+)", output)
        clean = re.sub(r"__doctest_failed_at__ \d+\n?", "", output)
        if proc.returncode != 0:
            offset = int(m.group(1)) - 2 if m else 0
            lines = block.text.split("\n")
            command = lines[offset] if 0 <= offset < len(lines) else ""
            self.fail(block.where(offset), f"exit status {proc.returncode}: {command}", clean)
        else:
            print(f"ok   {block.where()}")
            if self.verbose:
                print(tail(clean))

    def page(self, path, blocks):
        print(f"---- {os.path.relpath(path, ROOT)}")
        servers = []
        try:
            for block in blocks:
                if block.root and os.geteuid() != 0:
                    print(f"skip {block.where()} (needs root)")
                    self.skipped.append(block.where())
                    continue
                if not block.server:
                    self.run(block)
                    if block.origin == "table try" and servers:
                        stop(servers.pop())  # a row's server goes once the row is tried
                    continue
                if block.text in self.kept_texts:
                    continue  # already running since an earlier page
                # A server on the port of an earlier one replaces it (the reader stops
                # the first with Ctrl-C, as the page says).
                for proc in [p for p in servers if p.ports & set(block.ports)]:
                    stop(proc)
                    servers.remove(proc)
                if block.keep:
                    self.kept_texts.add(block.text)
                    self.start_server(block, self.kept)
                else:
                    self.start_server(block, servers)
        finally:
            for proc in reversed(servers):
                stop(proc)

    def all(self, pages):
        self.kept, self.kept_texts = [], set()
        mapping = remap_ports([b for _, blocks in pages for b in blocks])
        if mapping:
            print("busy ports moved: " + ", ".join(f"{a}->{b}" for a, b in mapping.items()))
        try:
            for path, blocks in pages:
                if blocks:
                    self.page(path, blocks)
        finally:
            for proc in reversed(self.kept):
                stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="show every block's output")
    ap.add_argument("--list", action="store_true", help="list the runnable blocks and exit")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "*.md")))
    pages = [(os.path.abspath(f), parse(f)) for f in files]
    readme = os.path.join(ROOT, "README.md")
    if readme not in [p for p, _ in pages]:
        # The pages assume what the README keeps running (the quick start's capstone).
        pages.insert(0, (readme, [b for b in parse(readme) if b.keep]))
    if args.list:
        for path, blocks in pages:
            for b in blocks:
                kind = "server" if b.server else "run"
                first = b.text.strip().split("\n")[0]
                print(f"{b.where()}\t{kind}\t{first}")
        return 0
    # A SIGTERM (from `timeout`, or CI) unwinds like Ctrl-C, so the servers still stop.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with tempfile.TemporaryDirectory(prefix="doctest.") as workdir:
        # A runtime directory of the run's own: the capstone keeps its pid file and
        # unpacked site there, so a capstone the reader already runs (its pid file in
        # the usual place) neither blocks the examples' one nor is signalled by them.
        runtime = os.path.join(workdir, "run")
        os.mkdir(runtime, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime
        runner = Runner(args.verbose, workdir)
        runner.all(pages)
    total = sum(len(b) for _, b in pages)
    if runner.failures:
        print(f"\ndoctest: {len(runner.failures)} of {total} blocks failed:")
        for where in runner.failures:
            print(f"  {where}")
        return 1
    skipped = f" ({len(runner.skipped)} skipped: not root)" if runner.skipped else ""
    print(f"\ndoctest: all {total} blocks passed{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
