"""Wake-ups: a worker wakes when an operation is queued, a `?wait` when its operation settles.

The one seam over the two ways of telling another process "look now":

- PostgreSQL (Berth's database is PostgreSQL): NOTIFY on the channel, sent on
  Django's connection inside the caller's transaction, so the database
  delivers it only when that transaction commits (never for a rollback); a
  listener holds a connection of its own with LISTEN and waits on its socket.
  Web and workers may run on different hosts (compose): the database is the
  one thing they share.
- SQLite (the embedded default, one host): a FIFO per listener in
  `DATA_DIR/wake/` (`<channel>-<pid>-<random>`), opened read-write by its
  listener so it never reads EOF; a poke after commit writes one byte into
  every FIFO of the channel, and a FIFO nobody holds open any more (its
  process died) refuses the open with ENXIO and is removed.

A wake-up is a hint, never the only way work is found: the woken side
re-reads the database, and every listener also wakes on its own after a slow
poll (BERTH_POLL_SECONDS), so a lost wake-up costs at most that long.
"""

import errno
import logging
import os
import secrets
import select
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import psycopg
from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

# An operation was queued: the workers look for a task.
QUEUED = "berth_queued"
# An operation settled (succeeded or failed): the `?wait`s look at theirs.
SETTLED = "berth_settled"


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def wake_on_commit(channel: str) -> None:
    """Wake the listeners of `channel` when the current transaction commits (at once outside one)."""
    if _postgres():
        # Transactional by PostgreSQL's rules: held until COMMIT, dropped on ROLLBACK.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [channel])
    else:
        transaction.on_commit(lambda: _fifos_poke(channel))


class Listener(Protocol):
    def wait(self, timeout_s: float) -> bool:
        """Block until a wake-up arrives (True) or `timeout_s` passes (False); drains what arrived."""
        ...

    def close(self) -> None: ...


class Listening:
    """`with listen(channel) as listener:` — listening starts before the caller's first look, so nothing is missed."""

    def __init__(self, channel: str) -> None:
        self.listener: Listener = _PostgresListener(channel) if _postgres() else _FifoListener(channel)

    def __enter__(self) -> Listener:
        return self.listener

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.listener.close()


def listen(channel: str) -> Listening:
    return Listening(channel)


# --- PostgreSQL: LISTEN/NOTIFY ----------------------------------------------------


class _PostgresListener:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.conn: psycopg.Connection[object] | None = None
        self._connect()

    def _connect(self) -> None:
        # A connection of its own, outside Django's: it stays idle in LISTEN
        # between waits, and Django closes its own ones as it likes.
        params = connection.get_connection_params()
        try:
            conn: psycopg.Connection[object] = psycopg.connect(**params, autocommit=True)
            conn.execute(f"LISTEN {self.channel}")  # a constant of this module, never input
        except psycopg.Error as exc:
            logger.warning("cannot listen for %s wake-ups (the slow poll covers it): %s", self.channel, exc)
            return
        self.conn = conn

    def wait(self, timeout_s: float) -> bool:
        if self.conn is None or self.conn.closed:
            # Lost: sleep the poll out, listen again, and say "look" — what was
            # sent while nobody listened is found by that look.
            time.sleep(timeout_s)
            self._connect()
            return True
        try:
            woke = any(True for _ in self.conn.notifies(timeout=timeout_s, stop_after=1))
            if woke:
                # Several commits in a row are one reason to look.
                for _ in self.conn.notifies(timeout=0):
                    pass
            return woke
        except psycopg.Error as exc:
            logger.warning("%s wake-ups lost (the slow poll covers it): %s", self.channel, exc)
            self.close()
            return True

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --- SQLite: a FIFO per listener in the data directory -----------------------------


def _fifo_dir() -> Path:
    path = Path(settings.DATA_DIR) / "wake"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class _FifoListener:
    def __init__(self, channel: str) -> None:
        self.path = _fifo_dir() / f"{channel}-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}"
        os.mkfifo(self.path, 0o600)
        # Read-write: the listener is its own writer, so the FIFO never reads
        # EOF, and a poke's open finds a reader for as long as this process lives.
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)

    def wait(self, timeout_s: float) -> bool:
        if self.fd is None:
            time.sleep(timeout_s)
            return True
        readable, _, _ = select.select([self.fd], [], [], timeout_s)
        if not readable:
            return False
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass  # drained
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.path.unlink(missing_ok=True)


def _fifos_poke(channel: str) -> None:
    try:
        paths = list(_fifo_dir().glob(f"{channel}-*"))
    except OSError as exc:
        logger.warning("no %s wake-up sent (the slow poll covers it): %s", channel, exc)
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                # No reader: its listener died without closing. Not ours to keep.
                path.unlink(missing_ok=True)
            elif exc.errno != errno.ENOENT:
                logger.warning("no %s wake-up sent to %s: %s", channel, path.name, exc)
            continue
        try:
            os.write(fd, b"\0")
        except BlockingIOError:
            pass  # full: its listener has wake-ups enough waiting
        finally:
            os.close(fd)
