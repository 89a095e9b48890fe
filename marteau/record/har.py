"""Read a HAR file (HTTP Archive 1.2) into `Exchange`s, treating it as hostile input.

A HAR comes from anywhere: a browser's developer tools, a colleague, a
ticket. Its size is bounded before it is read, its JSON structure is checked
field by field (an error names the entry and the field, e.g.
``log.entries[3].request.url``), and only the fields the recorder uses are
kept. Nothing in it is ever evaluated; its strings are only data.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from marteau.errors import MarteauError

MAX_HAR_BYTES = 64 * 1024 * 1024  # a long browsing session with its bodies fits easily
MAX_ENTRIES = 100_000
# The HTTP method token (RFC 9110): anything else cannot be a recorded request.
_METHOD_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}")


class HarError(MarteauError):
    """The HAR file is unreadable or not shaped as HAR 1.2: the message names the field."""


@dataclass(frozen=True)
class FormField:
    """One recorded form field; ``filename`` is set for a file upload."""

    name: str
    value: str
    filename: str | None = None


@dataclass(frozen=True)
class Exchange:
    """The parts of one HAR entry the recorder needs, checked."""

    index: int  # position in log.entries, for messages
    started: float  # epoch seconds
    elapsed: float  # seconds, until the whole response was received
    method: str  # upper case
    url: str
    status: int  # 0 when the browser got no response
    request_type: str  # the body's Content-Type, "" without a body
    body: str | None  # the request body as text, when recorded
    fields: tuple[FormField, ...] | None  # the form fields, when the HAR lists them
    response_type: str  # the response's media type, lower case, no parameters
    response_text: str | None  # the response body as text, kept for HTML pages only
    location: str  # where a redirect points, "" otherwise
    resource_type: str  # Chrome's ``_resourceType`` ("document", "image"...), "" if absent


def read_har(path: str, max_bytes: int = MAX_HAR_BYTES) -> list[Exchange]:
    """The exchanges of the HAR file at ``path``, in the order they started."""
    document = _load_json(path, max_bytes)
    where = _Where(path)
    log = _field(document, "log", dict, where, "")
    entries = _field(log, "entries", list, where, "log")
    if len(entries) > MAX_ENTRIES:
        raise HarError(f"{path}: log.entries: {len(entries)} entries, more than {MAX_ENTRIES}")
    exchanges = [_exchange(entry, i, where) for i, entry in enumerate(entries)]
    return sorted(exchanges, key=lambda exchange: (exchange.started, exchange.index))


def _load_json(path: str, max_bytes: int) -> Any:
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise HarError(f"{path}: {size} bytes, more than the {max_bytes} a HAR may have")
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise HarError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise HarError(f"{path}: more than the {max_bytes} bytes a HAR may have")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HarError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise HarError(f"{path}: not a HAR: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with too many digits
        raise HarError(f"{path}: not JSON: {exc}") from None


class _Where:
    """Builds the ``file: log.entries[3].request.url: ...`` messages."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, field: str, problem: str) -> HarError:
        return HarError(f"{self.path}: {field}: {problem}")


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _field(
    obj: dict[str, Any], key: str, kind: type, where: _Where, at: str, default: Any = ...
) -> Any:
    """``obj[key]``, checked to be of ``kind``; missing is an error unless a default is given."""
    name = f"{at}.{key}" if at else key
    if not isinstance(obj, dict):
        raise where.error(at or "(top)", "expected an object")
    if key not in obj or (obj[key] is None and default is not ...):
        if default is ...:
            raise where.error(name, "missing")
        return default
    value = obj[key]
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        expected = "a number" if kind is float else _TYPE_NAMES[kind]
        raise where.error(name, f"expected {expected}, got {type(value).__name__}")
    return value


def _exchange(entry: Any, index: int, where: _Where) -> Exchange:
    at = f"log.entries[{index}]"
    if not isinstance(entry, dict):
        raise where.error(at, "expected an object")
    request = _field(entry, "request", dict, where, at)
    response = _field(entry, "response", dict, where, at)
    req_at, resp_at = f"{at}.request", f"{at}.response"
    method = _field(request, "method", str, where, req_at)
    if not _METHOD_RE.fullmatch(method):
        raise where.error(f"{req_at}.method", f"not an HTTP method: {method[:40]!r}")
    content = _field(response, "content", dict, where, resp_at, {})
    response_type = _media_type(_field(content, "mimeType", str, where, f"{resp_at}.content", ""))
    status = _field(response, "status", int, where, resp_at)
    body, request_type, fields = _post_data(request, where, req_at)
    return Exchange(
        index=index,
        started=_timestamp(_field(entry, "startedDateTime", str, where, at), where, at),
        elapsed=max(0.0, _field(entry, "time", float, where, at, 0.0)) / 1000.0,
        method=method.upper(),
        url=_field(request, "url", str, where, req_at),
        status=status,
        request_type=request_type,
        body=body,
        fields=fields,
        response_type=response_type,
        response_text=_html_text(content, response_type, where, f"{resp_at}.content"),
        location=_location(response, where, resp_at),
        resource_type=_field(entry, "_resourceType", str, where, at, "").lower(),
    )


def _timestamp(value: str, where: _Where, at: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise where.error(
            f"{at}.startedDateTime", f"not an ISO 8601 date: {value[:40]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _headers(obj: dict[str, Any], where: _Where, at: str) -> list[tuple[str, str]]:
    headers = _field(obj, "headers", list, where, at, [])
    pairs = []
    for i, header in enumerate(headers):
        header_at = f"{at}.headers[{i}]"
        name = _field(header, "name", str, where, header_at)
        pairs.append((name, _field(header, "value", str, where, header_at)))
    return pairs


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key.lower() == name), "")


def _post_data(
    request: dict[str, Any], where: _Where, at: str
) -> tuple[str | None, str, tuple[FormField, ...] | None]:
    """(body text, its content type, its form fields) of a request."""
    headers = _headers(request, where, at)
    post = _field(request, "postData", dict, where, at, None)
    if post is None:
        return None, "", None
    post_at = f"{at}.postData"
    content_type = _field(post, "mimeType", str, where, post_at, "") or _header(
        headers, "content-type"
    )
    text = _field(post, "text", str, where, post_at, None)
    params = _field(post, "params", list, where, post_at, None)
    fields = None
    if params is not None:
        found = []
        for i, param in enumerate(params):
            param_at = f"{post_at}.params[{i}]"
            found.append(
                FormField(
                    name=_field(param, "name", str, where, param_at),
                    value=_field(param, "value", str, where, param_at, ""),
                    filename=_field(param, "fileName", str, where, param_at, None),
                )
            )
        fields = tuple(found)
    return text, content_type, fields


def _location(response: dict[str, Any], where: _Where, at: str) -> str:
    redirect = _field(response, "redirectURL", str, where, at, "")
    return redirect or _header(_headers(response, where, at), "location")


def _html_text(content: dict[str, Any], media_type: str, where: _Where, at: str) -> str | None:
    """An HTML response's text (base64 decoded), to find its password fields; else None."""
    if media_type not in ("text/html", "application/xhtml+xml"):
        return None
    text = _field(content, "text", str, where, at, None)
    if text is None:
        return None
    if _field(content, "encoding", str, where, at, "") == "base64":
        try:
            return base64.b64decode(text, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise where.error(f"{at}.text", "not base64 although encoding is base64") from None
    return text
