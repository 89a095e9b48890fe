"""The service's settings: defaults < TOML file (`--config`) < environment (`MARTEAU_<NAME>`)
< command-line options. One declaration (`Settings`, on pydantic-settings) gives each
setting its default, variable, file key, type and help. Workers started by `marteau
serve` get them on their command line and in their environment."""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticUndefined
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from marteau.errors import MarteauError
from marteau.orchestration.clone import Limits

# `python -c` rather than `-m marteau.cli`: the cli module has no __main__ block
MARTEAU = [sys.executable, "-c", "from marteau.cli import main; main()"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "marteau"


def _flag(value: object) -> object:
    """A yes/no setting: from text (environment, option), 1, true, yes or on (any case)
    mean yes, anything else no."""
    return value.strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else value


def _words(value: object) -> object:
    """A command or a list of names: a shell-quoted text (environment, option), or a list."""
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value] if isinstance(value, list | tuple) else value


def _prices(value: object) -> object:
    """Prices per pool: `pool=price,pool=price` (environment, option), or a table."""
    if isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        return {k.strip(): v.strip() for k, v in pairs}
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
Words = Annotated[list[str], BeforeValidator(_words)]


def setting(default: Any = PydanticUndefined, what: str = "", shown: str = "", **more: Any) -> Any:
    """A setting's default and what it is (the CLI help and the docs say the same);
    `shown` is how the help shows a default computed at run time."""
    extra: JsonDict | None = {"shown": shown} if shown else None
    return Field(default, description=what, json_schema_extra=extra, **more)


