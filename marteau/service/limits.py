"""Limits checked before a request's body is read (an ASGI middleware).

Without it an anonymous client could make the service write a body of any size to
disk: the framework parses a multipart form, spooling its files, before a route's
dependencies (authentication among them) run. So, before any byte of the body:

- a declared `Content-Length` over the route's cap is answered 413 at once;
- a route that takes an archive (the upload routes) first needs a known caller: a
  valid API token or login cookie, else 401 (or the login page);

and while the body streams in, the bytes are counted: past the cap the request ends
with 413, whatever `Content-Length` said (or when the body is chunked)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marteau.service.routes.deps import resolve_auth

SMALL_BODY = 2**20  # bytes: every route but the archive uploads (JSON, forms)
FORM_OVERHEAD = 2**20  # bytes an upload's form may add to the archive (fields, headers)
UPLOAD_PATHS = ("/api/jobs/upload", "/jobs", "/jobs/preview")  # POST routes taking an archive


class BodyTooLarge(HTTPException):
    def __init__(self, cap: int) -> None:
        super().__init__(413, f"request body over {cap // 2**10} KiB: refused")


def body_cap(scope: Scope) -> int:
    """The most bytes of body this request may send."""
    if scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS:
        return scope["app"].state.settings.max_upload_mb * 2**20 + FORM_OVERHEAD
    return SMALL_BODY


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestLimits:
    """The ASGI middleware: see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope)
        declared = _declared_length(scope)
        refusal = await self._refusal(scope, cap, declared)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        state: dict[str, Any] = {"read": 0, "over": False, "started": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > cap:
                    state["over"] = True
                    raise BodyTooLarge(cap)
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if state["over"]:  # whatever the app made of the error: 413
                    await _too_large(cap)(scope, receive, send)
                    state["started"] = True
                    return
                state["started"] = True
            elif state["over"] and message["type"] == "http.response.body":
                return
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if not state["started"]:
                await _too_large(cap)(scope, receive, send)

    async def _refusal(self, scope: Scope, cap: int, declared: int | None) -> Response | None:
        if declared is not None and declared > cap:
            return _too_large(cap)
        if cap > SMALL_BODY and await resolve_auth(Request(scope)) is None:
            if scope["path"].startswith("/api/"):
                return JSONResponse(
                    {"detail": "log in or send Authorization: Bearer <API token>"}, 401
                )
            return RedirectResponse(f"/login?next={scope['path']}", status_code=303)
        return None


def _too_large(cap: int) -> Response:
    return JSONResponse(
        {"detail": BodyTooLarge(cap).detail}, status_code=413, headers={"Connection": "close"}
    )
