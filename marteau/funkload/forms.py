"""HTML forms of a page as webunit's response helpers see them.

``extractForm``/``getFormData``/``getForm``/``postForm`` on `HTTPResponse`
delegate here.  A form becomes a dict of the values a browser would submit
with it, so a test can post a page's form back with a few fields changed,
hidden tokens included, without reading them one by one.  The rules are
listed in docs/funkload-compatibility.md ("Forms").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from marteau.funkload.dom import Element

FormData = dict[str, Any]  # name -> str, or a list of str when the name has several values

# <input> types a browser submits as their ``value`` attribute (anything unknown too).
_NEVER_SUBMITTED = frozenset({"reset", "file", "image"})


class FormNotFoundError(AssertionError):
    """The page has no such form: the test fails as on a failed assertion."""


def walk(root: Element, path: Iterable[Any]) -> Element:
    """Follow ``[(name, index), ...]``: each step is the ``index``-th ``name`` below the last."""
    node = root
    for step in path:
        if not isinstance(step, (tuple, list)) or len(step) != 2:
            raise TypeError(f"extractForm path steps are (element name, index) pairs, got {step!r}")
        name, index = step
        found = node.getByName(name)
        try:
            node = found[index]
        except IndexError:
            raise FormNotFoundError(
                f"no <{name}> number {index} on the way {list(path)!r} "
                f"({len(found)} <{name}> found there)"
            ) from None
    return node


def extract_fields(
    root: Element, include_submit: bool = False, include_button: bool = False
) -> FormData:
    """The values a browser would submit for the fields below ``root``, in document order."""
    pairs: list[tuple[str, str]] = []
    for element in root.elements():
        name = element.get("name")
        if not name or element.hasattr("disabled"):
            continue
        if element.name == "input":
            value = _input_value(element, include_submit, include_button)
            if value is not None:
                pairs.append((name, value))
        elif element.name == "button":
            kind = (element.get("type") or "submit").lower()
            if (kind == "submit" and include_submit) or (kind == "button" and include_button):
                pairs.append((name, element.get("value", "")))
        elif element.name == "textarea":
            pairs.append((name, _textarea_value(element)))
        elif element.name == "select":
            pairs.extend((name, value) for value in _selected_values(element))
    return _group(pairs)


def _input_value(element: Element, include_submit: bool, include_button: bool) -> str | None:
    kind = (element.get("type") or "text").lower()
    if kind in _NEVER_SUBMITTED:
        return None
    if kind in ("checkbox", "radio"):
        return element.get("value", "on") if element.hasattr("checked") else None
    if kind == "submit" and not include_submit:
        return None
    if kind == "button" and not include_button:
        return None
    return element.get("value", "")


def _textarea_value(element: Element) -> str:
    text = element.getContentString()
    # HTML ignores one newline right after <textarea>, so browsers do not submit it.
    if text.startswith("\r\n"):
        return text[2:]
    return text[1:] if text.startswith("\n") else text


def _option_value(option: Element) -> str:
    value = option.get("value")
    if value is not None:
        return value
    return " ".join(option.getContentString().split())


def _selected_values(select: Element) -> list[str]:
    options = [o for o in select.getByName("option") if not o.hasattr("disabled")]
    selected = [o for o in options if o.hasattr("selected")]
    if select.hasattr("multiple"):
        return [_option_value(o) for o in selected]
    if selected:  # a browser keeps only the last of several selected options
        return [_option_value(selected[-1])]
    return [_option_value(options[0])] if options else []


def _group(pairs: list[tuple[str, str]]) -> FormData:
    """One value per name as a str, several as a list (checkbox groups, multiple selects)."""
    data: FormData = {}
    for name, value in pairs:
        if name not in data:
            data[name] = value
        elif isinstance(data[name], list):
            data[name].append(value)
        else:
            data[name] = [data[name], value]
    return data


def merge(data: FormData, postargs: Mapping[str, Any] | None) -> FormData:
    """``postargs`` over the form's values; a ``None`` value removes the field."""
    merged = dict(data)
    for name, value in (postargs or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def action_url(form: Element, page_url: str, base_href: str | None) -> str:
    """The form's ``action`` resolved as a browser does (``<base href>``, else the page URL)."""
    base = urljoin(page_url, base_href) if base_href else page_url
    action = form.get("action", "").strip()
    resolved = urljoin(base, action) if action else base
    return urlunsplit(urlsplit(resolved)._replace(fragment=""))


def without_query(url: str) -> str:
    """A GET form replaces the action's query string with its own fields."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))
