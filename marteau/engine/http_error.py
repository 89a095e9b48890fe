"""The HTTP client's one error type.

A module of its own because it stays interpreted when the client is compiled
(`marteau.native`): a mypyc class cannot derive from `OSError`.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class HTTPClientError(OSError):
    """Connection refused, DNS failure, reset, timeout, TLS or protocol error.

    The message names the full URL and the cause, e.g.
    ``Can't load http://127.0.0.1:1/x: [Errno 111] Connection refused``;
    ``url`` holds the URL.
    """

    url: str = ""


def client_error(url: str, cause: object) -> HTTPClientError:
    """Build the one error type with the message format callers rely on."""
    err = HTTPClientError(f"Can't load {url}: {cause}")
    err.url = url
    return err


def caused_by(error: E, cause: BaseException | None) -> E:
    """``error`` as ``raise error from cause`` would raise it (None: ``from None``).

    mypyc compiles ``raise ... from ...`` without its cause (mypy 2.4), so the
    compiled modules (`marteau.native`) raise ``caused_by(error, cause)``
    instead; setting ``__cause__`` also suppresses the context, as ``from`` does.
    """
    error.__cause__ = cause
    return error
