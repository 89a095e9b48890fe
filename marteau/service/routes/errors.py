"""How the app answers an error a route raised: JSON under /api/, else the error page;
a page that needs a login redirects to it. Messages go through `messages.shown`, so
that no server path reaches a user."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError

from marteau.errors import MarteauError
from marteau.service.messages import shown
from marteau.service.routes.deps import LoginRequired


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    # without the raw input: a binary body cannot go back into JSON
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


def _error(request: Request, message: str, status: int) -> Response:
    message = shown(message, request.app.state.settings.data_dir)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"message": message, "auth": None}, status_code=status
    )


async def _bad_input(request: Request, exc: MarteauError) -> Response:
    return _error(request, str(exc), 400)


async def _out_of_range(request: Request, exc: OverflowError) -> Response:
    # an id or count past the database's integers (SQLite: 64 bits)
    return _error(request, "a number in the request is out of range", 400)


async def _conflict(request: Request, exc: IntegrityError) -> Response:
    # Two requests writing the same unique row (a user, a node) at once: on
    # PostgreSQL both pass the existence check (SQLite runs one writer at a time)
    # and the second one's INSERT fails when the first commits.
    return _error(request, "another request wrote the same at the same time: try again", 409)


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(MarteauError, _bad_input)  # type: ignore[arg-type]
    app.add_exception_handler(OverflowError, _out_of_range)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _conflict)  # type: ignore[arg-type]
