"""The runtime seam. Everything outside this package gets the engine through get_runtime()."""

from django.conf import settings

from .base import (
    ContainerState,
    ContainerStats,
    DbStats,
    EngineEvent,
    EngineInventory,
    ExecResult,
    ExecStream,
    ImageUnavailable,
    NODE_EVENT,
    NotReady,
    PortUnavailable,
    Runtime,
    RuntimeFailure,
    RuntimeUnavailable,
    SampleTarget,
    ScratchSpec,
    StackNotFound,
    StackSample,
    StackSpec,
    StackState,
    SubnetUnavailable,
    VolumeMissing,
)

__all__ = [
    "ContainerState",
    "ContainerStats",
    "DbStats",
    "EngineEvent",
    "EngineInventory",
    "ExecResult",
    "ExecStream",
    "ImageUnavailable",
    "NODE_EVENT",
    "NotReady",
    "PortUnavailable",
    "Runtime",
    "RuntimeFailure",
    "RuntimeUnavailable",
    "SampleTarget",
    "ScratchSpec",
    "StackSample",
    "StackNotFound",
    "StackSpec",
    "StackState",
    "SubnetUnavailable",
    "VolumeMissing",
    "get_runtime",
    "use_runtime",
]

_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's runtime, made on first use (the client connects lazily too)."""
    global _runtime
    if _runtime is None:
        if settings.BERTH_RUNTIME == "swarm":
            from .swarm import SwarmRuntime

            _runtime = SwarmRuntime(
                nodes=settings.BERTH_SWARM_NODES, public_host=settings.BERTH_PUBLIC_HOST, pull_images=settings.BERTH_PULL_IMAGES
            )
        else:
            from .docker import DockerRuntime

            _runtime = DockerRuntime(pull_images=settings.BERTH_PULL_IMAGES)
    return _runtime


def use_runtime(runtime: Runtime | None) -> None:
    """Replace the process's runtime (tests); None goes back to the real one."""
    global _runtime
    _runtime = runtime
