"""A bound on the requests that hold a web thread in `?wait=N` at once.

Each waiting request occupies one of the web process's threads for up to
120 s; without a bound, a client (or a few) could park every thread and the
dashboard would stop answering. At most BERTH_MAX_WAITING requests per web
process wait at once (threads are per process, so the bound is too); the next
one does not wait: it answers at once, 202, exactly as without `?wait`.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

_lock = threading.Lock()
_waiting = 0


@contextmanager
def wait_slot() -> Iterator[bool]:
    """Yields True when this request may wait (and holds a slot until it is done), False when the bound is reached."""
    global _waiting
    with _lock:
        granted = _waiting < settings.BERTH_MAX_WAITING
        if granted:
            _waiting += 1
    try:
        yield granted
    finally:
        if granted:
            with _lock:
                _waiting -= 1


def waiting_now() -> int:
    return _waiting
