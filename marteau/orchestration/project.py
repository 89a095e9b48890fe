"""A load-test project: its `.marteau.yml`, located in a directory or a git URL.

`.marteau.yml` (FunkLoad.md §6.2, plus `pool`, `thresholds`, `email`, `compare`) is
validated strictly: an unknown key, a value of the wrong type or a missing
`script`/`test` is a `MarteauError` naming the file, the key and its line.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marteau.engine.arrivals import ARRIVALS
from marteau.errors import MarteauError
from marteau.orchestration.deps import check_requirement
from marteau.orchestration.sources import check_links
from marteau.orchestration.values import text_problem

CONFIG_NAME = ".marteau.yml"
# `marteau run URL`: the longest its clone or pull may take (the whole git process group)
CHECKOUT_SECONDS = 300.0

# key -> (accepted python types, what to say when the type is wrong)
KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"),
    "script": ((str,), "a file name (string)"),
    "test": ((str,), "Class.method (string)"),
    "xml": ((str,), "a file name (string)"),
    "wdir": ((str,), "a directory relative to the project root (string)"),
    "nodes": ((int, list), "a number of nodes (integer >= 1) or a list of host names"),
    "deps": ((list,), "a list of PEP 508 requirements (package names)"),
    "cycles": ((str, int), "a cycle list such as 10:20:30"),
    "rates": ((str, int, float), "tests per second per cycle such as 50:100:200 (open model)"),
    "arrivals": ((str,), "constant or poisson (with rates)"),
    "ramp": ((int, float), "seconds of ramp before each window, a number >= 0 (with rates)"),
    "duration": ((int,), "seconds per cycle (integer >= 1)"),
    "email": ((str,), "an email address (string)"),
    "lookup": ((list,), "a list of python module names"),
    "fixtures": ((dict,), "a map of fixture name -> {class, arguments}"),
    "pool": ((str,), "an inventory group name (string)"),
    "credentials": (
        (str,),
        "a credential server conf (fl-credential-ctl's), relative to the test directory",
    ),
    "monitor": (
        (list, dict),
        "a list of inventory host names, or a map with hosts, interval, prometheus and queries",
    ),
    "thresholds": (
        (str, list, dict),
        "a thresholds file relative to the project root, or the thresholds themselves (list or map)",
    ),
    "compare": ((dict,), "a map such as {tolerance: 10%}"),
}
REQUIRED = ("script", "test")
# The longest texts `marteau serve` keeps of these keys (the sizes of its database columns)
MAX_LENGTH = {"name": 255, "email": 254, "pool": 100}
# and of any other text (every value is data, but bounded); a newline is never accepted.
MAX_TEXT = 1000
CYCLES = re.compile(r"^\d+(:\d+)*$")
RATES = re.compile(r"^\d+(\.\d+)?(:\d+(\.\d+)?)*$")
# A test file: the bench imports it, so a plain relative path of word characters.
SCRIPT = re.compile(r"^[\w.-]+(/[\w.-]+)*$")
TEST = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*$")
# `compare: {tolerance: 10%}`: how far (percent; Apdex: points) a figure may move from
# the project's previous run before the service flags it
COMPARE_KEYS = ("tolerance",)
MAX_TOLERANCE = 1000.0
TOLERANCE = re.compile(r"^\s*(\d+(\.\d+)?)\s*%?\s*$")
GIT_URL = re.compile(r"^(https?|git|ssh|file)://|^[\w.-]+@[\w.-]+:|\.git/?$")


MONITOR_KEYS = ("hosts", "interval", "prometheus", "queries")
MAX_QUERIES = 20
QUERY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
PROMETHEUS_URL = re.compile(r"^https?://[^\s/?#@]+(/[^\s?#]*)?$")


@dataclass
class Monitoring:
    """`monitor:` of `.marteau.yml`: which hosts the agent samples, and a Prometheus source."""

    hosts: list[str] = field(default_factory=list)  # empty: the inventory group `monitor`
    interval: float = 1.0
    prometheus: str | None = None  # the server's base URL
    queries: dict[str, str] = field(default_factory=dict)  # name -> PromQL


def _monitoring(path: Path, value: Any, line: int) -> Monitoring:
    """`monitor:` checked: a list of hosts, or the map; MarteauError naming the key."""

    def bad(what: str) -> MarteauError:
        return MarteauError(f"{path}:{line}: key 'monitor': {what}")

    if isinstance(value, list):
        value = {"hosts": value}
    unknown = sorted(str(k) for k in value if k not in MONITOR_KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r} (known: {', '.join(MONITOR_KEYS)})")
    hosts = value.get("hosts", [])
    if not isinstance(hosts, list) or not all(
        isinstance(h, str) and HOST_NAME.match(h) for h in hosts
    ):
        raise bad(f"hosts: expected a list of inventory host names, got {hosts!r}")
    interval = value.get("interval", 1.0)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not 0.1 <= interval <= 3600
    ):
        raise bad(f"interval: expected 0.1 to 3600 seconds, got {interval!r}")
    url = value.get("prometheus")
    if url is not None and (
        not isinstance(url, str) or len(url) > 500 or not PROMETHEUS_URL.match(url)
    ):
        raise bad(f"prometheus: expected an http(s) URL without credentials, got {url!r}")
    queries = value.get("queries", {})
    if not isinstance(queries, dict) or len(queries) > MAX_QUERIES:
        raise bad(f"queries: expected a map of at most {MAX_QUERIES} name -> PromQL query")
    for name, query in queries.items():
        if not isinstance(name, str) or not QUERY_NAME.match(name):
            raise bad(f"queries: {name!r}: a name of letters, digits and _ (not first)")
        problem = text_problem(query, 1000) if isinstance(query, str) and query else "empty"
        if problem:
            raise bad(f"queries: {name}: {problem}")
    if queries and url is None:
        raise bad("queries need prometheus: the server's URL")
    if url is not None and not queries:
        raise bad("prometheus needs queries: a map of name -> PromQL query")
    return Monitoring(list(hosts), float(interval), url, dict(queries))


@dataclass
class Project:
    """A validated load-test project."""

    root: Path  # the repository (or directory) root
    config_path: Path
    script: str
    test: str
    name: str = ""
    wdir: str = ""
    nodes: int | None = None
    hosts: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    cycles: str | None = None
    rates: str | None = None
    arrivals: str | None = None  # constant | poisson: with rates (here, --rates or the .conf)
    ramp: float | None = None
    duration: int | None = None
    email: str | None = None
    pool: str | None = None
    thresholds: Path | None = None
    xml: str | None = None
    credentials: str | None = None  # a credential server conf, relative to test_dir
    tolerance: float | None = None  # `compare: {tolerance: N%}`, in percent
    lookup: list[str] = field(default_factory=list)
    fixtures: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the path or URL given by the user
    commit: str | None = None  # git commit of the test, when the root is a git work tree
    lines: dict[str, int] = field(default_factory=dict)  # key -> its line in .marteau.yml
    monitor: Monitoring | None = None  # `monitor:` (None: the inventory group `monitor`)

    @property
    def test_dir(self) -> Path:
        return self.root / self.wdir if self.wdir else self.root

    @property
    def test_class(self) -> str:
        return self.test.split(".", 1)[0]


def is_git_url(source: str) -> bool:
    return bool(GIT_URL.search(source)) and not Path(source).is_dir()


def _line(node: Any) -> int:
    return node.start_mark.line + 1


def _loader(text: str) -> Any:
    """A safe YAML loader that refuses aliases (`*name`): a few hundred bytes of nested
    aliases expand to megabytes (a "billion laughs"), and `.marteau.yml` needs none."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"aliases (*{event.anchor}) are not accepted", event.start_mark
                )
            return super().compose_node(parent, index)

    return Loader(text)


