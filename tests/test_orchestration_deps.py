"""A test's `deps` on the controller: binary wheels downloaded (never built, never
an option of pip), carried in the test archive, outside the shared wheelhouse.

Downloads `six` from PyPI (the pip cache makes it quick after the first time).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.orchestration.prepare import download_wheels, job_vars
from marteau.orchestration.project import locate
from tests.support.projects import TEST


def test_a_requirement_is_never_a_pip_option(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    secret = tmp_path / "secret.txt"
    secret.write_text("the-admin-password\n")
    with pytest.raises(MarteauError) as refused:
        download_wheels(["-r", str(secret)], with_pip=False)
    assert "cannot download the node's wheels" in str(refused.value)
    assert "the-admin-password" not in str(refused.value)


def test_deps_travel_in_the_archive_and_leave_the_wheelhouse_alone(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "loadtest.py").write_text(TEST)
    config = project / ".marteau.yml"
    config.write_text("script: loadtest.py\ntest: Tiny.test_get\n")
    plain = job_vars(locate(str(project)), tmp_path / "plain", "job-a")
    config.write_text(config.read_text() + "deps: [six]\n")
    with_deps = job_vars(locate(str(project)), tmp_path / "deps", "job-b")
    assert with_deps["marteau_deps"] == ["six"]
    assert with_deps["marteau_wheelhouse_sha"] == plain["marteau_wheelhouse_sha"]
    with tarfile.open(with_deps["marteau_archive"]) as archive:
        names = archive.getnames()
    assert "job-b/test/loadtest.py" in names
    wheels = [n for n in names if n.startswith("job-b/wheels/")]
    assert len(wheels) == 1 and wheels[0].startswith("job-b/wheels/six-"), names
    assert wheels[0].endswith(".whl")
    with tarfile.open(plain["marteau_archive"]) as archive:
        assert not [n for n in archive.getnames() if "/wheels/" in n]
    with tarfile.open(with_deps["marteau_wheelhouse"]) as wheelhouse:
        assert not [n for n in wheelhouse.getnames() if n.startswith("six-")]
