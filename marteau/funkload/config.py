"""FunkLoad `.conf` files with Python 2 `ConfigParser` semantics on Python 3.

Existing conf files hold things Python 3's parser rejects or changes: a
URL-encoded ``%20`` (BasicInterpolation raises), `#` after a value (must stay
part of the value), duplicate keys.  So the parser here interpolates only
values containing ``%(``, strips inline comments only for `` ;``, and is not
strict.  A missing file is not an error until a required key is read; the
error then names the file, the section and the key.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from typing import Any

from marteau.errors import MarteauError

# Marker for "no default given: the key is required".
REQUIRED: Any = object()

_NAME_RE = re.compile(r"%\(([^)]*)\)s")
_MAX_DEPTH = 10


class MissingConfSection(MarteauError, configparser.NoSectionError):
    """A required section is absent; still a `configparser.NoSectionError`."""

    def __init__(self, path: str, section: str, key: str) -> None:
        configparser.NoSectionError.__init__(self, section)
        self.option = key
        self.message = _missing_message(path, section, key, section_missing=True)
        self.args = (self.message,)

    def __str__(self) -> str:
        return self.message


class MissingConfOption(MarteauError, configparser.NoOptionError):
    """A required key is absent; still a `configparser.NoOptionError`."""

    def __init__(self, path: str, section: str, key: str) -> None:
        configparser.NoOptionError.__init__(self, key, section)
        self.message = _missing_message(path, section, key, section_missing=False)
        self.args = (self.message,)

    def __str__(self) -> str:
        return self.message


def _missing_message(path: str, section: str, key: str, section_missing: bool) -> str:
    if path.startswith("Missing: "):
        return (
            f"configuration file {path[len('Missing: ') :]} not found (required: [{section}] {key})"
        )
    what = f"no section [{section}]" if section_missing else f"no key '{key}' in [{section}]"
    return f"{path}: {what} (required: [{section}] {key})"


class Py2Interpolation(configparser.Interpolation):
    """``%(name)s`` interpolation that runs only when the value contains ``%(``."""

    def before_get(
        self,
        parser: Any,
        section: str,
        option: str,
        value: str,
        defaults: Mapping[str, str],
    ) -> str:
        depth = _MAX_DEPTH
        while depth and value and "%(" in value:
            depth -= 1
            lowered = _NAME_RE.sub(lambda m: f"%({m.group(1).lower()})s", value)
            try:
                value = lowered % _RawVars(defaults)
            except KeyError as exc:
                raise configparser.InterpolationMissingOptionError(
                    option, section, value, str(exc.args[0])
                ) from None
            except (ValueError, TypeError):
                # A stray `%` next to `%(x)s`: substitute the names only.
                value = _NAME_RE.sub(lambda m: _RawVars(defaults)[m.group(1).lower()], value)
        return value

    def before_set(self, parser: Any, section: str, option: str, value: str) -> str:
        return value


class _RawVars(Mapping[str, str]):
    """The section's raw values (plus DEFAULT), as `%` formatting reads them."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> str:
        value = self._values[key]
        return "" if value is None else value

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def parse_error(path: str, exc: configparser.Error) -> str:
    """One line naming the file and the first bad line (configparser's text spans several)."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"{path}:{exc.lineno}: cannot parse configuration: no [section] header before {exc.line!r}"
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        lineno, line = exc.errors[0]
        return f"{path}:{lineno}: cannot parse configuration: not a key = value line: {line}"
    return f"{path}: cannot parse configuration: {' '.join(str(exc).split())}"


def make_parser() -> configparser.RawConfigParser:
    """A parser with Python 2 `ConfigParser` behaviour."""
    parser = configparser.ConfigParser(
        interpolation=Py2Interpolation(),
        inline_comment_prefixes=(";",),
        comment_prefixes=("#", ";"),
        strict=False,
        empty_lines_in_values=False,
        delimiters=("=", ":"),
        default_section="DEFAULT",
    )
    return parser


def conf_path_for(class_name: str, config: str | None = None) -> str:
    """Where FunkLoad looks for a test class's conf: ``--config`` or ``$FL_CONF_PATH``."""
    if config:
        return os.path.abspath(os.path.expanduser(config))
    base = os.environ.get("FL_CONF_PATH", ".")
    return os.path.abspath(os.path.join(base, class_name + ".conf"))


class FunkLoadConfig:
    """One test class's configuration, with the CLI overrides of its options.

    ``path`` is the absolute file path, or ``"Missing: <abs path>"`` when the
    file does not exist (FunkLoad's own marker, shown in bench headers).
    """

    def __init__(self, path: str, options: Any = None) -> None:
        self.options = options
        # the values found, by (section, key): the file and options do not change
        self.found: dict[tuple[str, str], Any] = {}
        self.parser = make_parser()
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    self.parser.read_file(handle, source=path)
            except configparser.Error as exc:
                raise MarteauError(parse_error(path, exc)) from None
            self.path = path
        else:
            self.path = "Missing: " + path

    @classmethod
    def for_class(cls, class_name: str, options: Any = None) -> FunkLoadConfig:
        """Load ``<class_name>.conf`` as FunkLoad does for a test case."""
        return cls(conf_path_for(class_name, getattr(options, "config", None)), options)

    def override(self, section: str, key: str) -> Any:
        """The truthy ``<section>_<key>`` options attribute, or None."""
        if self.options is None:
            return None
        value = getattr(self.options, f"{section}_{key}", None)
        return value if value else None

    def get(self, section: str, key: str, default: Any = REQUIRED) -> Any:
        """The value (override first), the default, or a clear error.

        Found values are cached: tests read the conf in ``setUp``, which runs
        on every iteration of a bench, and the file and options do not change.
        """
        cache_key = (section, key)
        value = self.found.get(cache_key)
        if value is not None:
            return value
        value = self.override(section, key)
        if value is not None:
            self.found[cache_key] = value
            return value
        try:
            value = self.parser.get(section, key)
            self.found[cache_key] = value
            return value
        except configparser.NoSectionError:
            if default is REQUIRED:
                raise MissingConfSection(self.path, section, key) from None
            return default
        except configparser.NoOptionError:
            if default is REQUIRED:
                raise MissingConfOption(self.path, section, key) from None
            return default
        except configparser.InterpolationError as exc:
            raise MarteauError(f"{self.path}: [{section}] {key}: {exc.message}") from None

    def has(self, section: str, key: str) -> bool:
        return self.override(section, key) is not None or self.parser.has_option(section, key)

    def sections(self) -> list[str]:
        return self.parser.sections()


def split_list(value: Any, separator: str | None = None) -> list[str]:
    """FunkLoad list values: ``1:10:20`` → ``['1', '10', '20']``."""
    if not isinstance(value, str):
        return value
    return value.split(separator or ":")


class ConfSection:
    """``self.conf.main`` → attribute access to the keys of ``[main]``."""

    def __init__(self, getter: Any, section: str) -> None:
        self._getter = getter
        self._section = section

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self._getter(self._section, key)


class ConfAccess:
    """``self.conf.main.url`` is ``self.conf_get('main', 'url')``."""

    def __init__(self, getter: Any) -> None:
        self._getter = getter

    def __getattr__(self, section: str) -> ConfSection:
        if section.startswith("__"):
            raise AttributeError(section)
        return ConfSection(self._getter, section)