def parse_config(
    text: str, path: Path, item_lines: dict[str, list[int]] | None = None
) -> dict[str, tuple[Any, int]]:
    """`.marteau.yml` text -> {key: (value, line)}; MarteauError on bad YAML or keys.
    `item_lines` gets the line of each item of a list value (errors name it)."""
    import yaml

    loader = _loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise MarteauError(f"{path}: empty file, expected at least 'script' and 'test'")
        if not isinstance(root, yaml.MappingNode):
            raise MarteauError(f"{path}:{_line(root)}: expected a mapping of keys to values")
        found: dict[str, tuple[Any, int]] = {}
        for key_node, value_node in root.value:
            key = loader.construct_object(key_node, deep=True)
            line = _line(key_node)
            if not isinstance(key, str) or key not in KEYS:
                known = ", ".join(sorted(KEYS))
                raise MarteauError(f"{path}:{line}: unknown key {key!r} (known keys: {known})")
            if key in found:
                raise MarteauError(
                    f"{path}:{line}: key {key!r} given twice (first on line {found[key][1]})"
                )
            if (
                key in ("cycles", "rates")
                and isinstance(value_node, yaml.ScalarNode)
                and not value_node.style
            ):
                # YAML 1.1 reads an unquoted 10:20 as the base-60 integer 620: keep the text.
                value: Any = value_node.value
            else:
                value = loader.construct_object(value_node, deep=True)
            found[key] = (value, _line(value_node))
            if item_lines is not None and isinstance(value_node, yaml.SequenceNode):
                item_lines[key] = [_line(item) for item in value_node.value]
        return found
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise MarteauError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()


