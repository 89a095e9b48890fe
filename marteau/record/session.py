"""From recorded exchanges to the pages of a FunkLoad test.

What a browser did is more than what a FunkLoad test should do, because
FunkLoad's browser does part of it by itself: it follows redirects and
fetches a page's images and stylesheets. So the requests it would make on
its own are dropped (resources, redirect hops), as are requests to other
hosts (listed in the test, not replayed: the load goes to one site) and
requests that got no response. The time between the end of one page's
traffic and the next page is the user's think time, kept as a hint.
Form fields that hold secrets (password inputs of the recorded pages, or
names like ``password`` or ``token``) are moved to conf keys.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urljoin, urlsplit

from marteau.errors import MarteauError
from marteau.funkload.dom import parse as parse_html
from marteau.record.har import Exchange, FormField

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# FunkLoad's default ok_codes: other recorded statuses are given to the call.
DEFAULT_OK = frozenset({200, 301, 302, 303, 307})
# What the browser (and FunkLoad's) fetches by itself for a page.
RESOURCE_TYPES = frozenset(
    {"image", "stylesheet", "script", "font", "media", "manifest", "texttrack", "ping"}
)
_RESOURCE_MEDIA = ("image/", "text/css", "javascript", "ecmascript", "font/", "x-shockwave-flash")
_RESOURCE_SUFFIXES = (
    *(".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico", ".bmp"),
    *(".css", ".js", ".mjs", ".map", ".woff", ".woff2", ".ttf", ".otf", ".eot"),
    *(".swf", ".mp4", ".webm", ".mp3", ".ogg"),
)
SECRET_NAME = re.compile(r"pass(word|wd)?|pwd|token|secret|api[_-]?key|credential", re.IGNORECASE)
# A host[:port] as a URL carries it; anything else in a recorded URL's authority is refused.
_AUTHORITY = re.compile(r"[A-Za-z0-9.\-_]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
MAX_DESCRIPTION = 42  # FunkLoad's recorder truncated descriptions to this


@dataclass(frozen=True)
class Secret:
    """A form value read from the conf: ``self.conf_get(SECTION, key)``."""

    key: str


@dataclass(frozen=True)
class UploadFile:
    """A file upload: ``Upload(filename)``, the file to be provided beside the test."""

    filename: str


Value = str | Secret | UploadFile


@dataclass
class Page:
    """One FunkLoad page call."""

    method: str
    path: str  # path and query, appended to the conf's server URL
    description: str
    think_time: float  # seconds between the previous page's last response and this request
    params: list[tuple[str, Value]] | None = None
    data: tuple[str, str] | None = None  # (content type, body) sent verbatim
    ok_codes: list[int] | None = None


@dataclass
class Recording:
    """A browsing session as a FunkLoad test sees it."""

    server_url: str
    pages: list[Page]
    other_hosts: Counter[str] = field(default_factory=Counter)
    secrets: dict[str, str] = field(default_factory=dict)  # conf key -> recorded value
    uploads: list[str] = field(default_factory=list)
    resources: int = 0  # left to the browser's auto-loading
    redirects: int = 0  # followed by the browser
    unanswered: int = 0  # no response recorded

    @property
    def think_times(self) -> list[float]:
        return [page.think_time for page in self.pages[1:]]


def build_recording(exchanges: list[Exchange], source: str) -> Recording:
    """The pages of a session; ``source`` names the HAR in error messages."""
    origins = {}  # url -> scheme://host[:port], for the http(s) URLs
    for ex in exchanges:
        parts = urlsplit(ex.url)
        if parts.scheme not in ("http", "https"):
            continue
        if not _AUTHORITY.fullmatch(parts.netloc):
            raise MarteauError(
                f"{source}: log.entries[{ex.index}].request.url: "
                f"not a host[:port] after the scheme: {ex.url[:80]!r}"
            )
        origins[ex.url] = f"{parts.scheme}://{parts.netloc}"
    http = [ex for ex in exchanges if ex.url in origins]
    answered = [ex for ex in http if ex.status > 0]
    if not answered:
        raise MarteauError(f"{source}: no HTTP request with a response was recorded")
    server = origins[_first_page(answered).url]
    recording = Recording(server_url=server, pages=[], unanswered=len(http) - len(answered))
    form_values = _FormValues(
        recording, _password_fields(ex for ex in answered if origins[ex.url] == server)
    )
    pending: dict[str, set[str]] = {}  # redirect targets -> the methods that follow them
    last_end = None
    for ex in answered:
        if origins[ex.url] != server:
            recording.other_hosts[origins[ex.url]] += 1
            continue
        if ex.method in pending.get(ex.url, ()):
            del pending[ex.url]
            recording.redirects += 1
        elif _is_resource(ex):
            recording.resources += 1
        else:
            think = 0.0 if last_end is None else max(0.0, ex.started - last_end)
            recording.pages.append(_page(ex, think, form_values))
        if ex.status in REDIRECTS and ex.location:
            follow = {ex.method} if ex.status in (307, 308) else {"GET", "HEAD"}
            pending.setdefault(urljoin(ex.url, ex.location), set()).update(follow)
        end = ex.started + ex.elapsed
        last_end = end if last_end is None else max(last_end, end)
    return recording


def _first_page(exchanges: list[Exchange]) -> Exchange:
    """The session's site: where its first HTML page came from (else its first request)."""
    for ex in exchanges:
        if ex.response_type in ("text/html", "application/xhtml+xml") and not _is_resource(ex):
            return ex
    return exchanges[0]


