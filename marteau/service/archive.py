"""Safe extraction of an uploaded project archive (.tar.gz, .tgz, .tar, .zip).

Refused: absolute names, `..` components, links whose target leaves the folder,
device files and FIFOs, and archives that expand past a size or member limit.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from marteau.errors import MarteauError
from marteau.orchestration.sources import inside

MAX_MEMBERS = 20000
SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def _check_name(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise MarteauError(f"{archive}: {name!r}: absolute path")
    if ".." in path.parts:
        raise MarteauError(f"{archive}: {name!r}: path escapes the archive's folder")
    return path


def extract(data: bytes, filename: str, dest: Path, max_bytes: int) -> Path:
    """Extract the archive into `dest` (created); return the project root inside it.

    The root is `dest`, or its only top-level folder when everything is in one folder.
    """
    lower = filename.lower()
    if not lower.endswith(SUFFIXES):
        raise MarteauError(f"{filename}: expected a {', '.join(SUFFIXES)} archive")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if lower.endswith(".zip"):
            _extract_zip(data, filename, dest, max_bytes)
        else:
            _extract_tar(data, filename, dest, max_bytes)
    except MarteauError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise MarteauError(f"{filename}: not a readable archive: {exc}") from None
    entries = [p for p in dest.iterdir() if p.name not in ("__MACOSX",)]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def _extract_tar(data: bytes, filename: str, dest: Path, max_bytes: int) -> None:
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = tar.getmembers()
        if len(members) > MAX_MEMBERS:
            raise MarteauError(f"{filename}: more than {MAX_MEMBERS} members")
        for member in members:
            path = _check_name(member.name, filename)
            if member.isdev() or member.isfifo():
                raise MarteauError(f"{filename}: {member.name!r}: device or FIFO")
            if member.issym() or member.islnk():
                link = PurePosixPath(member.linkname)
                base = PurePosixPath() if member.islnk() else path.parent
                if link.is_absolute() or not inside(dest, dest / base / link):
                    raise MarteauError(
                        f"{filename}: {member.name!r}: link to {member.linkname!r} leaves the archive's folder"
                    )
            total += max(member.size, 0)
            if total > max_bytes:
                raise MarteauError(f"{filename}: expands past {max_bytes // 2**20} MB")
        for member in members:
            target = dest / PurePosixPath(member.name.replace("\\", "/"))
            if not inside(dest, target.parent):
                raise MarteauError(
                    f"{filename}: {member.name!r}: path escapes the archive's folder"
                )
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with open(target, "wb") as out:
                    shutil.copyfileobj(source, out)  # type: ignore[arg-type]
                os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(member.linkname, target)
                if not inside(dest, target):
                    target.unlink()
                    raise MarteauError(
                        f"{filename}: {member.name!r}: link to {member.linkname!r} leaves the archive's folder"
                    )
            elif member.islnk():
                source = dest / PurePosixPath(member.linkname)
                if source.is_file() and inside(dest, source):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)


def _extract_zip(data: bytes, filename: str, dest: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise MarteauError(f"{filename}: more than {MAX_MEMBERS} members")
        total = 0
        for info in infos:
            _check_name(info.filename, filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise MarteauError(
                    f"{filename}: {info.filename!r}: symbolic links are not accepted"
                )
            total += info.file_size
            if total > max_bytes:
                raise MarteauError(f"{filename}: expands past {max_bytes // 2**20} MB")
        for info in infos:
            target = dest / PurePosixPath(info.filename.replace("\\", "/"))
            if not inside(dest, target):
                raise MarteauError(
                    f"{filename}: {info.filename!r}: path escapes the archive's folder"
                )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
