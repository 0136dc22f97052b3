"""projects/wakeup.py: a queued operation wakes an idle worker, a settled one wakes its `?wait`; the slow poll stays.

Run on SQLite (FIFOs in the data directory) and, with DATABASE_URL set, on
PostgreSQL (LISTEN/NOTIFY). The slow poll is set to an hour wherever a test
pins a wake-up, so only the wake-up can end the wait in time; the bounds on
the waits here are liveness limits, never speed measurements.
"""

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from projects import wakeup
from projects.management.commands.worker import WakingWorker
from projects.models import Operation, Project
from projects.services.lifecycle import requests as lifecycle
from projects.services.operations.queue import operation_execute, operation_wait

HOUR = 3600.0
# How long a test waits for something that a wake-up makes happen at once.
LIVENESS_S = 20.0
DB_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


class ObservedWorker(WakingWorker):
    """A WakingWorker that says when it goes idle, and stops when asked."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            queue_names=["default"], batch=False, backend_name="default", startup_delay=False, max_tasks=None,
            worker_id="test-worker", excluded_queue_names=[], **kwargs,
        )  # fmt: skip
        self.idling = threading.Event()

    def idle(self, listener: wakeup.Listener) -> None:
        self.idling.set()
        super().idle(listener)
        self.idling.clear()


@pytest.fixture
def worker_thread(transactional_db: None, settings: Any) -> Iterator[Any]:
    settings.TASKS = DB_BACKEND
    started: list[tuple[ObservedWorker, threading.Thread]] = []

    def start(*, interval: float) -> ObservedWorker:
        worker = ObservedWorker(interval=interval)

        def run() -> None:
            try:
                worker.run()
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.append((worker, thread))
        assert worker.idling.wait(LIVENESS_S), "the worker never went idle"
        return worker

    yield start
    for worker, _ in started:
        worker.running = False
    with transaction.atomic():
        wakeup.wake_on_commit(wakeup.QUEUED)  # end their waits now, not after the poll
    for _, thread in started:
        thread.join(LIVENESS_S)


def settled_within(operation: Operation, timeout_s: float) -> Operation:
    return operation_wait(operation, timeout_s=timeout_s)


def test_a_queued_operation_wakes_an_idle_worker(user, worker_thread, settings) -> None:
    settings.BERTH_POLL_SECONDS = 0.05  # this test's own wait polls; only the worker must be woken
    worker_thread(interval=HOUR)

    queued = lifecycle.project_create(owner=user, name="woken")

    # The worker was asleep for an hour: only the wake-up can have started this.
    operation = settled_within(queued, LIVENESS_S)
    assert operation.state == Operation.State.SUCCEEDED
    assert Project.objects.get(pk=queued.project_id).status == Project.Status.RUNNING


def test_the_slow_poll_picks_up_work_when_no_wake_up_arrives(user, worker_thread, settings, monkeypatch) -> None:
    settings.BERTH_POLL_SECONDS = 0.05
    monkeypatch.setattr(wakeup, "wake_on_commit", lambda channel: None)
    worker_thread(interval=0.1)

    queued = lifecycle.project_create(owner=user, name="polled")

    assert settled_within(queued, LIVENESS_S).state == Operation.State.SUCCEEDED


def test_a_rolled_back_enqueue_wakes_nobody(transactional_db: None) -> None:
    with wakeup.listen(wakeup.QUEUED) as listener:
        with pytest.raises(RuntimeError), transaction.atomic():
            wakeup.wake_on_commit(wakeup.QUEUED)
            raise RuntimeError
        assert listener.wait(0.2) is False
        with transaction.atomic():
            wakeup.wake_on_commit(wakeup.QUEUED)
        assert listener.wait(LIVENESS_S) is True


def test_wait_returns_when_its_operation_settles(user, transactional_db: None, settings, monkeypatch) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    settings.BERTH_POLL_SECONDS = HOUR
    operation = lifecycle.project_create(owner=user, name="waited")
    answer: list[Operation] = []
    waiting = threading.Event()
    listen = wakeup.listen

    def listen_and_say_so(channel: str) -> wakeup.Listening:
        listening = listen(channel)
        plain_wait = listening.listener.wait

        def wait(timeout_s: float) -> bool:
            waiting.set()
            return plain_wait(timeout_s)

        listening.listener.wait = wait  # type: ignore[method-assign]
        return listening

    monkeypatch.setattr(wakeup, "listen", listen_and_say_so)

    def wait() -> None:
        try:
            answer.append(operation_wait(Operation.objects.get(pk=operation.pk), timeout_s=HOUR))
        finally:
            connection.close()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert waiting.wait(LIVENESS_S), "the waiter never waited"
    operation_execute(operation.pk, lambda project: {"status": Project.Status.RUNNING})

    # The waiter's poll is an hour: only the settled wake-up can end its wait.
    waiter.join(LIVENESS_S)
    assert not waiter.is_alive(), "?wait was not woken by its operation settling"
    assert answer[0].state == Operation.State.SUCCEEDED


def test_a_fifo_whose_listener_died_is_removed_by_the_next_poke(settings) -> None:
    listener = wakeup._FifoListener(wakeup.QUEUED)
    path = listener.path
    assert listener.fd is not None

    os.close(listener.fd)  # as if its process had died: nobody reads it any more
    listener.fd = None

    wakeup._fifos_poke(wakeup.QUEUED)

    assert not path.exists()
