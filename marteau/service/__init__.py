"""`marteau serve`: the web service (job queue, workers on disjoint nodes, console, reports).

Layers inside the package (imports flow down this list):

* `settings`  — the service's settings (CLI options, environment, TOML file)
* `models`    — SQLAlchemy 2 tables
* `db`        — engine, sessions (SQLite WAL with ``BEGIN IMMEDIATE`` writes), migrations
* `accounts`  — argon2 passwords, login sessions, API tokens
* `archive`   — safe extraction of uploaded project archives
* `scheduler` — claims (job + nodes in one transaction), leases, finish, reaper
* `worker`    — runs jobs: source, `marteau run` in its own process group, cancel
* `app`       — FastAPI: JSON API and server-rendered pages
* `serve`     — the `marteau serve` / `marteau worker` commands

See docs/service.md.
"""
