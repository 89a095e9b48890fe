"""Safe extraction of an uploaded project archive (.tar.gz, .tgz, .tar, .zip).

Refused: absolute names, `..` components, links whose target leaves the folder,
device files and FIFOs, and archives that expand past a size, member or ratio limit,
checked as the members are read.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from marteau.errors import MarteauError
from marteau.orchestration.sources import inside

MAX_MEMBERS = 20000  # the default of the setting `max_archive_members`
# a source tree compresses a few times; zeros a thousand times: past RATIO_FLOOR bytes
# expanded, an archive that grew more than MAX_RATIO times its compressed size is refused
MAX_RATIO = 100
RATIO_FLOOR = 16 * 2**20
SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class TooLarge(MarteauError):
    """The archive expands past the size given to `extract`."""


def _too_large(archive: str, max_bytes: int) -> TooLarge:
    return TooLarge(f"{archive}: expands past {max_bytes / 2**20:.3g} MB")


def _check_name(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise MarteauError(f"{archive}: {name!r}: absolute path")
    if ".." in path.parts:
        raise MarteauError(f"{archive}: {name!r}: path escapes the archive's folder")
    return path


class _Counted(io.RawIOBase):
    """The decompressed stream of a tar archive, counted as it is read: past the
    expanded-size cap, or once it expands more than `MAX_RATIO` times the bytes it came
    from, reading stops with MarteauError (a bomb costs a few MiB of work, not GiBs)."""

    def __init__(
        self, stream: io.BufferedIOBase, source: io.BytesIO, cap: int, archive: str
    ) -> None:
        self.stream, self.source, self.cap, self.archive = stream, source, cap, archive
        self.expanded = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(len(buffer))
        self.expanded += len(data)
        if self.expanded > self.cap:
            raise _too_large(self.archive, self.cap)
        if self.expanded > RATIO_FLOOR and self.expanded > MAX_RATIO * max(self.source.tell(), 1):
            raise MarteauError(
                f"{self.archive}: expands more than {MAX_RATIO} times its size: refused"
            )
        buffer[: len(data)] = data
        return len(data)


def _decompressed(data: bytes) -> tuple[io.BufferedIOBase, io.BytesIO]:
    """(the tar stream, the compressed bytes it reads from) by the data's magic bytes."""
    source = io.BytesIO(data)
    if data.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=source, mode="rb"), source
    if data.startswith(b"BZh"):
        return bz2.BZ2File(source), source
    if data.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(source), source
    return source, source


def extract(
    data: bytes, filename: str, dest: Path, max_bytes: int, max_members: int = MAX_MEMBERS
) -> Path:
    """Extract the archive into `dest` (created); return the project root inside it.

    The root is `dest`, or its only top-level folder when everything is in one folder.
    Each member is checked as it is read (its name, kind, the count, the expanded
    size so far, the expansion ratio); the first excess stops the work and removes
    `dest`. Error messages name the archive and the member, never `dest`.
    """
    lower = filename.lower()
    if not lower.endswith(SUFFIXES):
        raise MarteauError(f"{filename}: expected a {', '.join(SUFFIXES)} archive")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if lower.endswith(".zip"):
            _extract_zip(data, filename, dest, max_bytes, max_members)
        else:
            _extract_tar(data, filename, dest, max_bytes, max_members)
    except MarteauError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, lzma.LZMAError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        why = getattr(exc, "strerror", None) or str(exc).replace(str(dest), "")
        raise MarteauError(f"{filename}: not a readable archive: {why}") from None
    entries = [p for p in dest.iterdir() if p.name not in ("__MACOSX",)]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def _link_leaves(filename: str, member: tarfile.TarInfo) -> MarteauError:
    return MarteauError(
        f"{filename}: {member.name!r}: link to {member.linkname!r} leaves the archive's folder"
    )


def _extract_tar(data: bytes, filename: str, dest: Path, max_bytes: int, max_members: int) -> None:
    stream, source = _decompressed(data)
    # the stream holds the members' data, a 512-byte header (or a few) each, padding
    counted = _Counted(stream, source, max_bytes + 4 * 512 * max_members, filename)
    total = count = 0
    with tarfile.open(fileobj=io.BufferedReader(counted), mode="r|") as tar:
        for member in tar:
            count += 1
            if count > max_members:
                raise MarteauError(f"{filename}: more than {max_members} members")
            path = _check_name(member.name, filename)
            total += max(member.size, 0)
            if total > max_bytes:
                raise _too_large(filename, max_bytes)
            _extract_member(tar, member, path, filename, dest)


def _extract_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, path: PurePosixPath, filename: str, dest: Path
) -> None:
    if member.isdev() or member.isfifo():
        raise MarteauError(f"{filename}: {member.name!r}: device or FIFO")
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        base = PurePosixPath() if member.islnk() else path.parent
        if link.is_absolute() or not inside(dest, dest / base / link):
            raise _link_leaves(filename, member)
    target = dest / path
    if not inside(dest, target.parent):
        raise MarteauError(f"{filename}: {member.name!r}: path escapes the archive's folder")
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
            raise _link_leaves(filename, member)
    elif member.islnk():
        linked = dest / PurePosixPath(member.linkname)
        if linked.is_file() and inside(dest, linked):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(linked, target)


def _extract_zip(data: bytes, filename: str, dest: Path, max_bytes: int, max_members: int) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise MarteauError(f"{filename}: more than {max_members} members")
        total = 0
        for info in infos:  # the sizes the directory declares (zipfile reads no more)
            _check_name(info.filename, filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise MarteauError(
                    f"{filename}: {info.filename!r}: symbolic links are not accepted"
                )
            total += info.file_size
            if total > max_bytes:
                raise _too_large(filename, max_bytes)
        if total > RATIO_FLOOR and total > MAX_RATIO * len(data):
            raise MarteauError(f"{filename}: expands more than {MAX_RATIO} times its size: refused")
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
