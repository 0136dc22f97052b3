"""Placement on a Swarm (services/placement/nodes.py), on FakeRuntime's nodes: the most free memory among the nodes that can run it."""

from dataclasses import replace

import pytest

from projects.runtime import RuntimeUnavailable
from projects.runtime.base import NodeState
from projects.services.lifecycle import requests as lifecycle
from projects.services.placement import nodes as placement
from projects.models import ForgottenNode, Project
from projects.services.errors import Forbidden, InvalidInput, NodeDown, NodeUp, NoNodeAvailable, NotFound
from projects.services.placement.nodes import node_loads, project_memory_bytes

GIB = 1 << 30


def node(name: str, *, memory: int = 2 * GIB, **kwargs) -> NodeState:
    fields = {"address": f"10.0.0.{name[-1]}", "ready": True, "active": True, "labelled": True, "drained": False, **kwargs}
    return NodeState(name=name, memory_bytes=memory, **fields)


@pytest.fixture
def swarm(fake_runtime, settings):
    settings.BERTH_DB_MEMORY, settings.BERTH_API_MEMORY = "512m", "256m"
    fake_runtime.node_list = (node("n1"), node("n2"))
    return fake_runtime


def test_a_single_engine_places_nothing_and_the_project_has_no_node(user, fake_runtime):
    project = lifecycle.project_create(owner=user).project
    assert (project.node, project.node_address) == ("", "")


def test_a_new_project_goes_to_the_node_with_the_most_free_memory_and_uses_its_address(user, swarm):
    swarm.node_list = (node("n1", memory=2 * GIB), node("n2", memory=3 * GIB))
    project = lifecycle.project_create(owner=user).project
    assert (project.node, project.node_address) == ("n2", "10.0.0.2")
    assert project.db_url().split("@")[1].startswith("10.0.0.2:") and project.api_url.startswith("http://10.0.0.2:")


def test_memory_limits_already_placed_count_against_a_node_so_projects_spread(user, swarm):
    placed = [lifecycle.project_create(owner=user).project.node for _ in range(4)]
    assert placed == ["n1", "n2", "n1", "n2"]
    loads = {load.node.name: load for load in node_loads(runtime=swarm)}
    assert loads["n1"].projects == 2 and loads["n1"].free_bytes == 2 * GIB - 2 * project_memory_bytes()


def test_ports_are_allocated_per_node(user, swarm, settings):
    settings.BERTH_DB_PORTS, settings.BERTH_API_PORTS = (16900, 16902), (17900, 17902)
    first, second = (lifecycle.project_create(owner=user).project for _ in range(2))
    assert {first.node, second.node} == {"n1", "n2"}
    assert (first.db_port, first.api_port) == (second.db_port, second.api_port) == (16900, 17900)


@pytest.mark.parametrize(
    ("other", "why"),
    [
        ({"ready": False}, "down"),
        ({"drained": True}, "drained"),
        ({"active": False}, "drained"),
        ({"labelled": False}, "not labelled berth.node"),
        ({"missing_images": frozenset({"berth/postgres:17", "postgres:17"})}, "lacks"),
    ],
)
def test_a_node_that_cannot_take_projects_is_passed_over(user, swarm, other, why):
    swarm.node_list = (node("n1", memory=8 * GIB, **other), node("n2"))
    assert lifecycle.project_create(owner=user).project.node == "n2"


def test_no_node_able_is_a_refusal_that_says_why_for_each_and_creates_nothing(user, swarm, settings):
    swarm.node_list = (node("n1", ready=False), node("n2", memory=256 << 20))
    with pytest.raises(NoNodeAvailable, match=r"n1: down; n2: 256 MiB free of the 768 MiB a project needs"):
        lifecycle.project_create(owner=user)
    assert user.projects.count() == 0


