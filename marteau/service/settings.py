"""The service's settings: defaults < TOML file (`--config`) < environment (`MARTEAU_<NAME>`)
< command-line options. Workers started by `marteau serve` get them on their command line."""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from marteau.errors import MarteauError
from marteau.orchestration.clone import Limits

# `python -c` rather than `-m marteau.cli`: the cli module has no __main__ block
MARTEAU = [sys.executable, "-c", "from marteau.cli import main; main()"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "marteau"


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""  # default: sqlite:///<data_dir>/marteau.db
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    # processes of the web app (uvicorn's workers): one is bound by one core (the GIL)
    web_processes: int = 1
    # threads of each web process for the sync routes (anyio's default: 40)
    web_threads: int = 40
    base_url: str = ""  # public URL of the service, for links in mails (default http://host:port)
    # the command a job runs, before its arguments (a stand-in can be injected for tests)
    run_command: list[str] = field(default_factory=lambda: [*MARTEAU, "run"])
    # `marteau nodes` (check and force unlock from the nodes page), before its arguments
    nodes_command: list[str] = field(default_factory=lambda: [*MARTEAU, "nodes"])
    # more environment variables a job gets (the rest of the worker's is not passed:
    # marteau.orchestration.environment), e.g. ["http_proxy", "PIP_INDEX_URL"]
    job_env: list[str] = field(default_factory=list)
    # an idle worker checks an idle node whose last check is older than this (0: never)
    node_check_minutes: float = 10.0
    poll_interval: float = 1.0  # seconds between a worker's looks at the queue and at cancel
    lease_ttl: float = 60.0  # seconds a lease (job, nodes) lives without renewal
    kill_grace: float = 60.0  # seconds between SIGTERM and SIGKILL of a cancelled job
    lock_timeout: float = 60.0  # `marteau run --lock-timeout` (the node lock, the second lock)
    # a job's clone (worker and preview): seconds in all, MB on disk (its files checked
    # out count, as many as `max_archive_members` at most); killed past either
    clone_timeout: float = 120.0
    clone_max_mb: float = 200.0
    session_hours: float = 24.0 * 7
    max_upload_mb: int = 50
    max_extracted_mb: int = 500
    max_archive_members: int = 20000  # files and folders of an uploaded archive
    secure_cookies: bool = False  # set behind HTTPS
    default_node: bool = True  # a new database gets node `localhost` (this machine)
    # mail (used when smtp_host is set)
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    mail_sender: str = "marteau@localhost"
    config_path: str = ""  # the TOML file these settings came from (handed to the workers)
    # public mode (`--public`) turns on each of the three below; a team server can pick
    public: bool = False
    verify_hosts: bool = False  # jobs may only target their owner's verified hosts
    enforce_quotas: bool = False  # the quota_* limits are checked at submission
    fuse: bool = False  # stop a bench whose target is failing or far too slow
    verification_days: float = 30.0  # a host verification older than this is re-checked
    verify_interval: float = 10.0  # seconds between two checks of one host (Verify, jobs)
    dns_server: str = ""  # HOST[:PORT] of the resolver for DNS TXT proofs (default: system)
    max_hosts_per_user: int = 20  # hosts a user may register (0: no limit)
    # public mode: networks host verification may reach besides public addresses
    # (comma-separated CIDRs; empty: none; the tests put 127.0.0.0/8 here)
    verify_allow_networks: str = ""
    # quota defaults; 0 means no limit (`--public` starts from PUBLIC_QUOTAS instead).
    # An admin overrides them per user (User.quotas).
    quota_nodes_per_job: int = 0
    quota_concurrent_jobs: int = 0
    quota_queued_jobs: int = 0
    quota_users_per_node: int = 0
    quota_job_minutes: float = 0.0
    quota_disk_mb: float = 0.0
    quota_monthly_cost: float = 0.0
    # cost: price per node-hour of each pool (a node's `marteau_cost_per_hour` var wins)
    pool_prices: dict[str, float] = field(default_factory=dict)
    default_price_per_hour: float = 0.0
    # safety fuse: stop when, over the last `fuse_window` seconds, the error rate stayed
    # above `fuse_error_rate` or the median response time above `fuse_median` seconds
    fuse_error_rate: float = 0.5
    fuse_median: float = 10.0
    fuse_window: float = 30.0
    # abuse limits: logins refused (429) once an account, or a client address, failed
    # this many times within `login_window` seconds; argon2 hashes run in a pool of
    # `login_hash_threads` threads at low priority, so a burst of logins leaves the rest
    login_window: float = 900.0
    login_account_failures: int = 10
    login_address_failures: int = 30
    login_hash_threads: int = 1
    # public mode: the domains a project's `email` may be in besides its owner's address
    # (comma-separated; empty: only the owner's own address)
    mail_domains: str = ""
    # a bearer token that opens GET /metrics (and nothing else) to a Prometheus server;
    # empty: only admins read it (docs/metrics.md)
    metrics_token: str = ""

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
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            if isinstance(value, list):
                value = shlex.join(value)
            elif isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            env[f"MARTEAU_{f.name.upper()}"] = str(value)
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


def _convert(name: str, value: object, kind: object) -> object:
    text = isinstance(value, str)
    if name in ("run_command", "nodes_command", "job_env"):
        return shlex.split(value) if text else [str(v) for v in value]  # type: ignore[union-attr]
    if name == "pool_prices":
        if text:  # `pool=price,pool=price` (environment, command line)
            pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]  # type: ignore[union-attr]
            return {k.strip(): float(v) for k, v in pairs}
        return {str(k): float(v) for k, v in dict(value).items()}  # type: ignore[call-overload]
    if name == "data_dir":
        return Path(str(value)).expanduser()
    if kind in (bool, "bool"):
        return value.strip().lower() in ("1", "true", "yes", "on") if text else bool(value)
    if kind in (int, "int"):
        return int(value)  # type: ignore[arg-type]
    if kind in (float, "float"):
        return float(value)  # type: ignore[arg-type]
    return str(value)


def load_settings(config: Path | None = None, **options: object) -> Settings:
    """Settings from a TOML file, the environment and options (None means "not given")."""
    values: dict[str, object] = {}
    known = {f.name: f.type for f in fields(Settings)}
    if config:
        try:
            data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MarteauError(f"{config}: {exc}") from None
        data = data.get("marteau", data)
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in known:
                raise MarteauError(f"{config}: unknown setting {key!r}")
            values[name] = value
    for name in known:
        env = os.environ.get(f"MARTEAU_{name.upper()}")
        if env is not None:
            values[name] = env
    for name, value in options.items():
        if value is not None:
            values[name] = value
    settings = Settings()
    if config:
        values["config_path"] = str(Path(config).resolve())
    for name, value in values.items():
        try:
            setattr(settings, name, _convert(name, value, known[name]))
        except (TypeError, ValueError) as exc:
            raise MarteauError(f"setting {name}: {value!r}: {exc}") from None
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
