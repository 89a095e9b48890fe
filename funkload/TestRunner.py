"""Import shim: ``from funkload.TestRunner import g_has_doctest`` (FunkLoad's install test).

FunkLoad set it when its Python had doctest support; `marteau test --doctest`
always has it. The runner itself is `marteau test` (`fl-run-test`).
"""

g_has_doctest = True

__all__ = ["g_has_doctest"]
