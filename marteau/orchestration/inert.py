"""Job values as inert data for Ansible: a YAML file whose every string is `!unsafe`.

ansible-core templates the extra vars it is given as JSON or `key=value` (2.19's
data tagging trusts them), so a job label of `{{ lookup('pipe', 'id') }}` ran a
command on the controller. A string tagged `!unsafe` in a file passed with
`-e @FILE` (or read by `include_vars`) is never templated, wherever a role uses
it; a role still quotes it before it reaches a shell. Every string of a job goes
through this file: the driver's extra vars and the prepare play's variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

UNSAFE = "!unsafe"


class _InertDumper(yaml.SafeDumper):
    """SafeDumper that tags every string value `!unsafe` and keeps keys plain."""


def _unsafe_string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(UNSAFE, value, style='"')


def _mapping(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    pairs = []
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{key!r}: an Ansible variable name must be an identifier")
        pairs.append((dumper.represent_str(key), dumper.represent_data(item)))
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs)


_InertDumper.add_representer(str, _unsafe_string)
_InertDumper.add_representer(dict, _mapping)


def dumps(values: dict[str, Any]) -> str:
    """`values` as YAML with every string `!unsafe` (no line folding: a 10 KB value
    stays one scalar)."""
    return yaml.dump(
        values, Dumper=_InertDumper, width=float("inf"), allow_unicode=True, sort_keys=True
    )


def write(values: dict[str, Any], path: Path) -> Path:
    """Write `values` to `path` (mode 0600: it may hold the job's owner and paths)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(dumps(values))
    return path
