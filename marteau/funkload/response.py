"""FunkLoad's page response (webunit's ``HTTPResponse``) on top of a `RawResponse`.

Everything beyond ``code`` and ``message`` is computed on first access:
a load test usually reads only the code, so decoding the body or building a
header mapping on every request would be wasted work on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from marteau.engine.http_error import caused_by
from marteau.funkload import dom, forms
from marteau.funkload.encoding import get_url_with_params

_MISSING: Any = object()


class ResponseHeaders:
    """Case-insensitive header access like Python 2's ``httplib`` message.

    ``get(name)`` / ``[name]`` return the first value; ``items()`` gives
    lower-cased names (FunkLoad's failure records rely on it).
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[str, str]]) -> None:
        self._raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        name = name.lower()
        for key, value in self._raw:
            if key.lower() == name:
                return value
        return default

    def getheader(self, name: str, default: Any = None) -> Any:
        return self.get(name, default)  # a method: mypyc compiles no alias

    def __getitem__(self, name: str) -> str:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name, _MISSING) is not _MISSING

    def get_all(self, name: str, default: Any = None) -> Any:
        name = name.lower()
        values = [value for key, value in self._raw if key.lower() == name]
        return values or default

    def getheaders(self, name: str, default: Any = None) -> Any:
        return self.get_all(name, default)

    def items(self) -> list[tuple[str, str]]:
        return [(key.lower(), value) for key, value in self._raw]

    def keys(self) -> list[str]:
        return [key.lower() for key, _ in self._raw]

    def values(self) -> list[str]:
        return [value for _, value in self._raw]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._raw)

    def __str__(self) -> str:
        return "".join(f"{key}: {value}\n" for key, value in self._raw)

    def __repr__(self) -> str:
        return f"ResponseHeaders({self.items()!r})"


def charset_of(content_type: str | None) -> str:
    """The ``charset=`` of a Content-Type, else utf-8."""
    if content_type:
        low = content_type.lower()
        at = low.find("charset=")
        if at >= 0:
            value = content_type[at + 8 :].split(";", 1)[0].strip().strip("\"'")
            if value:
                return value
    return "utf-8"


class HTTPResponse:
    """What ``get``/``post``... return: webunit's response, attribute for attribute."""

    def __init__(
        self,
        raw: Any,
        protocol: str,
        server: str,
        port: int,
        url: str,
        cookies: dict,
        raw_body: bytes | None = None,
    ) -> None:
        self.raw = raw
        self.code: int = raw.status
        self.message: str = raw.reason
        self.protocol = protocol
        self.server = server
        self.port = port
        self.url = url  # path + query, as webunit kept it
        self.cookies = cookies
        # The body after gzip decoding (the browser passes it when it decoded).
        self.raw_body: bytes = raw.body if raw_body is None else raw_body
        self._body: Any = _MISSING
        self._headers: ResponseHeaders | None = None
        self._is_html: bool | None = None
        self._dom: dom.Element | None = None

    # -- lazily computed ---------------------------------------------------------

    @property
    def headers(self) -> ResponseHeaders:
        if self._headers is None:
            self._headers = ResponseHeaders(self.raw.headers)
        return self._headers

    @headers.setter
    def headers(self, value: ResponseHeaders) -> None:
        self._headers = value

    @property
    def body(self) -> str | None:
        """Text (charset of the response, else utf-8); None for ``Content-Length: 0``."""
        if self._body is _MISSING:
            data = self.raw_body
            if not data and self.raw.header("content-length") == "0":
                self._body = None
            else:
                charset = charset_of(self.raw.header("content-type")) if data else "utf-8"
                try:
                    self._body = data.decode(charset, "replace")
                except LookupError:  # an unknown charset name
                    self._body = data.decode("utf-8", "replace")
        return self._body

    @body.setter
    def body(self, value: str | None) -> None:
        self._body = value
        self._dom = None

    @property
    def is_html(self) -> bool:
        """``<html`` in the first 300 characters, case-insensitive (FunkLoad's test)."""
        if self._is_html is None:
            self._is_html = is_html_bytes(self.raw_body)
        return self._is_html

    @is_html.setter
    def is_html(self, value: bool) -> None:
        self._is_html = value

    def getDOM(self) -> dom.Element:
        """The parsed page (parsed once per response)."""
        if self._dom is None:
            self._dom = dom.parse(self.body)
        return self._dom

    # -- forms (webunit's helpers; rules in marteau.funkload.forms) ---------------

    @property
    def page_url(self) -> str:
        """The absolute URL of this response (``url`` holds only the path and query)."""
        default = 443 if self.protocol == "https" else 80
        port = "" if self.port == default else f":{self.port}"
        return f"{self.protocol}://{self.server}{port}{self.url}"

    def extractForm(
        self, path: Sequence[Any] = (), include_submit: Any = 0, include_button: Any = 0
    ) -> forms.FormData:
        """The submittable fields below ``path`` (``[('form', 1)]``: the second form)."""
        return forms.extract_fields(
            forms.walk(self.getDOM(), path), bool(include_submit), bool(include_button)
        )

    def getFormData(
        self, formnum: int, postargs: Mapping[str, Any] | None = None
    ) -> tuple[forms.FormData, str]:
        """``(fields merged with postargs, absolute action URL)`` of form number ``formnum``."""
        document = self.getDOM()
        found = document.getByName("form")
        try:
            form = found[formnum]
        except IndexError:
            missing = forms.FormNotFoundError(
                f"no form number {formnum!r} in {self.page_url} ({len(found)} forms)"
            )
            raise caused_by(missing, None)  # noqa: B904 - the cause set by caused_by
        bases = document.getByName("base")
        base_href = bases[0].get("href") if bases else None
        data = forms.merge(forms.extract_fields(form), postargs)
        return data, forms.action_url(form, self.page_url, base_href)

    def getForm(self, formnum: int, getmethod: Any, postargs: Any, *args: Any) -> Any:
        """Submit form ``formnum`` as a GET: ``getmethod(action?fields, *args)``."""
        data, url = self.getFormData(formnum, postargs)
        url = forms.without_query(url)
        return getmethod(get_url_with_params(url, data) if data else url, *args)

    def postForm(self, formnum: int, postmethod: Any, postargs: Any, *args: Any) -> Any:
        """Submit form ``formnum``: ``postmethod(action, fields, *args)``."""
        data, url = self.getFormData(formnum, postargs)
        return postmethod(url, data, *args)

    # -- string forms --------------------------------------------------------------

    def __str__(self) -> str:
        return f"{self.url}\nHTTP Response {self.code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f'<response url="{self.protocol}://{self.server}:{self.port}{self.url}" '
            f'code="{self.code}" message="{self.message}" />'
        )


def is_html_bytes(data: bytes | None) -> bool:
    """FunkLoad's HTML detection on a raw body: ``<html``, any case, in its first 300 bytes.

    Every page of a bench asks (to fetch its images), so the common answers
    come from ``find``, which neither copies nor lower-cases: no ``<`` at all
    (text, JSON), or a lower-case ``<html``.  Only the rest pays for the
    lower-cased copy.
    """
    if not data or data.find(b"<", 0, 300) < 0:
        return False
    return data.find(b"<html", 0, 300) >= 0 or b"<html" in data[:300].lower()
