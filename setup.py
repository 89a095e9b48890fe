"""The build: setup.cfg's metadata, plus the engine's per-request path compiled with mypyc.

`marteau.native.COMPILED` names the modules; each extension goes beside its
``.py``, which stays the fallback. ``MARTEAU_PURE_BUILD=1`` builds without
them (the pure wheel the node wheelhouse also carries).
"""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from marteau import native  # noqa: E402  (the source tree's, not an installed one)


def extensions() -> list:
    if os.environ.get("MARTEAU_PURE_BUILD", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    paths = [name.replace(".", "/") + ".py" for name in native.COMPILED]
    # mypyc runs mypy with pyproject.toml's [tool.mypy]: its sections for modules
    # outside the compiled ones are not "unused" here.
    return mypycify(["--no-warn-unused-configs", *paths], group_name=native.GROUP)


setup(ext_modules=extensions())
