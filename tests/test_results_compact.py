"""The compact result file: chunks, a killed writer, combining workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from marteau.engine.recorder import Recorder
from marteau.errors import MarteauError
from marteau.results.compact import (
    MAGIC,
    CompactWriter,
    combine,
    iter_chunks,
    read_compact,
    read_compact_raw,
)
from marteau.results.records import RESPONSE_STRUCT
from tests.support.records import response_kwargs, result_kwargs


def write_cycles(path: Path, cycles: int, per_cycle: int = 3) -> None:
    rec = Recorder(path, {"cycles": "[1, 2, 3]"}, suite="S", name="t")
    rec.recording = True
    for cycle in range(cycles):
        for i in range(per_cycle):
            rec.response(**response_kwargs(cycle=cycle, step=i + 1, url=f"/c{cycle}/{i}"))
        rec.flush()
    rec.close()


def test_layout_starts_with_magic_and_ends_with_marker(tmp_path: Path) -> None:
    path = tmp_path / "a.mrt"
    write_cycles(path, 1)
    data = path.read_bytes()
    assert data.startswith(MAGIC)
    assert data.endswith(b"E\x00\x00\x00\x00")
    kinds = [kind for kind, _ in iter_chunks(path)]
    assert kinds[0] == b"C" and b"S" in kinds and b"R" in kinds
    assert kinds.index(b"S") < kinds.index(b"R")


def test_config_later_keys_win(tmp_path: Path) -> None:
    path = tmp_path / "a.mrt"
    with CompactWriter(path, {"a": "1", "b": "2"}) as w:
        w.config({"b": "3"})
    assert read_compact_raw(path).config == {"a": "1", "b": "3"}


def test_killed_writer_keeps_finished_cycles(tmp_path: Path) -> None:
    path = tmp_path / "a.mrt"
    write_cycles(path, 3)
    data = path.read_bytes()
    # Cut inside the last response chunk (and drop the end marker).
    last_r = data.rfind(b"R" + (3 * RESPONSE_STRUCT.size).to_bytes(4, "little"))
    assert last_r > 0
    path.write_bytes(data[: last_r + 5 + 10])
    rs = read_compact(path)
    assert sorted(set(rs.responses["cycle"])) == [0, 1]
    assert len(rs.responses) == 6
    assert any("truncated last chunk" in w for w in rs.warnings)
    assert any("no end marker" in w for w in rs.warnings)
    # Cut inside a chunk header too.
    path.write_bytes(data[: last_r + 2])
    rs = read_compact(path)
    assert len(rs.responses) == 6
    assert any("truncated chunk header" in w for w in rs.warnings)


def test_skipped_kinds_still_detect_truncation(tmp_path: Path) -> None:
    path = tmp_path / "a.mrt"
    write_cycles(path, 2)
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    warnings: list[str] = []
    kinds = [k for k, p in iter_chunks(path, warnings, skip=frozenset({b"R"})) if not p]
    assert b"R" in kinds
    assert any("truncated" in w for w in warnings)


def test_unknown_kind_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "a.mrt"
    with CompactWriter(path, {"a": "1"}) as w:
        w.chunk(b"Z", b"future")
    raw = read_compact_raw(path)
    assert raw.config == {"a": "1"}
    assert any("unknown chunk kind" in w for w in raw.warnings)


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"MARTEAU-RESULTS 9\n"])
def test_not_compact_raises_naming_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mrt"
    path.write_bytes(content)
    with pytest.raises(MarteauError, match="bad.mrt"):
        read_compact(path)


def test_corrupt_json_chunk_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.mrt"
    with CompactWriter(path) as w:
        w.chunk(b"S", b"[not json")
    with pytest.raises(MarteauError, match="bad.mrt.*corrupt"):
        read_compact(path)


def test_combine_remaps_strings_and_details(tmp_path: Path) -> None:
    paths = []
    for worker in range(2):
        path = tmp_path / f"w{worker}.mrt"
        rec = Recorder(path, {"id": "t", f"w{worker}": "yes"}, suite="S", name="t", worker=worker)
        rec.recording = True
        # Worker-specific strings first, so the same string gets different ids.
        rec.response(**response_kwargs(thread=worker, url=f"/only-{worker}", description=""))
        rec.response(**response_kwargs(thread=worker, url="/shared", description="Shared"))
        rec.response(
            **response_kwargs(
                thread=worker,
                url="/fail",
                result="Failure",
                code=500,
                headers=[("x-worker", str(worker))],
                body=b"worker %d" % worker,
            )
        )
        rec.test_result(**result_kwargs(thread=worker, result="Error", traceback=f"tb {worker}"))
        rec.sample(50.0 + worker, 1)
        rec.close()
        paths.append(path)
    out = tmp_path / "node.mrt"
    warnings = combine(paths, out)
    assert warnings == []
    rs = read_compact(out)
    assert rs.warnings == []
    assert rs.config["w0"] == "yes" and rs.config["w1"] == "yes"
    starts = [read_compact_raw(p).config["marteau:time"] for p in paths]
    assert rs.config["marteau:time"] == min(starts)  # the node's bench start
    r = rs.responses
    assert len(r) == 6
    assert len(rs.strings) == len(set(rs.strings))
    urls = [(int(t), rs.string(u)) for t, u in zip(r["thread"], r["url"], strict=True)]
    assert urls == [
        (0, "/only-0"),
        (0, "/shared"),
        (0, "/fail"),
        (1, "/only-1"),
        (1, "/shared"),
        (1, "/fail"),
    ]
    for row in r[r["result"] == 1]:
        detail = rs.detail(int(row["detail"]))
        assert detail is not None
        assert detail["body"] == f"worker {row['thread']}"
        assert detail["headers"] == [["x-worker", str(row["thread"])]]
    for row in rs.tests:
        detail = rs.detail(int(row["detail"]))
        assert detail is not None and detail["traceback"] == f"tb {row['thread']}"
    assert sorted(rs.samples["worker"]) == [0, 1]
    rs.responses["thread"] += 1000  # writable (a merger renumbers threads in place)
    assert list(rs.responses["thread"][:1]) == [1000]


def test_combine_tolerates_a_killed_worker(tmp_path: Path) -> None:
    good, bad = tmp_path / "w0.mrt", tmp_path / "w1.mrt"
    write_cycles(good, 2)
    write_cycles(bad, 2)
    bad.write_bytes(bad.read_bytes()[:-8])  # the end marker and the last cycle's tail
    out = tmp_path / "node.mrt"
    warnings = combine([good, bad], out)
    assert any("w1.mrt" in w for w in warnings)
    rs = read_compact(out)
    assert len(rs.responses) == 6 + 3
    assert sorted(rs.string(u) for u in rs.responses["url"][6:]) == ["/c0/0", "/c0/1", "/c0/2"]
    assert rs.warnings == []


def test_details_json_shape(tmp_path: Path) -> None:
    path = tmp_path / "a.mrt"
    rec = Recorder(path, {}, suite="S", name="t")
    rec.recording = True
    rec.response(**response_kwargs(result="Error", code=-1, traceback="tb"))
    rec.close()
    chunks = dict(iter_chunks(path))
    assert json.loads(chunks[b"D"]) == [{"headers": [], "body": "", "traceback": "tb"}]
    assert os.path.getsize(path) > len(MAGIC)