def test_a_node_lacking_an_image_is_named_with_the_image(user, swarm):
    swarm.node_list = (node("n1", missing_images=frozenset({"postgres:17"})),)
    with pytest.raises(NoNodeAvailable, match="n1: lacks postgres:17"):
        lifecycle.project_create(owner=user)


def _deleted_on_a_down_node(user, swarm):
    project = lifecycle.project_create(owner=user).project
    project.refresh_from_db()
    lifecycle.project_delete(project=project)
    project.refresh_from_db()
    swarm.node_list = tuple(replace(n, ready=n.name != project.node) for n in swarm.node_list)
    return project


def test_purge_of_a_project_whose_node_is_down_is_refused_naming_the_node_and_queues_nothing(user, swarm):
    project = _deleted_on_a_down_node(user, swarm)
    with pytest.raises(NodeDown, match=f"node {project.node}, which is down") as refused:
        lifecycle.project_purge(project=project, confirm=project.public_id)
    assert refused.value.status == 409 and refused.value.details() == {"node": project.node}
    project.refresh_from_db()
    assert project.status == "deleted"
    swarm.node_list = tuple(replace(n, ready=True) for n in swarm.node_list)
    lifecycle.project_purge(project=project, confirm=project.public_id)
    project.refresh_from_db()
    assert project.status == "purged"


def test_the_project_answer_names_its_node_and_null_on_a_single_engine(user, swarm, client):
    from tests.conftest import bearer

    project = lifecycle.project_create(owner=user).project
    assert client.get(f"/v1/projects/{project.public_id}", **bearer(user)).json()["node"] == project.node
    swarm.node_list = ()
    other = lifecycle.project_create(owner=user).project
    assert client.get(f"/v1/projects/{other.public_id}", **bearer(user)).json()["node"] is None


# --- move: a verified backup restored onto another node ------------------------------