def _is_resource(ex: Exchange) -> bool:
    if ex.method == "POST":  # as FunkLoad's recorder: a POST is always a page
        return False
    if ex.resource_type in RESOURCE_TYPES:
        return True
    if any(marker in ex.response_type for marker in _RESOURCE_MEDIA):
        return True
    return urlsplit(ex.url).path.lower().endswith(_RESOURCE_SUFFIXES)


def _password_fields(exchanges: Iterable[Exchange]) -> set[str]:
    """Names of the ``<input type="password">`` fields on the recorded HTML pages."""
    names = set()
    for ex in exchanges:
        if ex.response_text and "password" in ex.response_text.lower():
            for element in parse_html(ex.response_text).getByName("input"):
                if (element.get("type") or "").lower() == "password" and element.get("name"):
                    names.add(element.get("name"))
    return names


def _page(ex: Exchange, think: float, form_values: _FormValues) -> Page:
    parts = urlsplit(ex.url)
    path = parts.path or "/"
    page = Page(
        method=ex.method,
        path=f"{path}?{parts.query}" if parts.query else path,
        description=_description(ex.method, path),
        think_time=think,
        ok_codes=None if ex.status in DEFAULT_OK else [ex.status],
    )
    if ex.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return page  # FunkLoad sends no body with these (GET params are in the URL already)
    fields = _form_fields(ex)
    if fields is not None:
        page.params = [form_values.param(f) for f in fields]
    elif ex.body:
        page.data = (ex.request_type, ex.body)
    return page


def _description(method: str, path: str) -> str:
    text = f"{method.capitalize()} {path}"
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 3] + "..."


def _form_fields(ex: Exchange) -> tuple[FormField, ...] | None:
    """The form fields of a form body, else None (the body is then sent as it was)."""
    media = ex.request_type.split(";", 1)[0].strip().lower()
    if media == _FORM:
        if ex.body is not None:
            return tuple(FormField(k, v) for k, v in parse_qsl(ex.body, keep_blank_values=True))
        return ex.fields
    if media == _MULTIPART:
        if ex.fields is not None:
            return ex.fields
        if ex.body is not None:
            return _multipart_fields(ex.request_type, ex.body)
    return None


def _multipart_fields(content_type: str, body: str) -> tuple[FormField, ...] | None:
    """The parts of a recorded multipart body, parsed as MIME (no part is decoded further)."""
    message = email.parser.Parser(policy=email.policy.HTTP).parsestr(
        f"Content-Type: {content_type}\r\n\r\n{body}"
    )
    if not message.is_multipart():
        return None
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_param("filename", header="content-disposition")
        value = part.get_payload()
        fields.append(
            FormField(
                name,
                value if isinstance(value, str) else "",
                filename if isinstance(filename, str) else None,
            )
        )
    return tuple(fields)


class _FormValues:
    """What form fields add to a recording: conf keys for secrets, files to upload.

    One key per distinct secret value, named after its field; lookups stay
    constant-time however many fields a (hostile) HAR holds.
    """

    def __init__(self, recording: Recording, password_fields: set[str]) -> None:
        self.recording = recording
        self.password_fields = password_fields
        self._keys: dict[tuple[str, str], str] = {}
        self._suffix: Counter[str] = Counter()
        self._uploads: set[str] = set()

    def param(self, f: FormField) -> tuple[str, Value]:
        if f.filename is not None:
            return f.name, UploadFile(self._upload(f.filename))
        if f.name in self.password_fields or SECRET_NAME.search(f.name):
            return f.name, Secret(self._secret_key(f.name, f.value))
        return f.name, f.value

    def _upload(self, filename: str) -> str:
        name = filename.replace("\\", "/").rsplit("/", 1)[-1]
        if name and name not in self._uploads:
            self._uploads.add(name)
            self.recording.uploads.append(name)
        return name

    def _secret_key(self, name: str, value: str) -> str:
        base = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:40] or "secret"
        known = self._keys.get((base, value))
        if known is not None:
            return known
        secrets, key = self.recording.secrets, base
        while key in secrets:
            self._suffix[base] += 1
            key = f"{base}_{self._suffix[base] + 1}"
        secrets[key] = value
        self._keys[(base, value)] = key
        return key
