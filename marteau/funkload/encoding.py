"""How FunkLoad encodes a request's parameters: the GET query, the form or
multipart POST body (`mimeEncode`, byte for byte), `Data` bodies.

Used by the test case (`get`, `post`, ...) and by a page's forms
(`HTTPResponse.postForm`), so it sits below both.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

from marteau.funkload.utils import Data, Upload

BOUNDARY = "--------------GHSKFJDLGDS7543FJKLFHRE75642756743254"
MULTIPART_CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def flatten_params(params: Any) -> list[tuple[str, Any]]:
    """FunkLoad's params (dict, pairs, 2-lists) as pairs, expanding list and dict values."""
    items: Iterable[Any] = params.items() if isinstance(params, dict) else params
    pairs: list[tuple[str, Any]] = []
    for item in items:
        key, value = item
        if isinstance(value, dict):  # a select box: the keys whose value is truthy
            pairs.extend((key, choice) for choice, selected in value.items() if selected)
        elif isinstance(value, (list, tuple)):
            pairs.extend((key, element) for element in value)
        else:
            pairs.append((key, value))
    return pairs


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def encode_body(params: Any) -> tuple[bytes, str | None]:
    """The body and Content-type for a POST/PUT ``params`` (Data, pairs, uploads)."""
    if isinstance(params, Data):
        return _to_bytes(params.data if params.data is not None else b""), (
            params.content_type or None
        )
    if isinstance(params, (str, bytes)):
        return _to_bytes(params), FORM_CONTENT_TYPE
    pairs = flatten_params(params)
    if any(isinstance(value, Upload) for _, value in pairs):
        return multipart_body(pairs), MULTIPART_CONTENT_TYPE
    return urlencode(pairs).encode("ascii"), FORM_CONTENT_TYPE


def multipart_body(pairs: list[tuple[str, Any]]) -> bytes:
    """FunkLoad's ``mimeEncode``: fixed boundary, CRLF, files read now.

    Its rules, kept byte for byte: a pair with an empty name is left out; the
    parts are joined by CRLF, each opening with the boundary line; a value
    (or file) ending in ``\\r`` is followed by one more CRLF; then CRLF, the
    closing boundary and CRLF.
    """
    parts: list[bytes] = []
    for key, value in pairs:
        if not key:
            continue
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"'
        if isinstance(value, Upload):
            filename = value.filename or ""
            head += f'; filename="{os.path.basename(filename)}"\r\n'
            ctype = mimetypes.guess_type(filename)[0] if filename else None
            if ctype:
                head += f"Content-Type: {ctype}\r\n"
            head += "\r\n"
            content = b""
            if filename:
                with open(filename, "rb") as handle:
                    content = handle.read()
        else:
            head += "\r\n\r\n"
            content = _to_bytes(value)
        if content.endswith(b"\r"):
            content += b"\r\n"
        parts.append(head.encode("utf-8") + content)
    return b"\r\n".join(parts) + f"\r\n--{BOUNDARY}--\r\n".encode()


# RFC 3986's reserved and unreserved punctuation, and "%": an ASCII query keeps its form
URL_PUNCTUATION = "!#$%&'()*+,/:;=?@[]~-._"


def get_url_with_params(url: str, params: Any) -> str:
    """FunkLoad's GET: ``url + '?' + urlencode(params)`` (no check for an existing ``?``)."""
    if isinstance(params, Data):
        data = params.data
        if isinstance(data, bytes):  # a query given as bytes: percent-encode what a URL cannot hold
            data = quote_from_bytes(data, safe=URL_PUNCTUATION)
        return f"{url}?{data}"
    if isinstance(params, str):
        return f"{url}?{params}"
    return f"{url}?{urlencode(flatten_params(params))}"
