"""A small DOM over `html.parser`, shaped like webunit's SimpleDOM.

Tests call ``response.getDOM().getByName('a')`` and read ``.href`` or
``getContentString()`` on the elements; that, `getById` and the
`listHref`/`getLastBaseUrl` helpers are what this covers.  It is built only
when a test asks for it, never on the request path.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

_VOID_NAMES = "area base br col embed hr img input link meta param source track wbr basefont frame"
_VOID = frozenset(_VOID_NAMES.split())
# A start tag of the key closes an open element of the same kind (implied end tags).
_SIBLING_NAMES = "li option p tr td th dt dd"
_SELF_CLOSING_SIBLINGS = frozenset(_SIBLING_NAMES.split())


class Element:
    """One element: attributes readable as Python attributes (``a.href``)."""

    def __init__(self, name: str, attributes: dict[str, str], parent: Element | None) -> None:
        self.name = name
        self.attributes = attributes
        self.parent = parent
        self.children: list[Element | str] = []

    @property
    def tag(self) -> str:
        return self.name

    def __getattr__(self, attribute: str) -> str:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        try:
            return self.__dict__["attributes"][attribute.lower()]
        except KeyError:
            raise AttributeError(f"<{self.name}> has no attribute {attribute!r}") from None

    def hasattr(self, attribute: str) -> bool:
        return attribute.lower() in self.attributes

    def get(self, attribute: str, default: Any = None) -> Any:
        return self.attributes.get(attribute.lower(), default)

    def elements(self) -> Iterator[Element]:
        """Every descendant element in document order."""
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.elements()

    def getByName(self, name: str) -> list[Element]:
        """Every descendant element called ``name`` (case-insensitive)."""
        name = name.lower()
        return [element for element in self.elements() if element.name == name]

    def getByNameFlat(self, name: str) -> list[Element]:
        """The direct children called ``name``."""
        name = name.lower()
        return [c for c in self.children if isinstance(c, Element) and c.name == name]

    def getById(self, name: str, id: str) -> Element | None:
        """The first ``name`` element whose ``id`` attribute is ``id``."""
        for element in self.getByName(name):
            if element.attributes.get("id") == id:
                return element
        return None

    def getContents(self) -> list[Element | str]:
        return self.children

    def getContentString(self) -> str:
        """The text of this element and its descendants, concatenated."""
        parts: list[str] = []
        self._text(parts)
        return "".join(parts)

    def _text(self, parts: list[str]) -> None:
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            else:
                child._text(parts)

    def __repr__(self) -> str:
        attrs = "".join(f' {k}="{v}"' for k, v in self.attributes.items())
        return f"<{self.name}{attrs}>"


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SELF_CLOSING_SIBLINGS and self.current.name == tag:
            self.current = self.current.parent or self.root
        attributes = {k.lower(): ("" if v is None else v) for k, v in attrs}
        element = Element(tag, attributes, self.current)
        self.current.children.append(element)
        if tag not in _VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k.lower(): ("" if v is None else v) for k, v in attrs}
        self.current.children.append(Element(tag, attributes, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node is not self.root:
            if node.name == tag:
                self.current = node.parent or self.root
                return
            node = node.parent
        # An end tag with no open element: ignored, as browsers do.

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse(text: str | None) -> Element:
    """The document element of ``text`` (an empty document for None)."""
    builder = _Builder()
    if text:
        builder.feed(text)
        builder.close()
    return builder.root
