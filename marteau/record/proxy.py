"""The recording proxy: mitmproxy's ``mitmdump``, run as a program, saving a HAR.

Why a program and not an import: mitmproxy's last release for Python 3.11
(11.0) pins h11 and cryptography below the versions the server extra runs
with, and an older h11 would put a known request-smuggling bug under
``marteau serve``. Run apart, mitmproxy lives in its own environment (pipx,
a venv, or ``pip install 'marteau[record]'`` in a recorder-only one) and
Marteau reads only the HAR its ``hardump`` option writes when it exits: the
same input as ``marteau record --har``, through the same checks.
"""

from __future__ import annotations

import collections
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import click

from marteau.errors import MarteauError

MITMDUMP_ENV = "MARTEAU_MITMDUMP"
START_TIMEOUT = 60.0  # mitmdump creates its CA on its first start
STOP_TIMEOUT = 60.0  # writing the HAR of a long session
_LISTENING = re.compile(r"proxy listening at (\S+):(\d+)")


def find_mitmdump(explicit: str | None = None) -> str:
    """The mitmdump program: ``--mitmdump``, ``$MARTEAU_MITMDUMP``, beside Python, or on PATH."""
    chosen = explicit or os.environ.get(MITMDUMP_ENV)
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise MarteauError(f"mitmdump program {chosen!r}: not an executable file")
        return chosen
    beside = os.path.join(os.path.dirname(sys.executable), "mitmdump")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mitmdump")
    if not found:
        raise MarteauError(
            "recording needs mitmproxy's mitmdump: install it (pipx install mitmproxy, or "
            f"pip install 'marteau[record]'), or give its path with --mitmdump or ${MITMDUMP_ENV}"
        )
    return found


@dataclass(frozen=True)
class ProxySettings:
    host: str  # an IP address to listen on
    port: int  # 0: any free port
    har_path: str  # where mitmdump writes the HAR when it stops
    confdir: str | None  # mitmproxy's directory (its CA); None: its default, ~/.mitmproxy
    verbose: bool  # relay mitmdump's own log lines


class RecordingProxy:
    """One mitmdump process, started in its own session so that only we stop it.

    Use it as a context manager: leaving the block stops the process.
    """

    def __init__(self, program: str, settings: ProxySettings) -> None:
        try:
            ipaddress.ip_address(settings.host)
        except ValueError:
            raise MarteauError(f"--listen-host {settings.host!r}: not an IP address") from None
        self.settings = settings
        self.address = ""
        self._ready = threading.Event()
        self._output: collections.deque[str] = collections.deque(maxlen=20)
        arguments = [
            program,
            "--listen-host",
            settings.host,
            "--listen-port",
            str(settings.port),
            "--set",
            f"hardump={settings.har_path}",
            "--set",
            "flow_detail=0",
            "--set",
            "stream_large_bodies=16m",
        ]
        if settings.confdir:
            arguments += ["--set", f"confdir={settings.confdir}"]
        try:
            self._process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise MarteauError(f"cannot start {program}: {exc.strerror or exc}") from None
        threading.Thread(target=self._read_output, daemon=True).start()

    def __enter__(self) -> RecordingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        """Never leave mitmdump behind (an error or a Ctrl-C before the recording began)."""
        if self.running():
            self.stop()

    def _read_output(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self._output.append(line)
            if self.settings.verbose:
                click.echo(f"mitmdump: {line}", err=True)
            match = _LISTENING.search(line)
            if match and not self._ready.is_set():
                self.address = f"{match.group(1)}:{match.group(2)}"
                self._ready.set()

    def wait_ready(self) -> str:
        """The ``host:port`` the proxy listens on, once it does."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.1):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise MarteauError(f"the recording proxy did not start: {self._tail()}")
        return self.address

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """Stop mitmdump (SIGTERM: it writes the HAR, then exits); kill it if it hangs."""
        if self.running():
            self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise MarteauError(
                f"the recording proxy did not stop within {STOP_TIMEOUT:.0f} s: killed"
            ) from None

    def _tail(self) -> str:
        lines = [line for line in self._output if line.strip()]
        return " | ".join(lines[-5:]) or f"exit status {self._process.poll()}"

    def check_har(self) -> str:
        """The HAR path, or an error with mitmdump's last lines when it wrote none."""
        if not os.path.exists(self.settings.har_path):
            raise MarteauError(f"the recording proxy wrote no session: {self._tail()}")
        return self.settings.har_path


def record_until_stopped(proxy: RecordingProxy, duration: float | None) -> None:
    """Wait for Ctrl-C, SIGTERM, ``duration`` seconds or the proxy's own end; then stop it."""
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while not stop.wait(0.2):
            if not proxy.running():
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        proxy.stop()
