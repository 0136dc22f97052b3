"""What SwarmRuntime asks of a Swarm, built without an engine (runtime/swarm_specs.py)."""

from projects.runtime.swarm_specs import service_template
from projects.stack.spec import stack_spec
from tests.factories import project_made


def test_a_service_is_pinned_to_its_node_by_id_on_a_read_only_root(user):
    spec = stack_spec(project_made(user))
    template, endpoint = service_template(spec, spec.db, "n0d3id", [])
    # Pinned to exactly one node: a db rescheduled elsewhere would start on a new, empty volume.
    assert template["Placement"]["Constraints"] == ["node.id==n0d3id"]
    container = template["ContainerSpec"]
    assert container["ReadOnly"] is True
    targets = {m["Target"]: m["Type"] for m in container["Mounts"]}
    assert targets["/var/lib/postgresql/data"] == "volume"
    assert {path for path, kind in targets.items() if kind == "tmpfs"} == set(spec.db.tmpfs)
    assert endpoint["Mode"] == "dnsrr" and endpoint["Ports"][0]["PublishMode"] == "host"
