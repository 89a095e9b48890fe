"""What the controller prepares before a run: the node wheelhouse and the test archive.

* **Wheelhouse.** Marteau's own wheel, built here from the code this
  controller runs (deterministically: the same code gives the same bytes),
  twice when this controller runs the compiled engine (`marteau.native`):
  pure (``py3-none-any``) and with the compiled modules, tagged for this
  Python and platform (``cp311-cp311-linux_x86_64``), which pip on a node
  prefers where it fits and passes over elsewhere (the run's provenance
  says which engine each node ran). Plus wheels of the node requirements
  (setup.cfg's `install_requires`), of the `monitor` extra (psutil,
  installed on the monitored hosts only) and of pip itself, at the versions
  pinned in `node-constraints.txt` (`constraints.py`), packed as one tar.
  Nodes install from it with `--no-index`: they need no internet. Its sha256 names the install on the node, so an
  up-to-date node skips it; a test's `deps` do not change it.
* **Test archive.** The test directory (`wdir`) as one `.tar.gz`, without
  VCS data, byte code or earlier results (FunkLoad's exclusions), and the
  wheels of the test's `deps` (binary only: nothing of them is built or run
  here) under `<job>/wheels/`, for the job's own virtualenv on the node.

`python -m marteau.orchestration.prepare PROJECT` writes the extra vars of
a run to `<run dir>/extravars.yml`, every string `!unsafe` (`inert.py`), and
prints them as JSON; the plain `ansible-playbook playbooks/loadtest.yml` path
calls it from its prepare play, which reads the file (never the JSON: values
parsed from a command's output are templated by older ansible-core).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

import marteau
from marteau import native
from marteau.errors import MarteauError
from marteau.orchestration import inert
from marteau.orchestration.constraints import CONSTRAINTS, node_requirements
from marteau.orchestration.project import Project
from marteau.orchestration.sources import packable

NODE_PACKAGES = ("marteau", "funkload", "webunit")
# Not needed on a node: the controller's layers (report, orchestration, service, record).
SKIP_DIRS = {"__pycache__"}
CONTROLLER_ONLY = {"marteau/report", "marteau/orchestration", "marteau/service", "marteau/record"}
ARCHIVE_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "marteau-runs", ".tox"}
ARCHIVE_SKIP_MARKERS = (".log", ".bak", ".pyc", ".gplot", ".png", ".data", ".xml", ".mrt")
EPOCH = (1980, 1, 1, 0, 0, 0)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "marteau"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(name: str) -> Path:
    """Where package `name` lives: importable, or beside `marteau` (a source tree)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    sibling = Path(marteau.__file__).resolve().parent.parent / name
    if (sibling / "__init__.py").is_file():
        return sibling
    raise MarteauError(f"cannot find the {name!r} package to build the node wheel")


def _package_files() -> list[tuple[str, Path]]:
    """The node packages' files, without byte code nor compiled modules (`_compiled_files`)."""
    files = []
    for name in NODE_PACKAGES:
        top = _package_dir(name)
        for directory, dirnames, filenames in os.walk(top):
            relative = Path(name) / Path(directory).relative_to(top)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in SKIP_DIRS and (relative / d).as_posix() not in CONTROLLER_ONLY
            )
            for filename in sorted(filenames):
                if filename.endswith((".pyc", ".pyo", ".so", ".pyd")):
                    continue
                path = Path(directory) / filename
                files.append((f"{name}/{path.relative_to(top).as_posix()}", path))
    return files


def _compiled_files() -> tuple[list[tuple[str, Path]], str]:
    """The engine's compiled modules this controller runs, with mypyc's shared library,
    and the wheel tag they fit; no files (and why) when it runs the pure engine."""
    engine = native.describe()
    if engine != "compiled":
        return [], engine
    files = native.compiled_files()
    if not files:
        return [], "pure: a compiled module or mypyc's shared library is missing"
    root = Path(marteau.__file__).resolve().parent.parent
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return [(path.relative_to(root).as_posix(), path) for path in files], (
        f"{python}-{python}-{platform}"
    )


