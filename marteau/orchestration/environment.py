"""The environment a job sees: an allow-list, never the caller's whole environment.

A service's worker holds secrets in its environment (`MARTEAU_ADMIN_PASSWORD`, the
SMTP password and database URL settings as `MARTEAU_<NAME>`, a cloud token...).
Whatever reaches `marteau run` reaches ansible-runner, which copies its own
environment into `ansible-playbook`'s, whose modules inherit it on a node with a local
connection: the test would read them in `os.environ`. So the worker starts a job
with `job_environment`, and the driver drops from ansible-runner's environment what
it inherited beyond the same list.

Kept: what a process, Python, git, ssh and Ansible need (`PATH`, `HOME`, the locale,
`TMPDIR`, `SSH_AUTH_SOCK`, `ANSIBLE_*` ...), the job's own `MARTEAU_SERVICE_JOB`, and
the names listed in `MARTEAU_KEEP_ENV` (space-separated; the service's `job_env`
setting), which an admin adds on purpose (a proxy, a pip index).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

KEEP_VARIABLE = "MARTEAU_KEEP_ENV"
ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "TZ",
        "TMPDIR",
        "XDG_CACHE_HOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "GIT_TERMINAL_PROMPT",
        "SSH_AUTH_SOCK",
        "MARTEAU_SERVICE_JOB",
        KEEP_VARIABLE,
    }
)
ALLOWED_PREFIXES = ("LC_", "ANSIBLE_")


def kept_names(environ: Mapping[str, str]) -> frozenset[str]:
    """The names `MARTEAU_KEEP_ENV` adds to the allow-list."""
    return frozenset(environ.get(KEEP_VARIABLE, "").split())


def allowed(name: str, keep: Iterable[str] = ()) -> bool:
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES) or name in set(keep)


def job_environment(
    environ: Mapping[str, str], keep: Iterable[str] = (), **values: str
) -> dict[str, str]:
    """The allow-listed part of `environ` (plus the names in `keep`, which are then
    listed in `MARTEAU_KEEP_ENV` for the processes below), with `values` set."""
    names = kept_names(environ) | frozenset(keep)
    env = {name: value for name, value in environ.items() if allowed(name, names)}
    if names:
        env[KEEP_VARIABLE] = " ".join(sorted(names))
    env.update(values)
    return env


def drop_inherited(env: dict[str, str], inherited: Mapping[str, str]) -> dict[str, str]:
    """`env` without what it took unchanged from `inherited` that is not allowed:
    what a library copied from the caller's environment, minus the caller's secrets;
    what the library itself set stays."""
    names = kept_names(inherited)
    return {
        name: value
        for name, value in env.items()
        if allowed(name, names) or inherited.get(name) != value
    }
