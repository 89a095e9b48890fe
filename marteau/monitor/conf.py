"""FunkLoad's monitor server conf (`monitor.conf`).

The server's conf: ``[server]`` ``host`` (default ``localhost``), ``port``
(required), ``interval`` (seconds, required as in FunkLoad), ``interface``
(optional here: every interface but the loopback when absent), ``pid_path``
and ``log_path`` (``monitor.pid``, ``monitor.log``); ``[plugins]``
``monitors_enabled`` or ``monitors_disabled`` (space-separated plugin
names). Marteau adds the bounds ``max_duration`` (seconds, default one
day: the server stops itself then) and ``max_samples``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from marteau.errors import MarteauError
from marteau.funkload.config import REQUIRED, FunkLoadConfig
from marteau.funkload.credentials import HOST
from marteau.funkload.monitor_link import number, port_number
from marteau.monitor.agent import Bounds
from marteau.monitor.sampler import PLUGINS, check_plugins

SERVER_NAME = "monitor"  # FunkLoad's: the default pid and log file names


@dataclass
class MonitorConf:
    """The ``[server]`` and ``[plugins]`` sections of a monitor conf."""

    path: str
    host: str
    port: int
    bounds: Bounds
    interface: str | None
    plugins: list[str]
    pid_path: str
    log_path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def read_conf(path: str) -> MonitorConf:
    """The monitor conf at `path`; MarteauError naming the file, section and key."""
    conf = FunkLoadConfig(os.path.abspath(path))
    if conf.path.startswith("Missing: "):
        raise MarteauError(f"{path}: no such monitor server configuration file")

    def get(key: str, default: str = REQUIRED) -> str:
        return str(conf.get("server", key, default)).strip()

    host = get("host", "localhost") or "localhost"
    if not HOST.match(host):
        raise MarteauError(f"{path}: [server] host: not a host name or address: {host!r}")
    bounds = Bounds(
        interval=float(number(path, "server", "interval", get("interval"), float)),
        max_duration=float(
            number(path, "server", "max_duration", get("max_duration", "86400"), float)
        ),
        max_samples=int(number(path, "server", "max_samples", get("max_samples", "100000"), int)),
    ).check(f"{path}: [server]")
    enabled = str(conf.get("plugins", "monitors_enabled", "")).split()
    disabled = str(conf.get("plugins", "monitors_disabled", "")).split()
    check_plugins(enabled, f"{path}: [plugins] monitors_enabled")
    check_plugins(disabled, f"{path}: [plugins] monitors_disabled")
    plugins = enabled or [name for name in PLUGINS if name not in disabled]
    return MonitorConf(
        path=path,
        host=host,
        port=port_number(path, "server", get("port")),
        bounds=bounds,
        interface=get("interface", "") or None,
        plugins=plugins,
        pid_path=get("pid_path", SERVER_NAME + ".pid") or SERVER_NAME + ".pid",
        log_path=get("log_path", SERVER_NAME + ".log") or SERVER_NAME + ".log",
    )