def _entry_points() -> str:
    try:
        points = metadata.distribution("marteau").entry_points
        lines = [f"{p.name} = {p.value}" for p in points if p.group == "console_scripts"]
    except metadata.PackageNotFoundError:
        lines = []
    lines = lines or ["marteau = marteau.cli:main"]
    return "[console_scripts]\n" + "\n".join(sorted(lines)) + "\n"


def build_node_wheel(directory: Path) -> Path:
    """Marteau's pure node wheel, from the running code, byte-for-byte reproducible."""
    return _write_wheel(directory, [], "py3-none-any")


def build_compiled_wheel(directory: Path) -> tuple[Path | None, str]:
    """The node wheel with the compiled engine this controller runs, for its Python and
    platform (pip prefers it to the pure one where it fits), and its tag; None, and
    why, when this controller runs the pure engine."""
    files, tag = _compiled_files()
    return (_write_wheel(directory, files, tag) if files else None), tag


def _write_wheel(directory: Path, compiled: list[tuple[str, Path]], tag: str) -> Path:
    version = marteau.__version__
    dist_info = f"marteau-{version}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (arcname, path.read_bytes()) for arcname, path in _package_files() + compiled
    ]
    requires = "".join(f"Requires-Dist: {r}\n" for r in node_requirements())
    requires += "Provides-Extra: monitor\n" + "".join(
        f'Requires-Dist: {r}; extra == "monitor"\n' for r in node_requirements("monitor")
    )
    top_level = list(NODE_PACKAGES) + ([f"{native.GROUP}__mypyc"] if compiled else [])
    entries += [
        (
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: marteau\nVersion: {version}\n"
            f"Summary: Marteau's node part (built by the controller)\n"
            f"Requires-Python: >=3.11\n{requires}".encode(),
        ),
        (
            f"{dist_info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: marteau\nRoot-Is-Purelib: {str(not compiled).lower()}"
            f"\nTag: {tag}\n".encode(),
        ),
        (f"{dist_info}/entry_points.txt", _entry_points().encode()),
        (f"{dist_info}/top_level.txt", "\n".join(top_level).encode() + b"\n"),
    ]
    record = []
    for arcname, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"marteau-{version}-{tag}.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in entries:
            info = zipfile.ZipInfo(arcname, EPOCH)
            info.external_attr = (0o755 if arcname.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    if not target.exists() or target.read_bytes() != buffer.getvalue():
        temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        temporary.write_bytes(buffer.getvalue())
        os.replace(temporary, target)
    return target


def download_wheels(
    requirements: list[str],
    python: str = sys.executable,
    with_pip: bool = True,
    constraints: Path | None = None,
) -> Path:
    """Wheels for `requirements` (and pip), cached by the requirement list and
    the `constraints` file's pins.

    Wheels only (`--only-binary=:all:`): a source distribution would run its
    build (a user's `setup.py`) here, on the controller. The requirements come
    after `--`, so none is ever read as a pip option."""
    wanted = (["pip"] if with_pip else []) + list(requirements)
    pinned = ["-c", str(constraints)] if constraints else []
    keyed = sorted(wanted) + ([constraints.read_text()] if constraints else [])
    key = hashlib.sha256("\n".join(keyed).encode()).hexdigest()[:16]
    directory = cache_dir() / "wheels" / key
    done = directory / ".complete"
    if done.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        python,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--dest",
        str(directory),
        *pinned,
        "--",
        *wanted,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise MarteauError(
            f"cannot download the node's wheels ({' '.join(requirements)}): "
            f"{lines[-1] if lines else result.returncode} (Marteau installs `deps` from "
            "wheels only: a requirement published only as a source distribution is refused)"
        )
    done.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return directory


def _deterministic_tar(
    target: Path, members: list[tuple[str, Path]], *, gzip: bool = False
) -> None:
    """A tar (or .tar.gz) whose bytes depend only on the members' names and contents."""
    import gzip as gz

    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    with contextlib.ExitStack() as stack:
        out: io.BufferedIOBase = stack.enter_context(open(temporary, "wb"))
        if gzip:
            out = stack.enter_context(gz.GzipFile(filename="", mode="wb", fileobj=out, mtime=0))
        handle = stack.enter_context(tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT))
        for arcname, path in members:
            info = tarfile.TarInfo(arcname)
            stat = path.stat()
            info.size = stat.st_size
            info.mode = 0o755 if stat.st_mode & 0o111 else 0o644
            info.mtime = 0
            with open(path, "rb") as data:
                handle.addfile(info, data)
    os.replace(temporary, target)


