"""Host lists for adding nodes, and the on-node lock holder read back from the table
`marteau nodes check` prints (its real renderer, not a copy of its format)."""

from __future__ import annotations

import time

import pytest

from marteau.errors import MarteauError
from marteau.orchestration.nodes_command import _show
from marteau.service.node_pool import parse_check, parse_host_list


def test_host_lists_one_per_line_or_comma_separated() -> None:
    assert parse_host_list("a.lab\nb.lab, c.lab,d.lab\r\n\n e.lab ") == [
        "a.lab",
        "b.lab",
        "c.lab",
        "d.lab",
        "e.lab",
    ]
    assert parse_host_list(["a.lab", "b.lab,c.lab"]) == ["a.lab", "b.lab", "c.lab"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "at least one host name"), (" ,\n", "at least one"), ("a\nb,a", "given twice: a")],
)
def test_bad_host_lists_say_why(text: str, message: str) -> None:
    with pytest.raises(MarteauError, match=message):
        parse_host_list(text)


def _check_table(capsys: pytest.CaptureFixture[str], monkeypatch, rows: list[dict]) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COLUMNS", "160")  # as the service runs the check
    monkeypatch.setenv("NO_COLOR", "1")
    _show(rows)
    return capsys.readouterr().out


def _row(node: str, **values: object) -> dict:
    return {
        "node": node,
        "reachable": True,
        "lock": {},
        "version": ["0.1"],
        "clock": 0.0,
        "error": "",
    } | values


def test_lock_holder_read_from_the_check_table(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    lock = {
        "job": "20261127-0001",
        "owner": "alice@lab (marteau serve job 12)",
        "expires": now + 90,
    }
    stale = {"job": "old-run", "owner": "bob@lab", "expires": now - 5, "expired": True}
    output = _check_table(
        capsys,
        monkeypatch,
        [
            _row("n1.lab", lock=lock),
            _row("n2.lab", lock=stale),
            _row("n3.lab"),
            _row("n4.lab", reachable=False),
            _row("n5.lab", error="permission denied"),
            _row("n6.lab", lock={"job": "hand", "owner": "ops@desk", "expires": now + 30}),
        ],
    )
    held = parse_check("n1.lab", output, now)
    assert held["state"] == "locked" and held["job"] == "20261127-0001"
    assert held["owner"] == "alice@lab" and held["service_job"] == 12
    assert abs(held["expires"] - (now + 90)) <= 1
    assert parse_check("n2.lab", output, now) == {
        "checked": now,
        "state": "free",
        "expired_job": "old-run",
    }
    assert parse_check("n3.lab", output, now) == {"checked": now, "state": "free"}
    assert parse_check("n4.lab", output, now)["state"] == "unreachable"
    assert parse_check("n5.lab", output, now)["state"] == "error"
    by_hand = parse_check("n6.lab", output, now)
    assert (by_hand["owner"], "service_job" in by_hand) == ("ops@desk", False)
    assert parse_check("n9.lab", output, now) == {"checked": now, "state": "unknown"}


def test_isolation_read_from_the_check_lines(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The line `marteau nodes check` prints under its table for each node."""
    from marteau.orchestration.nodes_command import isolation_line

    yes = isolation_line({"isolated": True, "not_isolated": ""})
    no = isolation_line({"isolated": False, "not_isolated": "no passwordless sudo (a [b])"})
    output = f"n1.lab   free\nn2.lab   free\nn1.lab: {yes}\nn2.lab: {no}\n"
    assert parse_check("n1.lab", output, 1.0)["isolated"] is True
    record = parse_check("n2.lab", output, 1.0)
    assert record["isolated"] is False
    assert record["not_isolated"] == "no passwordless sudo (a [b])"
    assert "isolated" not in parse_check("n3.lab", output, 1.0)
