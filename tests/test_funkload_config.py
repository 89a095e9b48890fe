"""FunkLoad `.conf` files: Python 2 ConfigParser quirks, overrides, clear errors."""

from __future__ import annotations

import configparser
from pathlib import Path
from types import SimpleNamespace

import pytest

from marteau.errors import MarteauError
from marteau.funkload.config import (
    ConfAccess,
    FunkLoadConfig,
    MissingConfOption,
    MissingConfSection,
    conf_path_for,
    split_list,
)

CONF = """\
[DEFAULT]
root = http://example.org

[main]
Title: Hello  # not a comment
url = http://localhost/a%20b.html?q=%41
desc = kept ;an inline comment
hash = value # stays
empty =
UPPER = 1
long = first
  second
# full-line comment
; another one
cycles = 1:10:20

[test_simple]
description=Access the main URL %(nb_time)s times from %(ROOT)s
nb_time=20
mixed = 100%% of %(nb_time)s
"""


@pytest.fixture
def conf(tmp_path: Path) -> FunkLoadConfig:
    path = tmp_path / "Simple.conf"
    path.write_text(CONF)
    return FunkLoadConfig(str(path))


def test_percent_escapes_are_kept_without_interpolation(conf: FunkLoadConfig) -> None:
    assert conf.get("main", "url") == "http://localhost/a%20b.html?q=%41"


def test_interpolation_uses_section_and_default(conf: FunkLoadConfig) -> None:
    assert conf.get("test_simple", "description") == (
        "Access the main URL 20 times from http://example.org"
    )
    # Python 2 ran `value % vars` once `%(` is present, so `%%` became `%`.
    assert conf.get("test_simple", "mixed") == "100% of 20"


def test_comments_continuations_and_empty_values(conf: FunkLoadConfig) -> None:
    assert conf.get("main", "desc") == "kept"
    assert conf.get("main", "hash") == "value # stays"
    assert conf.get("main", "title") == "Hello  # not a comment"
    assert conf.get("main", "empty") == ""
    assert conf.get("main", "long") == "first\nsecond"


def test_keys_are_case_insensitive_sections_are_not(conf: FunkLoadConfig) -> None:
    assert conf.get("main", "upper") == "1"
    assert conf.get("main", "UPPER") == "1"
    with pytest.raises(configparser.NoSectionError):
        conf.get("MAIN", "url")


def test_lists_use_colons(conf: FunkLoadConfig) -> None:
    assert split_list(conf.get("main", "cycles")) == ["1", "10", "20"]
    assert split_list("a b", " ") == ["a", "b"]
    assert split_list([1, 2]) == [1, 2]


def test_missing_key_error_names_file_section_and_key(conf: FunkLoadConfig) -> None:
    with pytest.raises(MissingConfOption) as info:
        conf.get("main", "nope")
    error = info.value
    assert isinstance(error, MarteauError)
    assert isinstance(error, configparser.NoOptionError)
    assert conf.path in str(error) and "[main]" in str(error) and "nope" in str(error)
    with pytest.raises(MissingConfSection) as section_info:
        conf.get("bench", "cycles")
    assert isinstance(section_info.value, configparser.NoSectionError)
    assert "[bench]" in str(section_info.value)


def test_defaults_are_returned_for_missing_keys(conf: FunkLoadConfig) -> None:
    assert conf.get("main", "nope", "fallback") == "fallback"
    assert conf.get("nope", "nope", None) is None


def test_missing_file_is_not_an_error_until_a_key_is_required(tmp_path: Path) -> None:
    conf = FunkLoadConfig(str(tmp_path / "Absent.conf"))
    assert conf.path == "Missing: " + str(tmp_path / "Absent.conf")
    assert conf.get("main", "url", "x") == "x"
    with pytest.raises(MarteauError, match=r"Absent\.conf not found.*\[main\] url"):
        conf.get("main", "url")


def test_cli_overrides_shadow_truthy_only(tmp_path: Path) -> None:
    path = tmp_path / "Simple.conf"
    path.write_text(CONF)
    options = SimpleNamespace(main_url="http://override/", main_desc="", ftest_log_to="0")
    conf = FunkLoadConfig(str(path), options)
    assert conf.get("main", "url") == "http://override/"
    assert conf.get("main", "desc") == "kept"  # an empty override does not apply
    assert conf.get("ftest", "log_to") == "0"  # a string '0' is truthy: it applies


def test_conf_path_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FL_CONF_PATH", raising=False)
    assert conf_path_for("Simple") == str(tmp_path / "Simple.conf")
    monkeypatch.setenv("FL_CONF_PATH", "/etc/marteau")
    assert conf_path_for("Simple") == "/etc/marteau/Simple.conf"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert conf_path_for("Simple", "~/other.conf") == str(tmp_path / "other.conf")


def test_attribute_access() -> None:
    seen = []

    def getter(section: str, key: str) -> str:
        seen.append((section, key))
        return "value"

    conf = ConfAccess(getter)
    assert conf.main.url == "value"
    assert seen == [("main", "url")]


def test_unparsable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "Bad.conf"
    path.write_text("no section header\nkey = value\n")
    with pytest.raises(MarteauError, match="Bad.conf"):
        FunkLoadConfig(str(path))