class Settings(BaseSettings):
    """Every setting, its default and its meaning: `load_settings` reads them from a
    TOML file and the environment (`MARTEAU_<NAME>`), `serve.setting_option` makes the
    command-line options' help from them, and docs/service.md's table lists them (a
    test checks it). `Settings(...)` in code takes only what it is given."""

    model_config = SettingsConfigDict(
        env_prefix="MARTEAU_",
        extra="forbid",
        enable_decoding=False,  # a list or table from the environment is text: _words, _prices
        coerce_numbers_to_str=True,  # `smtp_password = 1234` in the TOML file is a password
    )

    data_dir: Annotated[Path, AfterValidator(Path.expanduser)] = setting(
        default_factory=default_data_dir,
        what="Database, consoles, reports",
        shown="~/.local/share/marteau",
    )
    database_url: str = setting(
        "", "SQLAlchemy URL of the database", shown="SQLite in the data folder"
    )
    host: str = setting("127.0.0.1", "Address to listen on")
    port: int = setting(8080, "Port")
    workers: int = setting(2, "Worker processes")
    web_processes: int = setting(1, "Processes of the web app, to use more than one core")
    web_threads: int = setting(40, "Threads of each web process for the sync routes")
    base_url: str = setting(
        "", "Public URL of the service, for links in mails", shown="http://HOST:PORT"
    )
    run_command: Words = setting(
        default_factory=lambda: [*MARTEAU, "run"],
        what="The command a job runs, before its arguments; tests inject a stand-in",
        shown="marteau run",
    )
    nodes_command: Words = setting(
        default_factory=lambda: [*MARTEAU, "nodes"],
        what="The command the nodes page runs to check or unlock a node",
        shown="marteau nodes",
    )
    job_env: Words = setting(
        default_factory=list,
        what="More environment variables a job gets (the rest of the worker's is not "
        "passed), e.g. http_proxy PIP_INDEX_URL",
    )
    node_check_minutes: float = setting(
        10.0, "An idle worker checks an idle node whose last check is older (0: never)"
    )
    poll_interval: float = setting(1.0, "Seconds between looks at the queue and at cancel")
    lease_ttl: float = setting(60.0, "Seconds a job's and its nodes' lease lives unrenewed")
    kill_grace: float = setting(60.0, "Seconds from SIGTERM to SIGKILL on cancel")
    lock_timeout: float = setting(60.0, "marteau run --lock-timeout, the node lock")
    clone_timeout: float = setting(120.0, "Seconds a job's clone (worker, preview) may take")
    clone_max_mb: float = setting(
        200.0, "MB a job's clone may take on disk (its files checked out count)"
    )
    session_hours: float = setting(24.0 * 7, "Login session lifetime")
    max_upload_mb: int = setting(50, "Largest uploaded archive")
    max_extracted_mb: int = setting(500, "Largest uploaded archive, extracted")
    max_archive_members: int = setting(20000, "Files and folders of an uploaded archive")
    secure_cookies: Flag = setting(False, "Secure cookies: set behind HTTPS")
    default_node: Flag = setting(True, "A new database gets node localhost (this machine)")
    smtp_host: str = setting("", "SMTP server for the mails at the end of a job (none: no mail)")
    smtp_port: int = setting(25, "SMTP port")
    smtp_starttls: Flag = setting(False, "STARTTLS to the SMTP server")
    smtp_user: str = setting("", "SMTP user")
    smtp_password: str = setting("", "SMTP password")
    mail_sender: str = setting("marteau@localhost", "From address of the mails")
    config_path: str = setting("", "The TOML file these settings came from (set by --config)")
    public: Flag = setting(False, "Public mode: verified target hosts, quotas and the safety fuse")
    verify_hosts: Flag = setting(False, "Jobs may only target their owner's verified hosts")
    enforce_quotas: Flag = setting(False, "The quota_* limits are checked at submission")
    fuse: Flag = setting(False, "Stop a bench whose target is failing or far too slow")
    verification_days: float = setting(30.0, "A host verification older is checked again")
    verify_interval: float = setting(10.0, "Seconds between two checks of one host")
    dns_server: str = setting(
        "", "HOST[:PORT] of the resolver for DNS TXT proofs", shown="the system's"
    )
    max_hosts_per_user: int = setting(20, "Hosts a user may register (0: no limit)")
    verify_allow_networks: str = setting(
        "",
        "Public mode: networks (comma-separated CIDRs) host verification may reach "
        "besides public addresses",
    )
    # quotas: 0 is no limit (`--public` starts from PUBLIC_QUOTAS); an admin overrides
    # them per user (User.quotas)
    quota_nodes_per_job: int = setting(0, "Nodes of one job (0: no limit)")
    quota_concurrent_jobs: int = setting(0, "Running jobs of one user (0: no limit)")
    quota_queued_jobs: int = setting(0, "Queued jobs of one user (0: no limit)")
    quota_users_per_node: int = setting(0, "Virtual users per node (0: no limit)")
    quota_job_minutes: float = setting(0.0, "Minutes a job may run (0: no limit)")
    quota_disk_mb: float = setting(0.0, "MB of reports a user may keep (0: no limit)")
    quota_monthly_cost: float = setting(0.0, "Cost a user may spend in a month (0: no limit)")
    pool_prices: Annotated[dict[str, float], BeforeValidator(_prices)] = setting(
        default_factory=dict,
        what="Price per node-hour of each pool, pool=price,... (a node's "
        "marteau_cost_per_hour var wins)",
    )
    default_price_per_hour: float = setting(0.0, "Price per node-hour of the other pools")
    fuse_error_rate: float = setting(
        0.5, "The fuse stops a bench whose error rate stays above this over fuse_window"
    )
    fuse_median: float = setting(
        10.0, "... or whose median response time (s) stays above this over fuse_window"
    )
    fuse_window: float = setting(30.0, "Seconds the fuse looks back")
    login_window: float = setting(900.0, "Seconds login failures are counted over")
    login_account_failures: int = setting(
        10, "Logins refused (429) once an account failed this often within login_window"
    )
    login_address_failures: int = setting(
        30, "... once a client address failed this often within login_window"
    )
    login_hash_threads: int = setting(
        1, "Threads hashing passwords at low priority (a burst of logins leaves the rest)"
    )
    mail_domains: str = setting(
        "",
        "Public mode: domains (comma-separated) a project's email may be in besides its "
        "owner's address",
    )
    metrics_token: str = setting(
        "", "A bearer token that opens GET /metrics (and nothing else) to Prometheus"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings(...)` is what it is given: load_settings adds the file and the
        # environment, and knows where each value came from for its errors
        return (init_settings,)

    @property
    def hosts_enforced(self) -> bool:
        return self.public or self.verify_hosts

    @property
    def quotas_enforced(self) -> bool:
        return self.public or self.enforce_quotas

    @property
    def fuse_enabled(self) -> bool:
        return self.public or self.fuse

    @property
    def clone_limits(self) -> Limits:
        """The limits of a job's clone (the worker's and the preview's)."""
        return Limits(self.clone_timeout, int(self.clone_max_mb * 2**20), self.max_archive_members)

    @property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """`verify_allow_networks`, parsed; MarteauError naming the setting."""
        try:
            return [
                ipaddress.ip_network(item.strip())
                for item in self.verify_allow_networks.split(",")
                if item.strip()
            ]
        except ValueError as exc:
            raise MarteauError(f"setting verify_allow_networks: {exc}") from None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'marteau.db'}"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    def worker_env(self) -> dict[str, str]:
        """`MARTEAU_<NAME>` for every setting that differs from its default, so a worker
        started by `marteau serve` has them all, even those with no worker option."""
        defaults = Settings()
        env = {}
        for name in Settings.model_fields:
            value = getattr(self, name)
            if value == getattr(defaults, name):
                continue
            if isinstance(value, list):
                value = shlex.join(value)
            elif isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            env[env_name(name)] = str(value)
        return env

    def worker_args(self) -> list[str]:
        """The options that give a `marteau worker` these settings."""
        return [
            "--data-dir",
            str(self.data_dir),
            "--database-url",
            self.db_url,
            "--run-command",
            shlex.join(self.run_command),
            "--poll-interval",
            str(self.poll_interval),
            "--lease-ttl",
            str(self.lease_ttl),
            "--kill-grace",
            str(self.kill_grace),
            "--lock-timeout",
            str(self.lock_timeout),
            "--base-url",
            self.public_url,
        ] + (["--config", self.config_path] if self.config_path else [])


METRICS_TOKEN_MIN = 16  # characters of the metrics_token setting

# `--public`: the quotas a service open to anyone starts with, unless the TOML file, the
# environment or an option sets them (0 there: no limit); docs/service.md, "Public mode"
PUBLIC_QUOTAS: dict[str, float] = {
    "quota_nodes_per_job": 2,
    "quota_users_per_node": 200,
    "quota_job_minutes": 30.0,
    "quota_disk_mb": 500.0,
    "quota_concurrent_jobs": 1,
    "quota_queued_jobs": 3,
}


def env_name(name: str) -> str:
    """The environment variable of setting `name`."""
    return f"{Settings.model_config['env_prefix']}{name.upper()}"


def setting_help(name: str) -> str:
    """The command-line help of setting `name`: what it is, its default, its variable."""
    field = Settings.model_fields[name]
    extra = field.json_schema_extra or {}
    # `setting` gives a dict, never pydantic's callable form
    default = extra.get("shown") or field.get_default(call_default_factory=True)  # type: ignore[union-attr]
    if isinstance(default, bool):
        default = "on" if default else "off"
    elif isinstance(default, float):
        default = f"{default:g}"
    return f"{field.description} (default {default}; {env_name(name)})."


class TomlFile(PydanticBaseSettingsSource):
    """The settings of a TOML file: at its top level or in its `[marteau]` table, the
    keys spelt with `_` or `-`; an unknown key is an error that names it."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MarteauError(f"{self.path}: {exc}") from None
        values = {}
        for key, value in data.get("marteau", data).items():
            name = key.replace("-", "_")
            if name not in self.settings_cls.model_fields:
                raise MarteauError(f"{self.path}: unknown setting {key!r}")
            values[name] = value
        return values


def _refused(exc: ValidationError, values: dict[str, Any], origins: dict[str, str]) -> str:
    """A bad value's message: where it came from, the setting, the value, what is wrong."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    where = origins.get(name, "")
    return f"{where}setting {name}: {values.get(name)!r}: {error['msg']}"


def load_settings(config: Path | None = None, **options: object) -> Settings:
    """Settings from a TOML file, the environment and options (None means "not given"),
    each over the one before."""
    sources: list[tuple[dict[str, Any], Callable[[str], str]]] = []
    if config:
        sources.append((TomlFile(Settings, Path(config))(), lambda name: f"{config}: "))
    sources.append((EnvSettingsSource(Settings)(), lambda name: f"{env_name(name)}: "))
    sources.append(({k: v for k, v in options.items() if v is not None}, lambda name: ""))
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for given, origin in sources:
        values.update(given)
        origins.update({name: origin(name) for name in given})
    if config:
        values["config_path"] = str(Path(config).resolve())
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise MarteauError(_refused(exc, values, origins)) from None
    settings.allowed_networks  # noqa: B018 - refused now, not at the first check
    if settings.metrics_token and len(settings.metrics_token) < METRICS_TOKEN_MIN:
        raise MarteauError(
            f"setting metrics_token: at least {METRICS_TOKEN_MIN} characters (a secret: "
            "for example `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    if settings.public:
        for name, limit in PUBLIC_QUOTAS.items():
            if name not in values:
                setattr(settings, name, type(getattr(settings, name))(limit))
    return settings
