"""`marteau record` (alias `fl-record`): record a browsing session as a FunkLoad test.

``marteau record [TEST_NAME]`` runs the recording proxy until Ctrl-C,
SIGTERM or ``--duration``; ``marteau record --har FILE [TEST_NAME]`` reads a
HAR exported by a browser instead. With a name ``foo_bar`` it writes
``test_FooBar.py`` and ``FooBar.conf`` (never over existing files); without
one it prints the test's calls, as fl-record did. Bad input exits 2 with one
``Error: ...`` line; the files it checks for are checked before recording,
and a recorded session that cannot be converted is kept as a HAR file.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import tempfile

import click

from marteau.errors import MarteauError
from marteau.record import codegen, proxy
from marteau.record.har import MAX_HAR_BYTES, Exchange, read_har
from marteau.record.session import Recording, build_recording


@click.command("record")
@click.argument("test_name", required=False)
@click.option(
    "--har",
    "har_file",
    metavar="FILE",
    help="Convert this HAR file (a browser's developer tools: Save all as HAR) instead of recording.",
)
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=8090,
    show_default=True,
    help="The recording proxy's port (0: any free one).",
)
@click.option(
    "--listen-host", default="127.0.0.1", show_default=True, help="The proxy's address (an IP)."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop recording after S seconds (default: at Ctrl-C or SIGTERM).",
)
@click.option(
    "--save-har",
    metavar="FILE",
    help="Also keep the proxy's recording as this HAR file (never overwritten).",
)
@click.option(
    "--confdir",
    metavar="DIR",
    help="mitmproxy's directory, where its CA for HTTPS recording is (default ~/.mitmproxy).",
)
@click.option(
    "--mitmdump",
    "mitmdump_path",
    metavar="PATH",
    help=f"The mitmdump program (default ${proxy.MITMDUMP_ENV}, beside Python, or on PATH).",
)
@click.option(
    "-o",
    "--output-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the test module and its conf are written.",
)
@click.option(
    "--max-har-size",
    type=click.IntRange(min=1),
    default=MAX_HAR_BYTES,
    show_default=True,
    metavar="BYTES",
    help="Refuse a larger HAR file.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the proxy's log.")
def record_command(test_name: str | None, **options: object) -> None:
    """Record a browsing session as a FunkLoad test (fl-record)."""
    try:
        record(test_name, **options)  # type: ignore[arg-type]
    except MarteauError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def record(
    test_name: str | None,
    har_file: str | None,
    port: int,
    listen_host: str,
    duration: float | None,
    save_har: str | None,
    confdir: str | None,
    mitmdump_path: str | None,
    output_dir: str,
    max_har_size: int,
    verbose: bool,
) -> None:
    names = codegen.module_names(test_name) if test_name else None
    targets = _targets(names, output_dir)
    if har_file:
        if save_har:
            raise MarteauError("--save-har is for a proxy recording, not with --har")
        _convert(read_har(har_file, max_har_size), har_file, names, targets)
        return
    if save_har and os.path.lexists(save_har):
        raise MarteauError(f"{save_har} already exists: not overwritten")
    program = proxy.find_mitmdump(mitmdump_path)
    with tempfile.TemporaryDirectory(prefix="marteau-record-") as workdir:
        har_path = os.path.join(workdir, "session.har")
        settings = proxy.ProxySettings(listen_host, port, har_path, confdir, verbose)
        with proxy.RecordingProxy(program, settings) as recording_proxy:
            address = recording_proxy.wait_ready()
            click.echo(
                f"Recording through the HTTP proxy http://{address}: set it as the browser's "
                "proxy (for HTTPS, trust mitmproxy's CA, mitmproxy-ca-cert.pem in "
                f"{confdir or '~/.mitmproxy'}). Ctrl-C stops the recording.",
                err=True,
            )
            proxy.record_until_stopped(recording_proxy, duration)
        har_path = recording_proxy.check_har()
        if save_har:
            _copy_new(har_path, save_har)
        try:
            _convert(read_har(har_path, max_har_size), "the recording", names, targets)
        except MarteauError:
            if not save_har:
                kept = os.path.join(output_dir, f"record-{_stamp()}.har")
                _copy_new(har_path, kept)
                click.echo(f"The recorded session is kept in {kept}", err=True)
            raise


def _targets(names: codegen.ModuleNames | None, output_dir: str) -> tuple[str, str] | None:
    """The module and conf paths, refused at once if either exists (before any recording)."""
    if names is None:
        return None
    paths = (
        os.path.join(output_dir, names.module_file),
        os.path.join(output_dir, names.conf_file),
    )
    for path in paths:
        if os.path.lexists(path):
            raise MarteauError(f"{path} already exists: not overwritten")
    if not os.path.isdir(output_dir):
        raise MarteauError(f"--output-dir {output_dir}: no such directory")
    return paths


def _convert(
    exchanges: list[Exchange],
    source: str,
    names: codegen.ModuleNames | None,
    targets: tuple[str, str] | None,
) -> None:
    recording = build_recording(exchanges, source)
    if not recording.pages:
        raise MarteauError(f"{source}: no page recorded on {recording.server_url}")
    if names is None or targets is None:
        click.echo(codegen.calls_source(recording))
        if recording.secrets:
            keys = ", ".join(sorted(recording.secrets))
            click.echo(f"Add to the conf, section [secrets]: {keys}", err=True)
        return
    module = codegen.module_source(recording, names)
    conf, unwritable = codegen.conf_source(recording, names)
    module_path, conf_path = targets
    _write_new(module_path, module, 0o644)
    try:
        _write_new(conf_path, conf, 0o600 if recording.secrets else 0o644)
    except MarteauError:
        os.unlink(module_path)
        raise
    click.echo(_summary(recording, module_path, conf_path, names), err=True)
    for key in unwritable:
        click.echo(
            f"Warning: [secrets] {key}: the recorded value has a line break, an inline "
            f"comment or %( : set it in {conf_path} by hand",
            err=True,
        )


def _summary(
    recording: Recording, module_path: str, conf_path: str, names: codegen.ModuleNames
) -> str:
    dropped = sum(recording.other_hosts.values())
    return (
        f"Created {module_path} and {conf_path}: {len(recording.pages)} pages on "
        f"{recording.server_url} ({recording.resources} resources left to auto-loading, "
        f"{dropped} requests to other hosts dropped). "
        f"Run it with: marteau test {names.module_file}; "
        f"bench it with: marteau bench {names.module_file} {names.test_id}"
    )


def _write_new(path: str, text: str, mode: int) -> None:
    """Create ``path`` (never over an existing file) holding ``text``."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise MarteauError(f"{path} already exists: not overwritten") from None
    except OSError as exc:
        raise MarteauError(f"{path}: cannot write: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _copy_new(source: str, target: str) -> None:
    try:
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst)
    except OSError as exc:
        raise MarteauError(f"{target}: cannot keep the recording: {exc.strerror or exc}") from None


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
