"""What the dashboard reads from the engine: reachability, one stack's containers, logs.

Read-only, and never on a list: a page of projects renders from the database
alone. Reachability is one cached ping per process, so the banner on every
page costs at most one engine call every ENGINE_CHECK_S seconds.
"""

import time
from dataclasses import dataclass, field

from projects.runtime import ContainerState, Runtime, RuntimeFailure, RuntimeUnavailable, get_runtime
from projects.models import Project
from projects.runtime.base import container_name
from projects.stack.spec import project_volume

ENGINE_CHECK_S = 10.0
SERVICES = ("db", "api")

# (runtime it was asked of, monotonic time, error or None). Keyed by the runtime
# so a replaced runtime (tests, use_runtime) is never answered from another's cache.
_last_check: tuple[Runtime, float, str | None] | None = None


def engine_error(*, max_age_s: float = ENGINE_CHECK_S) -> str | None:
    """None when the engine answered a ping less than `max_age_s` ago, else why it did not."""
    global _last_check
    runtime = get_runtime()
    last = _last_check
    if last is not None and last[0] is runtime and time.monotonic() - last[1] < max_age_s:
        return last[2]
    try:
        runtime.ping()
        error = None
    except RuntimeFailure as exc:
        error = str(exc)
    _last_check = (runtime, time.monotonic(), error)  # one assignment: safe across threads
    return error


def _engine_down(runtime: Runtime, error: str) -> None:
    # A read that found the engine gone says so to the banner at once, rather
    # than after the cached ping expires.
    global _last_check
    _last_check = (runtime, time.monotonic(), error)


@dataclass(frozen=True)
class ContainerRow:
    service: str
    name: str
    state: ContainerState | None  # None: the engine has no such container


@dataclass(frozen=True)
class StackReport:
    containers: tuple[ContainerRow, ...] = ()
    network: bool = False
    volume: bool = False
    error: str = ""  # why the engine could not be read; empty when it was


@dataclass(frozen=True)
class LogsReport:
    logs: dict[str, str] = field(default_factory=dict)  # service -> text
    error: str = ""


def project_stack_report(project: Project) -> StackReport:
    """The project's containers as the engine sees them, one per service, or why they could not be read."""
    project_id = project.public_id
    if error := engine_error():
        return StackReport(error=error)
    runtime = get_runtime()
    try:
        state = runtime.stack_state(project_id, volume=project_volume(project))
    except RuntimeUnavailable as exc:
        _engine_down(runtime, str(exc))
        return StackReport(error=str(exc))
    except RuntimeFailure as exc:
        return StackReport(error=str(exc))
    rows = tuple(ContainerRow(service=s, name=container_name(project_id, s), state=state.container(s)) for s in SERVICES)
    return StackReport(containers=rows, network=state.network, volume=state.volume)


def project_logs_report(project_id: str, *, tail: int = 200) -> LogsReport:
    """The last `tail` lines of the db and the api container, or why they could not be read."""
    if error := engine_error():
        return LogsReport(error=error)
    runtime = get_runtime()
    logs: dict[str, str] = {}
    try:
        for service in SERVICES:
            logs[service] = runtime.container_logs(project_id, service, tail=tail)
    except RuntimeUnavailable as exc:
        _engine_down(runtime, str(exc))
        return LogsReport(error=str(exc))
    except RuntimeFailure as exc:
        return LogsReport(logs=logs, error=str(exc))
    return LogsReport(logs=logs)
