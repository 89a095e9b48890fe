"""Git's smart-HTTP protocol on 127.0.0.1 for the clone tests, and the processes a clone
leaves.

`GitHttpServer` runs `git http-backend` (git's own server side, as CGI) behind a stdlib
HTTP server that sends its answers at a fixed pace and counts the bytes it sent: a
clone stopped at a size cap while it runs has received a fraction of the pack, a clone
checked only once done has received all of it. It is the transport users of a service
clone over (https), through `git remote-http` like them, which file:// would skip.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CHUNK = 16384


class GitHttpServer:
    """The repositories under `root`, served by `git http-backend` at `rate` bytes/s."""

    def __init__(self, root: Path, rate: float | None = None) -> None:
        self.root, self.rate = root, rate
        self.sent = 0  # bytes of answers' bodies sent
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: simple to pace

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": split.path,
                    "QUERY_STRING": split.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                    "CONTENT_LENGTH": str(length),
                    "REMOTE_ADDR": self.client_address[0],
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding") or "",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol") or "",
                }
                answer = subprocess.run(
                    ["git", "http-backend"], input=body, capture_output=True, env=env, timeout=60
                ).stdout
                head, _, data = answer.partition(b"\r\n\r\n")
                if not _:
                    head, _, data = answer.partition(b"\n\n")
                headers = [line.split(b":", 1) for line in head.splitlines() if b":" in line]
                status = 200
                for name, value in headers:
                    if name.strip().lower() == b"status":
                        status = int(value.split()[0])
                self.send_response(status)
                for name, value in headers:
                    if name.strip().lower() != b"status":
                        self.send_header(name.decode().strip(), value.decode().strip())
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for start in range(0, len(data), CHUNK):
                        self.wfile.write(data[start : start + CHUNK])
                        with server._lock:
                            server.sent += min(CHUNK, len(data) - start)
                        if server.rate:
                            time.sleep(CHUNK / server.rate)
                except OSError:  # the clone was killed: it reads no more
                    return

            do_GET = do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> GitHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def make_repo(path: Path, files: dict[str, bytes]) -> Path:
    """A bare repository at `path` holding one commit of `files` on branch main."""
    work = path.with_name(path.name + "-work")
    work.mkdir(parents=True)
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    git = ["git", "-C", str(work), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(path)], check=True)
    return path


def live_processes() -> dict[int, tuple[int, bytes]]:
    """{pid: (process group, command line)} of every process not a zombie."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if state not in "ZX":
            found[int(entry)] = (int(pgrp), cmdline)
    return found


def processes_with(text: str) -> dict[int, int]:
    """{pid: process group} of the live processes whose command line holds `text`."""
    return {pid: group for pid, (group, cmd) in live_processes().items() if text.encode() in cmd}


def group_alive(pgid: int) -> list[int]:
    """The live processes of process group `pgid`."""
    return [pid for pid, (group, _cmd) in live_processes().items() if group == pgid]