def _check(path: Path, key: str, value: Any, line: int) -> Any:
    types, expected = KEYS[key]
    bad = not isinstance(value, types) or isinstance(value, bool)
    if not bad and key in ("nodes", "duration") and isinstance(value, int) and value < 1:
        bad = True
    if not bad and key == "monitor":
        return _monitoring(path, value, line)
    if not bad and isinstance(value, list):
        bad = not all(isinstance(item, str) and item for item in value)
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for text in [] if bad else texts:
        problem = text_problem(text, MAX_LENGTH.get(key, MAX_TEXT))
        if problem:
            raise MarteauError(f"{path}:{line}: key {key!r}: {problem}")
    if not bad and key == "thresholds" and not isinstance(value, str):
        return value
    if not bad and key == "compare":
        return _tolerance(path, value, line)
    if not bad and key == "cycles":
        value = str(value)
        bad = not CYCLES.match(value) or "0" in value.split(":")
    if not bad and key == "rates":
        value = str(value)
        bad = not RATES.match(value) or any(float(rate) == 0 for rate in value.split(":"))
    if not bad and key == "arrivals":
        bad = value not in ARRIVALS
    if not bad and key == "ramp":
        bad = not 0 <= value < math.inf  # NaN fails too
    if not bad and key == "test":
        bad = not TEST.match(value)
    if not bad and key in ("script", "wdir", "thresholds", "credentials"):
        bad = not value or Path(value).is_absolute() or ".." in Path(value).parts
        bad = bad or (key in ("script", "credentials") and not SCRIPT.match(value))
        expected += ", inside the project"
    if bad:
        raise MarteauError(f"{path}:{line}: key {key!r}: expected {expected}, got {value!r}")
    return value


def _tolerance(path: Path, value: dict[Any, Any], line: int) -> float | None:
    """`compare:`'s tolerance in percent: a number or a text such as `10%`, 0 to 1000."""
    for name in value:
        if name not in COMPARE_KEYS:
            raise MarteauError(
                f"{path}:{line}: key 'compare': unknown key {name!r} "
                f"(known keys: {', '.join(COMPARE_KEYS)})"
            )
    if "tolerance" not in value:
        return None
    given = value["tolerance"]
    match = TOLERANCE.match(given) if isinstance(given, str) else None
    number = (
        float(match.group(1))
        if match
        else float(given)
        if isinstance(given, int | float) and not isinstance(given, bool)
        else None
    )
    if number is None or not 0 <= number <= MAX_TOLERANCE:  # NaN fails both
        raise MarteauError(
            f"{path}:{line}: key 'compare': tolerance: expected a percentage from 0 to "
            f"{MAX_TOLERANCE:g}, such as 10%, got {given!r}"
        )
    return number


