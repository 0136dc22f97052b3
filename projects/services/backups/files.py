"""A backup's file on disk: where it lives, how it is written (fsynced, then renamed) and checked (size, sha256).

A dump streams to `.<id>.dump.partial`, is fsynced, and is renamed to
`<id>.dump` only when it is whole; a failure removes the partial file, so a
backup that failed has no file.
"""

import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from django.conf import settings

from projects.models import Backup

if TYPE_CHECKING:
    from hashlib import _Hash

MAGIC = b"PGDMP"  # the first bytes of every custom-format archive
CHUNK = 1024 * 1024


class BackupFailed(Exception):
    """A dump, copy or restore that did not work; str() says why, for a person."""


class FileAltered(BackupFailed):
    """The backup's file is not the one that was dumped (missing, resized or a different sha256)."""


def backup_dir(project_id: str) -> Path:
    return Path(settings.BERTH_BACKUP_DIR) / project_id


def backup_path(backup: Backup) -> Path:
    return backup_dir(backup.project.public_id) / backup.filename


def partial_path(backup: Backup) -> Path:
    return backup_dir(backup.project.public_id) / f".{backup.filename}.partial"


def partial_paths() -> list[Path]:
    """Every partial file under BERTH_BACKUP_DIR, of any project."""
    root = Path(settings.BERTH_BACKUP_DIR)
    return list(root.glob("*/.*.dump.partial")) if root.is_dir() else []


def partial_write(path: Path, chunks: Iterable[bytes]) -> tuple[int, str, bytes]:
    """Write chunks to `path` and fsync it; returns (size, sha256, first bytes). A failure removes the file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            digest.update(chunk)
            if len(head) < len(MAGIC):
                head += chunk[: len(MAGIC) - len(head)]
            size += len(chunk)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackupFailed(
                f"the disk holding {path.parent} is full ({exc.strerror}) after {size} bytes of the dump; "
                "the partial file was removed: free space or point BERTH_BACKUP_DIR elsewhere"
            ) from None
        raise BackupFailed(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return size, digest.hexdigest(), head


def partial_publish(partial: Path, final: Path) -> None:
    """Rename the finished file into place and make the rename itself durable."""
    os.replace(partial, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_chunks(f: IO[bytes], digest: "_Hash") -> Iterator[bytes]:
    """The file's content in chunks, each added to `digest` as it is read."""
    while chunk := f.read(CHUNK):
        digest.update(chunk)
        yield chunk


def size_problem(size: int, backup: Backup) -> str:
    """Why a file of `size` bytes is not the backup's, or ""."""
    if size != backup.size:
        return f"its file is {size} bytes but {backup.size} were written at dump time: it was truncated or altered"
    return ""


def digest_problem(sha256: str, backup: Backup) -> str:
    """Why a file with this sha256 is not the backup's, or ""."""
    if sha256 != backup.sha256:
        return (
            f"its file's sha256 is {sha256} but {backup.sha256} was recorded at dump time: "
            "the file was altered or damaged after the dump"
        )
    return ""


def backup_file_problem(backup: Backup) -> str:
    """Why the backup's file is not the one that was dumped, or "" when it is (size and sha256 match)."""
    path = backup_path(backup)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"its file {path} is missing"
    if problem := size_problem(size, backup):
        return problem
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in file_chunks(f, digest):
            pass
    return digest_problem(digest.hexdigest(), backup)