WHEELHOUSE_DAYS = 1  # a wheelhouse of other code or deps is kept this long (a run may ship it)


def build_wheelhouse(directory: Path) -> tuple[Path, str, str]:
    """The wheelhouse tar for the nodes, its sha256 and its compiled wheel's tag (else
    why it has none: `build_compiled_wheel`); one builder at a time: concurrent runs
    share the cache."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        return _build_wheelhouse(directory)


def _build_wheelhouse(directory: Path) -> tuple[Path, str, str]:
    """Named by its content: the tar is shipped after the lock is released, and a
    run with other code may build another one meanwhile."""
    node_wheel = build_node_wheel(directory / "node-wheel")
    compiled, engine = build_compiled_wheel(directory / "node-wheel")
    wheels = download_wheels(
        node_requirements() + node_requirements("monitor"), constraints=CONSTRAINTS
    )
    members = [(node_wheel.name, node_wheel)]
    members += [(compiled.name, compiled)] if compiled else []
    members += [(p.name, p) for p in sorted(wheels.glob("*.whl"))]
    built = directory / "wheelhouse.tar"
    _deterministic_tar(built, members)
    sha = sha256_file(built)
    target = directory / f"wheelhouse-{sha[:16]}.tar"
    os.replace(built, target)
    stale = time.time() - WHEELHOUSE_DAYS * 86400
    for old in directory.glob("wheelhouse-*.tar"):
        if old != target and old.stat().st_mtime < stale:
            old.unlink(missing_ok=True)
    return target, sha, engine


def archive_test(
    project: Project, target: Path, prefix: str = "", extra: tuple[tuple[str, Path], ...] = ()
) -> Path:
    """The test directory as one .tar.gz (no VCS data, byte code or results),
    its members under `prefix/` (`<job>/test`: one unarchive into the jobs dir),
    then the `extra` (name, file) members. Regular files inside the directory
    only: a link out of it is refused."""
    top = project.test_dir
    members = []
    for directory, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(
            d for d in dirnames if d not in ARCHIVE_SKIP_DIRS and d not in ("bin", "lib")
        )
        for filename in sorted(filenames):
            if any(marker in filename for marker in ARCHIVE_SKIP_MARKERS):
                continue
            path = Path(directory) / filename
            if packable(top, path, project.source):
                name = path.relative_to(top).as_posix()
                members.append((f"{prefix}/{name}" if prefix else name, path))
    target.parent.mkdir(parents=True, exist_ok=True)
    _deterministic_tar(target, members + list(extra), gzip=True)
    return target


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 100000:05d}"


def job_vars(
    project: Project,
    run_dir: Path,
    job: str,
    *,
    cycles: str | None = None,
    duration: int | None = None,
    rates: str | None = None,
    arrivals: str | None = None,
    ramp: float | None = None,
    owner: str | None = None,
) -> dict:
    """Build the archive and wheelhouse; return the run's Ansible extra vars (the given
    values, else the project's)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    deps: tuple[tuple[str, Path], ...] = ()
    if project.deps:  # the job's own wheels, beside its test: they go with the job
        wheels = download_wheels(project.deps, with_pip=False)
        deps = tuple((f"{job}/wheels/{p.name}", p) for p in sorted(wheels.glob("*.whl")))
    if project.credentials:
        deps += tuple(
            (f"{job}/test/{CREDENTIALS_DIR}/{path.name}", path)
            for path in credential_files(project, run_dir / "credentials")
        )
    archive = archive_test(project, run_dir / "test.tar.gz", prefix=f"{job}/test", extra=deps)
    wheelhouse, sha, engine = build_wheelhouse(cache_dir() / "wheelhouse")
    values = {
        "marteau_job": job,
        "marteau_owner": owner or default_owner(),
        "marteau_run_dir": str(run_dir),
        "marteau_archive": str(archive),
        "marteau_wheelhouse": str(wheelhouse),
        "marteau_wheelhouse_sha": sha,
        "marteau_wheelhouse_engine": engine,  # for the provenance (run.json)
        "marteau_script": project.script,
        "marteau_test": project.test,
        "marteau_deps": project.deps,
        "marteau_cycles": cycles or project.cycles or "",
        "marteau_duration": duration or project.duration or 0,
        "marteau_project_commit": project.commit or "",
        "marteau_credentials": bool(project.credentials),
    }
    # the open model, only when set (else marteau_bench reads the test's .conf); each node
    # runs its share of the rates (`--rate-share`, worked out by marteau_bench)
    open_model = {
        "marteau_rates": rates or project.rates,
        "marteau_arrivals": arrivals or project.arrivals,
        "marteau_ramp": ramp or project.ramp,
    }
    values.update({name: value for name, value in open_model.items() if value})
    return values


