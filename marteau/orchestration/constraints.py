"""The node wheelhouse's pinned versions: `node-constraints.txt`.

The wheelhouse holds Marteau's node wheel and wheels of its requirements
(`install_requires`, with their own dependencies), of the `monitor` extra
(psutil: the monitored hosts install it, the bench nodes do not) and pip. Downloaded by
ranges alone, two wheelhouses built a month apart would differ; downloaded
under this file (`pip download -c`), the same Marteau gives the same node
install wherever and whenever it is built.

`make constraints` (this module's `main`) writes the file again after
`install_requires` changes: pip resolves the requirements, wheels only, for
this Python, and the versions it picks are pinned. A test fails while a
requirement has no pin that satisfies it.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import marteau
from marteau.errors import MarteauError

CONSTRAINTS = Path(__file__).with_name("node-constraints.txt")


def node_requirements(extra: str | None = None) -> list[str]:
    """Marteau's `install_requires` (the node part: no extras), or the requirements of
    one `extra` (``monitor``: what the monitored hosts add).

    From the source tree's setup.cfg when the running code is one (the node
    wheel is built from the running code), else from the installed
    distribution's metadata."""
    setup = Path(marteau.__file__).resolve().parent.parent / "setup.cfg"
    if setup.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(setup)
        if parser.get("metadata", "name", fallback="") == "marteau":
            if extra:
                text = parser.get("options.extras_require", extra, fallback="")
            else:
                text = parser.get("options", "install_requires")
            lines = text.splitlines()
            return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    try:
        requires = metadata.requires("marteau") or []
    except metadata.PackageNotFoundError:
        requires = []
    if extra:
        marker = f'extra == "{extra}"'
        return [r.split(";")[0].strip() for r in requires if marker in r.replace("'", '"')]
    found = [r.split(";")[0].strip() for r in requires if "extra ==" not in r]
    if not found:
        raise MarteauError(
            "cannot find Marteau's requirements: neither a source tree with its "
            "setup.cfg nor an installed distribution"
        )
    return found


def pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """The pinned versions of `path`, by canonical project name."""
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version
    return found


def resolve(requirements: list[str], python: str = sys.executable) -> dict[str, str]:
    """The versions pip installs for `requirements` (wheels only), with their dependencies."""
    with tempfile.TemporaryDirectory(prefix="marteau-constraints-") as tmp:
        report = Path(tmp) / "report.json"
        command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
        command += ["--only-binary=:all:", "--quiet", "--disable-pip-version-check"]
        command += ["--report", str(report), "--", *requirements]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise MarteauError(f"pip cannot resolve {requirements}: {result.stderr.strip()}")
        installs = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"]: item["metadata"]["version"] for item in installs}


def main() -> None:
    """Write `node-constraints.txt` for the node requirements, the monitor extra and pip."""
    versions = resolve(["pip", *node_requirements(), *node_requirements("monitor")])
    lines = [f"{name}=={versions[name]}" for name in sorted(versions, key=str.lower)]
    header = "# Written by `make constraints` (marteau/orchestration/constraints.py).\n"
    CONSTRAINTS.write_text(header + "\n".join(lines) + "\n")
    print(f"{CONSTRAINTS}: {len(lines)} pins")


if __name__ == "__main__":
    main()
