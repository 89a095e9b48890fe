"""The mail sent when a job ends: to its owner and to `.marteau.yml`'s `email`, with
the status, the headline figures and their change from the project's previous run
(comparisons), the key figures of the report's `summary.json` and the links."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from marteau.errors import MarteauError
from marteau.service.comparisons import changes_line, headline, short_change
from marteau.service.run_figures import MAX_SUMMARY, KeyFigures, Unreadable, get_path, read_json
from marteau.service.settings import Settings

# a plain address: a dot-atom local part, a domain of letters, digits and hyphens with a
# dot; no quoted local parts, comments or IP literals (RFC 5322's rarer forms)
ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def check_recipient(settings: Settings, owner: str | None, email: str | None) -> None:
    """Refuse a `.marteau.yml` `email` that is not an address, or, in public mode, one
    that is neither the owner's own nor in a domain the admin allows (`mail_domains`):
    otherwise a public service would mail anyone its users name."""
    if not email:
        return
    if len(email) > 254 or not ADDRESS.match(email):
        raise MarteauError(f".marteau.yml: email {email!r}: not an email address")
    if not settings.public or email.lower() == (owner or "").lower():
        return
    domain = email.rpartition("@")[2].lower()
    allowed = {d.strip().lower().lstrip("@") for d in settings.mail_domains.split(",") if d.strip()}
    if domain not in allowed:
        raise MarteauError(
            f".marteau.yml: email {email!r}: a public service mails only the job's owner "
            f"({owner}) or the domains its admin allows ({', '.join(sorted(allowed)) or 'none'})"
        )


def key_figures(summary_path: Path) -> list[str]:
    """Lines of figures from a report's summary.json (none if it is missing, too big or
    unreadable: it comes from the job's run, see run_figures)."""
    try:
        summary = read_json(summary_path, MAX_SUMMARY)
    except Unreadable:
        return []
    lines = []
    tests = get_path(summary, "overall", "tests")
    pages = get_path(summary, "overall", "pages")
    if isinstance(tests, dict):
        lines.append(
            f"Tests: {tests.get('count', 0)} ({tests.get('success', 0)} successful), "
            f"STPS {float(tests.get('stps') or 0):.3f}, errors {float(tests.get('error_percent') or 0):.2f}%"
        )
    if isinstance(pages, dict):
        p95 = get_path(pages, "percentiles", "p95")
        # the standard Apdex (errors frustrated), as the report's headline; FunkLoad's
        # page Apdex counts durations only and says Excellent for a bench of errors
        apdex = summary.get("apdex") or pages.get("apdex") or {}
        lines.append(
            f"Pages: SPPS {float(pages.get('spps') or 0):.3f}, p95 {float(p95 if p95 is not None else -1):.3f} s, "
            f"errors {float(pages.get('error_percent') or 0):.2f}%, "
            f"Apdex {float(apdex.get('score') or 0):.3f} {apdex.get('label') or ''}".rstrip()
        )
    thresholds = summary.get("thresholds") if isinstance(summary, dict) else None
    if isinstance(thresholds, dict):
        lines.append(f"Thresholds: {'passed' if thresholds.get('passed') else 'FAILED'}")
    return lines


def build_message(
    settings: Settings,
    recipients: list[str],
    job_id: int,
    project: str | None,
    state: str,
    reason: str,
    job_dir: Path,
    has_report: bool,
    *,
    figures: KeyFigures | None = None,
    comparison: dict[str, Any] | None = None,
) -> EmailMessage:
    """The message; `figures` and `comparison` are the job's row's (comparisons)."""
    base = settings.public_url
    name = project or f"job {job_id}"
    message = EmailMessage()
    short = short_change(figures, comparison) if figures else ""
    message["Subject"] = f"[marteau] {name}: {state}" + (f", {short}" if short else "")
    message["From"] = settings.mail_sender
    message["To"] = ", ".join(recipients)
    body = [f"Marteau job #{job_id} ({name}) {state}: {reason}", ""]
    if reason.startswith("safety fuse:"):
        body += [
            "The safety fuse stopped the load test: the target kept failing or answering "
            "too slowly, and more load would only have added to its trouble. The results "
            "of what ran are kept" + (" in the report." if has_report else "."),
            "",
        ]
    head = headline(figures) if figures else ""
    change = changes_line(comparison)
    body += [line for line in (f"Headline: {head}" if head else "", change) if line]
    lines = key_figures(job_dir / "report" / "summary.json") if has_report else []
    body += lines + ([""] if lines or head else [])
    if has_report:
        body.append(f"Report: {base}/jobs/{job_id}/report/")
    for name, title in (
        ("diff", f"Diff vs job #{(comparison or {}).get('job')}"),
        ("trend", "Trend"),
    ):
        if comparison and comparison.get(name):
            body.append(f"{title}: {base}/jobs/{job_id}/{comparison[name]}")
    body.append(f"Job: {base}/jobs/{job_id}")
    message.set_content("\n".join(body) + "\n")
    return message


def send(settings: Settings, message: EmailMessage) -> None:
    """Send over SMTP (STARTTLS and login when configured); raises on failure."""
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)
