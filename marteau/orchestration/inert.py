"""Job values as inert data for Ansible: a YAML file whose strings are `!unsafe`.

ansible-core templates the extra vars it is given as JSON or `key=value` (2.19's
data tagging trusts them), so a job label of `{{ lookup('pipe', 'id') }}` ran a
command on the controller. A string tagged `!unsafe` in a file passed with
`-e @FILE` (or read by `include_vars`) is never templated, wherever a role uses
it; a role still quotes it before it reaches a shell. Every string of a job goes
through this file: the driver's extra vars and the prepare play's variables.

Only strings holding a `{` get the tag: every Jinja delimiter (`{{`, `{%`, `{#`)
starts with one, so the others cannot be templated anyway, and ansible-core
resolves a tagged scalar's type as if it were plain (`!unsafe "1:2"` loads as
the YAML 1.1 integer 62, `!unsafe "yes"` as True): those are written as
quoted plain strings, which load as typed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

UNSAFE = "!unsafe"


class _InertDumper(yaml.SafeDumper):
    """SafeDumper that tags string values that could be templated `!unsafe`."""


def _inert_string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "{" in value:
        return dumper.represent_scalar(UNSAFE, value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


def _mapping(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    pairs = []
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{key!r}: an Ansible variable name must be an identifier")
        pairs.append((dumper.represent_str(key), dumper.represent_data(item)))
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs)


_InertDumper.add_representer(str, _inert_string)
_InertDumper.add_representer(dict, _mapping)


def dumps(values: dict[str, Any]) -> str:
    """`values` as YAML, strings quoted and those with a `{` `!unsafe` (no line
    folding: a 10 KB value stays one scalar)."""
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
