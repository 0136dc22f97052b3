"""The Runtime protocol is exactly what both runtimes implement, with the same signatures.

A type checker pins this too; this test keeps it pinned without one, and names
the method that drifted.
"""

import inspect
import re
from pathlib import Path

import pytest

from projects.runtime.base import Runtime
from projects.runtime.docker import DockerRuntime
from projects.runtime.fake import FakeRuntime
from projects.runtime.swarm import SwarmRuntime

PROJECTS = Path(__file__).resolve().parents[2] / "projects"
PROTOCOL = sorted(name for name, member in vars(Runtime).items() if inspect.isfunction(member) and not name.startswith("_"))


@pytest.mark.parametrize("implementation", [DockerRuntime, SwarmRuntime, FakeRuntime])
@pytest.mark.parametrize("name", PROTOCOL)
def test_each_runtime_implements_the_protocol_method_with_its_signature(implementation, name):
    # Its own or inherited from its engine's machinery (docker_common.Engine), never the protocol's stub.
    assert any(name in vars(k) for k in implementation.__mro__ if k is not Runtime and k is not object), f"{implementation.__name__} lacks {name}"
    assert inspect.signature(getattr(implementation, name)) == inspect.signature(getattr(Runtime, name))


def test_every_protocol_method_is_asked_for_outside_the_runtimes():
    # A method nobody calls is a promise every runtime must keep for nothing
    # (stack_wait_stopped was one); a call to a method the protocol lacks
    # (containers() was one) fails the signature test above or the type checker.
    called: set[str] = set()
    for path in PROJECTS.rglob("*.py"):
        if "runtime" not in path.relative_to(PROJECTS).parts:
            called |= set(re.findall(r"(?:runtime|get_runtime\(\))\.([a-z_]+)\(", path.read_text()))
    assert set(PROTOCOL) == called