# Where a run's credential files go in the test directory on the nodes (the bench's cwd).
CREDENTIALS_DIR = ".marteau-credentials"


def credential_files(project: Project, target: Path) -> list[Path]:
    """The project's credential conf and files, checked and rewritten into ``target``.

    The conf's paths are resolved as the bench on a node will (against the test
    directory) and must stay inside it: the controller reads them and ships
    them, so a conf naming a file of the controller must not export it. Each
    node serves its own slice of these (`marteau bench --credential-slice`).
    """
    from marteau.funkload.credentials import load_credentials, read_conf, write_credentials

    test_dir = project.test_dir.resolve()
    conf = read_conf(str(project.test_dir / str(project.credentials)))
    if (test_dir / CREDENTIALS_DIR).exists():
        raise MarteauError(f"{test_dir / CREDENTIALS_DIR}: this name is Marteau's, rename it")

    def inside(key: str, value: str) -> str:
        path = (test_dir / value).resolve()
        if not path.is_relative_to(test_dir):
            raise MarteauError(f"{conf.path}: [server] {key}: {value} is outside {test_dir}")
        return str(path)

    groups = inside("groups_path", conf.groups_path) if conf.groups_path else None
    credentials = load_credentials(inside("credentials_path", conf.credentials_path), groups)
    target.mkdir(parents=True, exist_ok=True)
    write_credentials(credentials, target / "passwords.txt", target / "groups.txt")
    (target / "credential.conf").write_text(
        f"[server]\nhost = {conf.host}\nport = {conf.port}\n"
        f"credentials_path = {CREDENTIALS_DIR}/passwords.txt\n"
        f"groups_path = {CREDENTIALS_DIR}/groups.txt\n"
        f"loop_on_first_credentials = {conf.loop_on_first}\nseq = {conf.seq}\n",
        encoding="utf-8",
    )
    return [target / "credential.conf", target / "passwords.txt", target / "groups.txt"]


def default_owner() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    from marteau.orchestration.project import locate

    parser = argparse.ArgumentParser(prog="python -m marteau.orchestration.prepare")
    parser.add_argument("project", help="project directory or git URL")
    parser.add_argument("--run-dir", help="default: ./marteau-runs/<job>")
    parser.add_argument("--job", help="job id (default: time and pid)")
    args = parser.parse_args(argv)
    try:
        project = locate(args.project)
        job = args.job or new_job_id()
        run_dir = Path(args.run_dir or Path("marteau-runs") / job).resolve()
        values = job_vars(project, run_dir, job)
    except MarteauError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    values["marteau_pool"] = project.pool or "marteau"
    values["marteau_nodes"] = project.nodes or 1
    values["marteau_named_nodes"] = project.hosts
    inert.write(values, run_dir / "extravars.yml")
    json.dump(values, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