def load_config(path: Path, source: str = "") -> Project:
    """Read and validate one `.marteau.yml`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MarteauError(f"{path}: no {CONFIG_NAME} in {path.parent}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MarteauError(f"{path}: cannot read: {exc}") from None
    item_lines: dict[str, list[int]] = {}
    found = parse_config(text, path, item_lines)
    for key in REQUIRED:
        if key not in found:
            raise MarteauError(f"{path}: missing required key {key!r}")
    values = {key: _check(path, key, value, line) for key, (value, line) in found.items()}
    for index, requirement in enumerate(values.get("deps", [])):
        why = check_requirement(requirement)
        if why:
            line = item_lines.get("deps", [])[index : index + 1] or [found["deps"][1]]
            raise MarteauError(f"{path}:{line[0]}: key 'deps': {requirement!r}: {why}")
    root = path.parent
    project = Project(
        root=root,
        config_path=path,
        script=values["script"],
        test=values["test"],
        name=values.get("name", ""),
        wdir=values.get("wdir", ""),
        deps=values.get("deps", []),
        cycles=values.get("cycles"),
        rates=values.get("rates"),
        arrivals=values.get("arrivals"),
        ramp=values.get("ramp"),
        duration=values.get("duration"),
        email=values.get("email"),
        pool=values.get("pool"),
        xml=values.get("xml"),
        credentials=values.get("credentials"),
        tolerance=values.get("compare"),
        lookup=values.get("lookup", []),
        fixtures=values.get("fixtures", {}),
        source=source or str(root),
        lines={key: line for key, (_, line) in found.items()},
    )
    project.monitor = values.get("monitor")
    nodes = values.get("nodes")
    if isinstance(nodes, list):
        project.hosts = nodes
        project.nodes = len(nodes)
    else:
        project.nodes = nodes
    if isinstance(values.get("thresholds"), str):
        project.thresholds = root / values["thresholds"]
    elif "thresholds" in values:
        project.thresholds = path  # inline: `marteau report` reads the key from this file
    for key, missing in (
        ("wdir", not project.test_dir.is_dir()),
        ("script", not (project.test_dir / project.script).is_file()),
        ("credentials", not (project.test_dir / (project.credentials or "")).is_file()),
        ("thresholds", project.thresholds is not None and not project.thresholds.is_file()),
    ):
        if key in found and missing:
            target = {
                "wdir": project.test_dir,
                "script": project.test_dir / project.script,
                "credentials": project.test_dir / (project.credentials or ""),
            }.get(key, project.thresholds)
            raise MarteauError(f"{path}:{found[key][1]}: key {key!r}: {target} does not exist")
    project.commit = git_commit(root)
    return project


def git_commit(directory: Path) -> str | None:
    """The commit checked out in `directory`, or None outside a git work tree."""
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def default_workdir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "marteau" / "checkouts"


def checkout(url: str, workdir: Path | None = None) -> Path:
    """Clone `url` into the work directory, or update the clone already there; git in
    its own process group, killed with its helpers after CHECKOUT_SECONDS."""
    import tempfile

    from marteau.orchestration.clone import Limits, clone, update

    workdir = workdir or default_workdir()
    segment = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = segment.split(".", 1)[0] or "project"
    target = workdir / f"{name}-{hashlib.sha1(url.encode()).hexdigest()[:8]}"
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="marteau-git-") as tmp:
        log = Path(tmp) / "git.log"
        try:
            if (target / ".git").is_dir():
                update(url, target, Limits(CHECKOUT_SECONDS), log)
            else:
                clone(url, target, None, Limits(CHECKOUT_SECONDS), log, shallow=False)
        except OSError as exc:
            raise MarteauError(f"{url}: cannot run git: {exc}") from None
    check_links(target, url)
    return target


def locate(source: str, workdir: Path | None = None) -> Project:
    """The project at `source`: a directory (or its `.marteau.yml`) or a git URL."""
    if is_git_url(source):
        root = checkout(source, workdir)
    else:
        root = Path(source).expanduser().resolve()
        if root.is_file() and root.name == CONFIG_NAME:
            root = root.parent
        if not root.is_dir():
            raise MarteauError(f"{source}: no such directory (and not a git URL)")
    return load_config(root / CONFIG_NAME, source)
