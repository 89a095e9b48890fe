"""`marteau submit PATH|GIT_URL --server URL`: queue a job on a `marteau serve`.

Only the standard library: it runs where CI runs, with the node-side install.
"""

from __future__ import annotations

import io
import json
import secrets
import signal
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn, TextIO

import click

from marteau import exits

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "marteau-runs", ".venv", "venv", ".tox"}


def archive_directory(root: Path) -> bytes:
    """The project directory as a .tar.gz (without VCS data, byte code, virtualenvs)."""
    buffer = io.BytesIO()

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in SKIP_DIRS for p in parts) or info.name.endswith((".pyc", ".pyo")):
            return None
        return info

    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root, arcname=root.resolve().name or "project", filter=keep)
    return buffer.getvalue()


def _multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "marteau-" + secrets.token_hex(12)
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    out.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="{filename}"\r\n'
        "Content-Type: application/gzip\r\n\r\n".encode()
    )
    out.write(data + b"\r\n" + f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/")
        self.token = token

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ):
        request = urllib.request.Request(self.server + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        return urllib.request.urlopen(request, timeout=60)

    def json(self, method: str, path: str, payload: dict | None = None) -> dict:
        body = json.dumps(payload).encode() if payload is not None else None
        with self.request(method, path, body, "application/json" if body else None) as answer:
            return json.loads(answer.read())


def _error(exc: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(exc.read()).get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"{exc.code} {exc.reason}" + (f": {detail}" if detail else "")


@click.command(
    "submit", context_settings={"help_option_names": ["-h", "--help"]}, epilog=exits.HELP
)
@click.argument("source", metavar="PATH|GIT_URL")
@click.option(
    "--server", envvar="MARTEAU_SERVER", required=True, help="The service's URL ($MARTEAU_SERVER)."
)
@click.option(
    "--token", envvar="MARTEAU_TOKEN", required=True, help="An API token ($MARTEAU_TOKEN)."
)
@click.option("--ref", help="Branch, tag or commit of a git URL.")
@click.option("-c", "--cycles", metavar="5:10:20")
@click.option("-D", "--duration", type=click.IntRange(min=1), metavar="S")
@click.option("--nodes", type=click.IntRange(min=1))
@click.option("--pool", metavar="GROUP")
@click.option("--script")
@click.option("--test", metavar="Class.method")
@click.option("-l", "--label")
@click.option("-u", "--url", help="Override the test's [main] url.")
@click.option("--thresholds", metavar="FILE", help="Thresholds file, relative to the project.")
@click.option("--split", is_flag=True)
@click.option("--wait", is_flag=True, help="Follow the console; exit with the job's result.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="On stdout one JSON object: the job as the API gives it (its end with --wait, "
    "the console then on stderr), or the error.",
)
def submit_command(
    source: str, server: str, token: str, wait: bool, as_json: bool, **options: object
) -> None:
    """Queue a load test on a Marteau service, from a local project directory (sent as
    an archive) or a git URL; print the job's URL. With --wait, follow its console and
    exit with the job's status, as `marteau run` would (2: refused by the service)."""

    def refused(message: str) -> NoReturn:
        click.echo(f"Error: {server}: {message}", err=True)
        if as_json:
            click.echo(json.dumps({"error": message, "exit_status": exits.BAD_INPUT}))
        sys.exit(exits.BAD_INPUT)

    client = Client(server, token)
    fields = {k: v for k, v in options.items() if v not in (None, False)}
    path = Path(source)
    try:
        if path.is_dir():
            if fields.pop("ref", None):
                raise click.UsageError("--ref goes with a git URL")
            body, content_type = _multipart(
                {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()},
                f"{path.resolve().name or 'project'}.tar.gz",
                archive_directory(path),
            )
            with client.request("POST", "/api/jobs/upload", body, content_type) as answer:
                job = json.loads(answer.read())
        else:
            job = client.json("POST", "/api/jobs", {"git_url": source, **fields})
    except urllib.error.HTTPError as exc:
        refused(_error(exc))
    except (urllib.error.URLError, OSError) as exc:
        refused(str(exc))
    if not wait:
        click.echo(json.dumps(job) if as_json else job["url"])
        return
    click.echo(job["url"], err=as_json)
    state = follow(client, job["id"], sys.stderr if as_json else sys.stdout)
    ended = client.json("GET", f"/api/jobs/{job['id']}")
    status = job_exit(state, ended.get("exit_code"))
    if as_json:
        click.echo(json.dumps({**ended, "exit_status": status}))
        sys.exit(status)
    reason = ended.get("exit_reason") or ""
    click.echo(f"job {job['id']} {state}" + (f": {reason}" if reason and reason != "done" else ""))
    if ended.get("report_url"):
        click.echo(f"Report: {ended['report_url']}")
    sys.exit(status)


def job_exit(state: str, code: int | None) -> int:
    """The job's own `marteau run` status (marteau.exits): the same table as a local run.
    A job cancelled on the service ends as its run would on SIGTERM; one that
    failed without a status of its own (worker lost, duration limit) as 1."""
    if state == "succeeded":
        return exits.OK
    if state == "cancelled":
        return exits.SIGNAL_BASE + signal.SIGTERM
    if isinstance(code, int) and 0 < code <= exits.ERRORS:
        return code
    return exits.FAILURES


def follow(client: Client, job_id: int, out: TextIO) -> str:
    """Print the console to `out` as it comes (server-sent events); return the final
    state."""
    offset = 0
    while True:
        try:
            with client.request(
                "GET", f"/api/jobs/{job_id}/console/stream?offset={offset}"
            ) as answer:
                event = None
                for raw in answer:
                    line = raw.decode("utf-8", "replace").rstrip("\n").rstrip("\r")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "line":
                        out.write(line[6:] + "\n")
                        out.flush()
                    elif line.startswith("id: ") and line[4:].isdigit():
                        offset = int(line[4:])
                    elif line.startswith("data: ") and event == "end":
                        return line[6:]
        except (urllib.error.URLError, OSError) as exc:  # reconnect from where we were
            click.echo(f"(console interrupted: {exc}; reconnecting)", err=True)
            time.sleep(1)
        state = client.json("GET", f"/api/jobs/{job_id}")["state"]
        if state in ("succeeded", "failed", "cancelled"):
            return state