@pytest.fixture
def staff(django_user_model):
    """An operator: staff, with the permission to act on others' projects."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("harbourmaster", password="x" * 16, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_project"))
    return user


def test_move_puts_the_project_on_the_target_node_with_its_address_after_a_verified_backup(user, swarm, staff, settings, tmp_path):
    settings.BERTH_BACKUP_DIR = tmp_path / "backups"
    project = lifecycle.project_create(owner=user).project
    project.refresh_from_db()
    target = "n2" if project.node == "n1" else "n1"
    operation = placement.project_move(project=project, node=target, requested_by=staff)
    operation.refresh_from_db()
    project.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    assert (project.status, project.node, project.node_address) == ("running", target, f"10.0.0.{target[-1]}")
    [backup] = project.backups.all()
    assert (backup.trigger, backup.state) == ("pre-move", "verified")


@pytest.mark.parametrize(
    ("node", "message"),
    [("n9", "no node 'n9'"), ("same", "is on node"), ("down", "cannot take it: down")],
)
def test_move_refusals_name_the_reason_and_queue_nothing(user, swarm, staff, node, message):
    project = lifecycle.project_create(owner=user).project
    project.refresh_from_db()
    other = "n2" if project.node == "n1" else "n1"
    if node == "same":
        node = project.node
    elif node == "down":
        swarm.node_list = tuple(replace(n, ready=False) if n.name == other else n for n in swarm.node_list)
        node = other
    with pytest.raises(InvalidInput, match=message):
        placement.project_move(project=project, node=node, requested_by=staff)
    assert project.operations.count() == 1  # its create only


def test_move_is_for_staff_only(user, swarm, client):
    from tests.conftest import bearer

    project = lifecycle.project_create(owner=user).project
    answer = client.post(f"/v1/projects/{project.public_id}/move", data={"node": "n2"}, content_type="application/json", **bearer(user))
    assert answer.status_code == 403 and "staff" in answer.json()["error"]["message"]


def test_move_on_a_single_engine_is_refused(user, fake_runtime, staff):
    project = lifecycle.project_create(owner=user).project
    with pytest.raises(InvalidInput, match="single engine"):
        placement.project_move(project=project, node="n2", requested_by=staff)


def test_the_nodes_page_shows_each_nodes_state_projects_and_free_memory_to_staff_only(user, swarm, staff, client):
    swarm.node_list = (node("n1"), node("n2", ready=False))
    lifecycle.project_create(owner=user)
    client.force_login(user)
    assert client.get("/nodes").status_code == 403
    client.force_login(staff)
    page = client.get("/nodes").content.decode()
    assert "<code>n1</code>" in page and "down" in page and "1.2\xa0GB of 2.0\xa0GB" in page


def test_the_purge_refusal_answers_409_node_down_with_the_node(user, swarm, client):
    from tests.conftest import bearer

    project = lifecycle.project_create(owner=user).project
    project.refresh_from_db()
    lifecycle.project_delete(project=project)
    swarm.node_list = tuple(replace(n, ready=False) for n in swarm.node_list)
    answer = client.post(f"/v1/projects/{project.public_id}/purge", data={"confirm": project.public_id}, content_type="application/json", **bearer(user))
    assert answer.status_code == 409
    assert answer.json()["error"] | {"message": ""} == {"code": "node_down", "node": project.node, "message": ""}


def test_a_warm_pool_stack_is_placed_as_a_create_is_and_a_claim_keeps_its_node(user, swarm, settings):
    from projects.models import Project
    from projects.services.pool.requests import pool_refill

    swarm.node_list = (node("n1", memory=2 * GIB), node("n2", memory=3 * GIB))
    settings.BERTH_WARM_POOL = ((None, None, 1),)
    pool_refill()
    pooled = Project.objects.get(owner__isnull=True, status=Project.Status.POOLED)
    assert (pooled.node, pooled.node_address) == ("n2", "10.0.0.2")
    settings.BERTH_WARM_POOL = ()
    swarm.fail_with("*", RuntimeUnavailable("the manager is away"))
    claimed = lifecycle.project_create(owner=user).project  # a claim asks the swarm nothing
    assert (claimed.public_id, claimed.node, claimed.node_address) == (pooled.public_id, "n2", "10.0.0.2")


def test_a_pool_fill_no_node_can_take_is_held_back_naming_why(db, swarm, settings):
    from projects.models import Project
    from projects.services.pool.requests import pool_refill

    swarm.node_list = (node("n1", ready=False), node("n2", drained=True))
    settings.BERTH_WARM_POOL = ((None, None, 1),)
    refill = pool_refill()
    assert "not filled, no node can take" in refill.held_back and "n1: down" in refill.held_back and "n2: drained" in refill.held_back
    assert not Project.objects.exists()


def test_a_projects_own_memory_limits_changed_after_creation_count_against_its_node(user, swarm):
    from projects.models import Project

    project = lifecycle.project_create(owner=user).project
    Project.objects.filter(pk=project.pk).update(db_memory="1g", api_memory="512m")
    loads = {load.node.name: load for load in node_loads(runtime=swarm)}
    assert loads[project.node].placed_bytes == project_memory_bytes("1g", "512m") == (1 << 30) + (512 << 20)


def test_a_memory_increase_that_fits_its_node_is_taken(user, swarm):
    from projects.services.settings.requests import project_change

    project = lifecycle.project_create(owner=user).project  # 768 MiB of n1's 2 GiB
    project.refresh_from_db()
    changed, _ = project_change(project=project, requested_by=user, db_memory="1g")
    assert changed.db_memory == "1g"


def test_a_memory_increase_its_node_has_no_room_for_is_refused_naming_the_node_and_changes_nothing(user, swarm, client):
    from tests.conftest import bearer

    project = lifecycle.project_create(owner=user).project  # 768 MiB of n1's 2 GiB: 1.25 GiB free
    before = (project.db_memory, project.api_memory, project.restart_pending)
    response = client.patch(f"/v1/projects/{project.public_id}", data={"db_memory": "2g"}, content_type="application/json", **bearer(user))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "node_full" and error["node"] == project.node and "move" in error["message"]
    project.refresh_from_db()
    assert (project.db_memory, project.api_memory, project.restart_pending) == before
    assert project.operations.count() == 1  # the create's


def test_a_memory_decrease_asks_no_node(user, swarm):
    from projects.services.settings.requests import project_change

    project = lifecycle.project_create(owner=user).project
    project.refresh_from_db()
    swarm.node_list = ()  # a decrease needs no room: the swarm is not even read
    changed, _ = project_change(project=project, requested_by=user, db_memory="256m")
    assert changed.db_memory == "256m"


# --- forgetting a node that is down (placement.node_forget) ---------------------------


def test_forgetting_a_down_node_lets_its_deleted_projects_be_purged_leaving_the_volume_to_it(user, swarm, staff):
    project = _deleted_on_a_down_node(user, swarm)
    forgotten = placement.node_forget(name=project.node, confirm=project.node, requested_by=staff)
    assert (forgotten.node, forgotten.projects) == (project.node, [project.public_id])
    assert ForgottenNode.objects.get().forgotten_by == staff
    lifecycle.project_purge(project=project, confirm=project.public_id)
    project.refresh_from_db()
    assert project.status == "purged"
    assert swarm.purged_given_up == {project.node}


def test_forgetting_refusals_name_the_reason_and_forget_nothing(user, swarm, staff):
    project = _deleted_on_a_down_node(user, swarm)
    up = next(n.name for n in swarm.node_list if n.ready)
    with pytest.raises(NodeUp, match=f"node {up} is ready") as refused:
        placement.node_forget(name=up, confirm=up, requested_by=staff)
    assert refused.value.status == 409 and refused.value.details() == {"node": up}
    with pytest.raises(InvalidInput, match="confirm: must be the node's name"):
        placement.node_forget(name=project.node, confirm="yes", requested_by=staff)
    with pytest.raises(NotFound, match="no node 'n7'"):
        placement.node_forget(name="n7", confirm="n7", requested_by=staff)
    with pytest.raises(Forbidden):
        placement.node_forget(name=project.node, confirm=project.node, requested_by=user)
    assert not ForgottenNode.objects.exists()
    with pytest.raises(NodeDown):
        lifecycle.project_purge(project=project, confirm=project.public_id)


def test_forgetting_on_a_single_engine_is_not_found(user, fake_runtime, staff):
    with pytest.raises(NotFound, match="single engine"):
        placement.node_forget(name="n1", confirm="n1", requested_by=staff)


def test_a_forgotten_node_seen_ready_again_is_forgotten_no_more(user, swarm, staff):
    from projects.services.fleet.watcher import projects_sync

    project = lifecycle.project_create(owner=user).project
    lifecycle.project_delete(project=project)
    running = lifecycle.project_create(owner=user).project
    assert running.node == project.node  # a deleted project's memory counts no more
    swarm.node_list = tuple(replace(n, ready=n.name != project.node) for n in swarm.node_list)
    placement.node_forget(name=project.node, confirm=project.node, requested_by=staff)
    swarm.node_list = tuple(replace(n, ready=True) for n in swarm.node_list)
    projects_sync(runtime=swarm)  # sees `running`'s db on the node
    assert not ForgottenNode.objects.exists()
    # Down again: a new decision is needed.
    swarm.node_list = tuple(replace(n, ready=n.name != project.node) for n in swarm.node_list)
    with pytest.raises(NodeDown):
        lifecycle.project_purge(project=project, confirm=project.public_id)


def test_forget_by_the_api_answers_the_projects_and_refuses_a_ready_node_409_node_up(user, swarm, staff, client):
    from tests.conftest import bearer

    project = _deleted_on_a_down_node(user, swarm)
    up = next(n.name for n in swarm.node_list if n.ready)
    refused = client.post(f"/v1/nodes/{up}/forget", data={"confirm": up}, content_type="application/json", **bearer(staff))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "node_up" and refused.json()["error"]["node"] == up
    answer = client.post(f"/v1/nodes/{project.node}/forget", data={"confirm": project.node}, content_type="application/json", **bearer(staff))
    assert answer.status_code == 200
    assert answer.json() | {"forgotten_at": ""} == {"node": project.node, "forgotten_at": "", "projects": [project.public_id]}


def test_the_nodes_page_offers_forget_for_a_down_node_only_and_says_when_it_was_forgotten(user, swarm, staff, client):
    project = _deleted_on_a_down_node(user, swarm)
    client.force_login(staff)
    page = client.get("/nodes").content.decode()
    assert page.count("Forget…") == 1 and f'action="/nodes/{project.node}/forget"' in page
    wrong = client.post(f"/nodes/{project.node}/forget", {"confirm": "nope"})
    assert wrong.status_code == 422 and "Nothing was changed: confirm: must be the node&#x27;s name" in wrong.content.decode()
    assert not ForgottenNode.objects.exists()
    done = client.post(f"/nodes/{project.node}/forget", {"confirm": project.node}, follow=True)
    page = done.content.decode()
    assert f"Node {project.node} is forgotten" in page and "Forget…" not in page and "Forgotten " in page


def test_the_pools_port_reserve_is_kept_per_node_so_each_node_takes_its_share(db, swarm, settings):
    from projects.models import Project
    from projects.services.pool.requests import pool_refill

    # 4 ports a range, 2 of them the reserve: two pool stacks per node, not two in all
    # (memory for ten a node: the ports are what stops them).
    swarm.node_list = (node("n1", memory=8 * GIB), node("n2", memory=8 * GIB))
    settings.BERTH_DB_PORTS, settings.BERTH_API_PORTS = (16900, 16903), (17900, 17903)
    settings.BERTH_WARM_POOL = ((None, None, 6),)
    for _ in range(6):
        pool_refill()
    placed = sorted(Project.objects.filter(status=Project.Status.POOLED).values_list("node", "db_port"))
    assert placed == [("n1", 16900), ("n1", 16901), ("n2", 16900), ("n2", 16901)]


def test_the_admin_project_list_shows_each_nodes_state_projects_and_free_memory(user, swarm, admin_client):
    swarm.node_list = (node("n1"), node("n2", ready=False))
    lifecycle.project_create(owner=user)
    page = admin_client.get("/admin/projects/project/").content.decode()
    assert "Nodes (BERTH_RUNTIME=swarm)" in page
    assert "<td>n1</td>" in page and "<td>down</td>" in page and '<a href="?node=n1">1</a>' in page
    assert "1.2\xa0GB of 2.0\xa0GB" in page


def test_the_admin_project_list_has_no_nodes_on_a_single_engine(user, fake_runtime, admin_client):
    lifecycle.project_create(owner=user)
    page = admin_client.get("/admin/projects/project/").content.decode()
    assert "Nodes (BERTH_RUNTIME=swarm)" not in page and fake_runtime.calls["nodes"] == 0


def test_the_page_of_a_deleted_project_on_a_down_node_says_its_volume_waits_there_not_that_it_is_gone(user, swarm, client):
    project = _deleted_on_a_down_node(user, swarm)
    Project.objects.filter(pk=project.pk).update(first_running_at=project.created_at)  # it held data
    swarm.volumes.clear()  # the node cannot be read: its volume is not seen
    client.force_login(user)
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert f"Node {project.node} is down." in page and "Purge waits for the node too" in page
    assert "Its data volume is gone" not in page
    swarm.node_list = tuple(replace(n, ready=True) for n in swarm.node_list)
    page = client.get(f"/projects/{project.public_id}").content.decode()
    assert "is down." not in page and "Its data volume is gone" in page  # seen up, no volume: gone indeed
