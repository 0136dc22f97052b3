"""?wait=N holds a web thread; at most BERTH_MAX_WAITING requests may (services/waiting.py), the next answers 202 at once."""

import json
import threading

import pytest

from projects.services.waiting import wait_slot, waiting_now
from tests.conftest import bearer


@pytest.fixture
def queued_only(settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}


def test_slots_are_granted_up_to_the_bound_and_given_back(settings):
    settings.BERTH_MAX_WAITING = 2
    with wait_slot() as first, wait_slot() as second, wait_slot() as third:
        assert (first, second, third) == (True, True, False)
        assert waiting_now() == 2
    assert waiting_now() == 0


def test_a_slot_is_given_back_when_the_wait_raises(settings):
    settings.BERTH_MAX_WAITING = 1
    with pytest.raises(RuntimeError):
        with wait_slot():
            raise RuntimeError
    with wait_slot() as again:
        assert again


def test_over_the_bound_a_wait_request_answers_202_at_once(client, user, settings, queued_only):
    settings.BERTH_MAX_WAITING = 1
    held, release = threading.Event(), threading.Event()

    def occupy() -> None:
        with wait_slot():
            held.set()
            release.wait(10)

    thread = threading.Thread(target=occupy)
    thread.start()
    try:
        held.wait(5)
        # The operation never runs (dummy backend): without the bound this would wait 120 s.
        response = client.post("/v1/projects?wait=120", data=json.dumps({}), content_type="application/json", **bearer(user))
        assert response.status_code == 202 and response.json()["status"] == "provisioning"
    finally:
        release.set()
        thread.join()


def test_with_zero_allowed_nobody_waits(client, user, settings, queued_only):
    settings.BERTH_MAX_WAITING = 0
    response = client.post("/v1/projects?wait=120", data=json.dumps({}), content_type="application/json", **bearer(user))
    assert response.status_code == 202
