"""Browser tests: Debian's Chromium, driven by Playwright, against pytest-django's live server.

The live server runs in this process with the engine settings (offline
images, the run label), and real `db_worker` processes run the operations on
the same test database, so a project really comes up while the page polls.
Without an engine, the images or Chromium these tests skip with the reason;
under CI=true they fail instead (tests/engine.py, `unavailable`).
"""

import os
import shutil
from pathlib import Path

import pytest

from projects.runtime import use_runtime
from tests.engine import Workers, apply_engine_settings, docker_client, engine_cleanup, unavailable

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Playwright cannot download its own browser here: it drives the system's.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="session")
def browser_engine():
    client = docker_client()  # skips (or fails under CI) without an engine and the offline images
    yield client
    engine_cleanup(client)


@pytest.fixture(scope="module")
def chromium():
    """One Chromium per module, started with Playwright's sync API.

    Scoped to the module, not the session: while Playwright runs, this thread
    has an event loop, and Django refuses ORM calls from such a thread unless
    DJANGO_ALLOW_ASYNC_UNSAFE is set. The loop (and the permission) end with
    the module, so tests collected after these are not affected.
    """
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a dev dependency
        unavailable(f"playwright is not installed ({exc})")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def engine(browser_engine, settings):
    """Engine settings for the live server, a fresh runtime, and nothing of this run left afterwards."""
    apply_engine_settings(settings)
    use_runtime(None)
    yield browser_engine
    use_runtime(None)
    engine_cleanup(browser_engine)


@pytest.fixture
def workers(engine, transactional_db, tmp_path):
    pool = Workers(2, tmp_path)  # two cores on this machine; enough for one project at a time
    pool.start()
    yield pool
    pool.stop()


@pytest.fixture
def browser_page(chromium, live_server, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    # The copy buttons write to the clipboard; the test reads it back.
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    # The last state of the page, kept for a failing CI run.
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
    finally:
        context.close()


# The answers htmx swaps in on purpose (base.html's responseHandling): a refusal
# shown in place is the page working, not failing.
REFUSALS = frozenset({400, 403, 409, 422, 503})


class ConsoleWatch:
    """Every console error, uncaught exception and failed request of one page, with the step it happened in.

    Chromium writes "Failed to load resource" to the console for every 4xx
    answer, including the refusals the dashboard sends to HTMX on purpose (a
    wrong name typed to confirm a delete is a 422 shown in the panel): those
    are left out, and only those.
    """

    def __init__(self, page) -> None:
        self.step = "loading"
        self.errors: list[str] = []
        self._console: list[tuple[str, str, str]] = []  # (step, text, url)
        self._refused: set[str] = set()
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"[{self.step}] uncaught: {error}"))
        page.on("response", self._on_response)

    def _on_console(self, message) -> None:
        if message.type == "error":
            self._console.append((self.step, message.text, (message.location or {}).get("url", "")))

    def _on_response(self, response) -> None:
        if response.status < 400:
            return
        if response.status in REFUSALS and response.request.headers.get("hx-request") == "true":
            self._refused.add(response.url)
        else:
            self.errors.append(f"[{self.step}] {response.status} {response.request.method} {response.url}")

    def problems(self) -> list[str]:
        console = [
            f"[{step}] console: {text}"
            for step, text, url in self._console
            if not (text.startswith("Failed to load resource") and url in self._refused)
        ]
        return self.errors + console

    def assert_clean(self) -> None:
        assert self.problems() == [], "\n".join(self.problems())
