"""Berth's own files: the data directory and what it holds are readable by Berth's user alone.

Used by settings.py at start-up, before Django is configured, so nothing here
imports Django. The data directory holds the secret key, the SQLite database
(sessions, encrypted project secrets) and the sign-in counters: another local
user must not read any of it.
"""

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` 0700, or tighten it to 0700 when it exists and is ours (an older Berth made it 0755)."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists with mode 0600 (created so, never readable by others even for a moment)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o777 != FILE_MODE:
            path.chmod(FILE_MODE)
    return path


def secret_file_read_or_create(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(50)) -> str:
    """The secret kept in `path`, created once with O_EXCL and mode 0600.

    O_EXCL: two processes starting at once (gunicorn's and the workers') never
    both write a key; the loser reads the winner's. The file is written in one
    call, but a reader can still come between create and write: it waits briefly.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        for _ in range(50):
            if value := path.read_text().strip():
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: remove it and start Berth again to make a new key") from None
    value = make()
    try:
        os.write(fd, value.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return value
