"""After a clone, the archive's link rules apply: a git repository holding
`leak.txt -> <a file outside>` is refused (`marteau run <git url>`, the service's
worker and its new-job preview), and the test archive packs regular files inside
the project only."""

from __future__ import annotations

import ensurepip
import io
import os
import shutil
import subprocess
import sys
import tarfile
from contextlib import closing
from pathlib import Path

import pytest

from marteau.errors import MarteauError
from marteau.orchestration.prepare import archive_test
from marteau.orchestration.project import load_config
from tests.support.projects import CONF, TEST

MARTEAU = str(Path(sys.executable).with_name("marteau"))
SECRET = "the service's admin password"


def project_files(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "loadtest.py").write_text(TEST)
    (root / "Tiny.conf").write_text(CONF.format(url="http://127.0.0.1:9"))
    (root / ".marteau.yml").write_text("script: loadtest.py\ntest: Tiny.test_get\n")
    return root


def commit_all(repo: Path) -> None:
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "with a link out"], check=True)


@pytest.fixture
def leaky_repo(tmp_path: Path) -> Path:
    """A git repository whose `leak.txt` links to a file outside it."""
    secret = tmp_path / "admin-password"
    secret.write_text(SECRET)
    repo = project_files(tmp_path / "repo")
    os.symlink(secret, repo / "leak.txt")
    commit_all(repo)
    return repo


def test_marteau_run_refuses_a_clone_with_a_link_out(leaky_repo: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [MARTEAU, "run", f"file://{leaky_repo}", "--plain", "--workdir", str(tmp_path / "co")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'leak.txt' is a link to " in result.stderr
    assert "outside the project's folder" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "marteau-runs").exists()  # nothing packed, nothing ran


def test_the_archive_packs_regular_files_inside_the_project_only(tmp_path: Path) -> None:
    root = project_files(tmp_path / "project")
    os.symlink("Tiny.conf", root / "Other.conf")  # inside: packed as the file it names
    (root / "data").mkdir()
    (root / "data" / "users.csv").write_text("alice\n")
    os.symlink("data", root / "data-link")  # a directory link: not followed
    os.mkfifo(root / "pipe")  # not a regular file: skipped
    project = load_config(root / ".marteau.yml")
    target = archive_test(project, tmp_path / "test.tar.gz")
    with tarfile.open(target) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == [
            ".marteau.yml",
            "Other.conf",
            "Tiny.conf",
            "data/users.csv",
            "loadtest.py",
        ]
        assert all(m.isfile() for m in members.values())
        assert tar.extractfile("Other.conf").read() == (root / "Tiny.conf").read_bytes()
    outside = tmp_path / "admin-password"
    outside.write_text(SECRET)
    os.symlink(outside, root / "data" / "leak.txt")
    with pytest.raises(MarteauError, match=r"'data/leak.txt' is a link to .*outside the project"):
        archive_test(project, tmp_path / "again.tar.gz")
    assert not (tmp_path / "again.tar.gz").exists()


def test_the_service_refuses_a_clone_with_a_link_out(leaky_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from tests.service_helpers import ADMIN, ADMIN_PASSWORD, Service, wait_job

    service = Service(tmp_path / "data", tmp_path / "locks", workers=1)
    try:
        with closing(service.client(ADMIN, ADMIN_PASSWORD)) as admin:
            url = f"file://{leaky_repo}"
            preview = admin.post("/api/jobs/preview", json={"git_url": url})
            assert preview.status_code == 400, preview.text
            assert "'leak.txt' is a link to " in preview.json()["detail"]
            created = admin.post("/api/jobs", json={"git_url": url})
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]
            job = wait_job(admin, job_id, timeout=120)
            console = admin.get(f"/api/jobs/{job_id}/console").text
    finally:
        service.stop()
    assert job["state"] == "failed" and job["exit_code"] == 2, job
    assert "'leak.txt' is a link to " in job["exit_reason"]
    assert "outside the project's folder" in console
    assert SECRET not in console


def sdist(directory: Path, marker: Path) -> Path:
    """`evilpkg-1.0.tar.gz`, whose setup.py creates `marker` when anything builds it."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "evilpkg-1.0/setup.py": (
            f"import pathlib\npathlib.Path({str(marker)!r}).write_text('built')\n"
            "from setuptools import setup\nsetup(name='evilpkg', version='1.0')\n"
        ),
        "evilpkg-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n",
    }
    target = directory / "evilpkg-1.0.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return target


def test_the_controller_only_downloads_wheels_of_deps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marteau.orchestration.prepare import download_wheels

    marker = tmp_path / "setup-py-ran"
    index = tmp_path / "index"
    sdist(index, marker)
    for wheel in (Path(ensurepip.__file__).parent / "_bundled").glob("*.whl"):
        shutil.copy(wheel, index)  # pip (always downloaded) and setuptools (for the build)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MarteauError, match=r"distribution found for evilpkg==1\.0.*wheels only"):
        download_wheels(["evilpkg==1.0"])
    assert not marker.exists()
    assert not list((tmp_path / "cache").rglob("*.tar.gz"))
    # The same pip without --only-binary builds the sdist: the marker proves it.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet"]
        + ["--dest", str(tmp_path / "built"), "evilpkg==1.0"],
        capture_output=True,
        timeout=300,
    )
    assert marker.exists()
