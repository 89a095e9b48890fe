"""The service's settings: one declaration gives the defaults, the variables, the file
keys, the options' help; docs/service.md's table lists every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("pydantic_settings")

from click.testing import CliRunner  # noqa: E402

from marteau.errors import MarteauError  # noqa: E402
from marteau.service.serve import serve_command  # noqa: E402
from marteau.service.settings import Settings, env_name, load_settings  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs" / "service.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)


def documented_settings() -> set[str]:
    """The names in the first column of the table under "## Settings"."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return names


def test_every_setting_is_in_the_docs_table_and_only_settings() -> None:
    documented = documented_settings()
    assert set(Settings.model_fields) - documented == set(), "settings missing in the table"
    assert documented - set(Settings.model_fields) == set(), "the table names no setting"


def test_file_then_environment_then_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "marteau.toml"
    config.write_text(
        "[marteau]\nport = 9001\nweb-threads = 7\nsmtp_password = 1234\n"
        'run_command = ["fake-run", "--x"]\npool_prices = { lab = 0.5 }\nfuse = true\n'
    )
    monkeypatch.setenv("MARTEAU_WEB_THREADS", "8")
    monkeypatch.setenv("MARTEAU_JOB_ENV", "http_proxy 'NO PROXY'")
    monkeypatch.setenv("MARTEAU_SECURE_COOKIES", "On")
    settings = load_settings(config, port=None, workers=0)
    assert (settings.port, settings.web_threads, settings.workers) == (9001, 8, 0)
    assert settings.smtp_password == "1234"
    assert settings.run_command == ["fake-run", "--x"]
    assert settings.job_env == ["http_proxy", "NO PROXY"]
    assert settings.pool_prices == {"lab": 0.5}
    assert settings.fuse and settings.secure_cookies
    assert settings.config_path == str(config.resolve())
    # what a worker gets: the same settings through its environment
    for name, value in settings.worker_env().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


def test_in_code_the_settings_are_what_they_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARTEAU_PORT", "9002")
    assert Settings().port == 8080
    assert load_settings().port == 9002


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("file", r"marteau.toml: setting workers: 'two': Input should be a valid integer"),
        ("env", r"^MARTEAU_WORKERS: setting workers: 'two': Input should be a valid integer"),
        ("option", r"^setting workers: 'two': Input should be a valid integer"),
    ],
)
def test_a_bad_value_names_its_source_and_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, message: str
) -> None:
    config = tmp_path / "marteau.toml"
    config.write_text('workers = "two"\n' if where == "file" else "")
    if where == "env":
        monkeypatch.setenv("MARTEAU_WORKERS", "two")
    options = {"workers": "two"} if where == "option" else {}
    with pytest.raises(MarteauError, match=message):
        load_settings(config, **options)


def test_an_unknown_or_unreadable_file_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "marteau.toml"
    config.write_text("[marteau]\nprot = 8080\n")
    with pytest.raises(MarteauError, match=r"marteau.toml: unknown setting 'prot'"):
        load_settings(config)
    config.write_text("port = \n")
    with pytest.raises(MarteauError, match=r"marteau.toml: .*line 1"):
        load_settings(config)
    settings = load_settings(data_dir=tmp_path, pool_prices="a=1,b=2")
    assert settings.pool_prices == {"a": 1.0, "b": 2.0}
    with pytest.raises(MarteauError, match=r"setting pool_prices: 'a=x'"):
        load_settings(pool_prices="a=x")


def test_the_options_help_comes_from_the_settings() -> None:
    result = CliRunner().invoke(serve_command, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name, default in [
        ("port", "8080"),
        ("workers", "2"),
        ("web_threads", "40"),
        ("lease_ttl", "60"),
        ("poll_interval", "1"),
        ("public", "off"),
        ("run_command", "marteau run"),
    ]:
        described = Settings.model_fields[name].description
        assert described, name
        option = f"--{name.replace('_', '-')}"
        line = next(line for line in result.output.splitlines() if line.strip().startswith(option))
        assert f"{described} (default {default}; {env_name(name)})." in line, line
