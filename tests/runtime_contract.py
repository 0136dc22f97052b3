"""One contract, three runtimes: FakeRuntime (unit), DockerRuntime and SwarmRuntime (integration) must all pass it.

A subclass provides the fixtures `runtime`, `make_spec` (a StackSpec for a new
project id, with free ports) and `hold_port` (makes a host port busy).
"""

import dataclasses
import secrets

import pytest

from projects.runtime import ImageUnavailable, PortUnavailable, RuntimeFailure, ScratchSpec, StackNotFound, SubnetUnavailable, VolumeMissing
from projects.runtime.base import SERVICE_LABEL, DbProbe, SampleTarget



def scratch_for(spec, *, purpose: str = "verify", own_volume: bool = True) -> ScratchSpec:
    """A throwaway postgres container next to `spec`'s project, as services/backups/dumps.py makes them."""
    return ScratchSpec(
        name=f"project_{spec.project_id}_{purpose}_000000000001",
        image=spec.db.image,
        environment=spec.db.environment,
        command=spec.db.command,
        labels={**spec.labels, SERVICE_LABEL: f"backup-{purpose}"},
        volume_mount=spec.db.volume_mount,
        mem_limit=spec.db.mem_limit,
        confinement=spec.db.confinement,
        volume="" if own_volume else spec.volume,
        own_volume=own_volume,
        node=spec.node,
    )


def sample_target_for(spec) -> SampleTarget:
    """What metrics read of `spec`'s stack, as spec.sample_target makes it: the server's admin credentials."""
    p = spec.db_probe
    admin = DbProbe(host=p.host, port=p.port, user=spec.db.environment["POSTGRES_USER"],
                    password=spec.db.environment["POSTGRES_PASSWORD"], dbname=p.dbname)  # fmt: skip
    return SampleTarget(project_id=spec.project_id, db_container=spec.db.name, api_container=spec.api.name,
                        db_probe=admin, api_port=spec.api.host_port, api_probe=spec.api_probe)  # fmt: skip


class RuntimeContract:
    # What a ready stack's sample costs: one stats call per container on one engine (a Swarm asks its manager too).
    sample_engine_calls = 2

    def test_stack_up_creates_network_volume_and_running_labelled_containers(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        state = runtime.stack_state(spec.project_id)
        assert state.network and state.volume
        assert {c.service for c in state.containers} == {"db", "api"}
        assert all(c.running for c in state.containers)
        assert {c.name for c in state.containers} == {spec.db.name, spec.api.name}

    def test_stack_up_twice_converges_to_one_stack(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_up(spec)
        assert len(runtime.stack_state(spec.project_id).containers) == 2
        assert [c.project_id for c in runtime.containers()].count(spec.project_id) == 2

    def test_stack_wait_ready_returns_once_db_and_api_answer(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_wait_ready(spec, timeout_s=60)

    def test_stack_sample_of_a_ready_stack_reads_both_containers_its_database_and_its_api(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_wait_ready(spec, timeout_s=60)
        sample = runtime.stack_sample(sample_target_for(spec))
        assert sample.db is not None and sample.api is not None, sample.error
        assert 0 < sample.db.memory_bytes <= sample.db.memory_limit_bytes and sample.db.cpu_seconds > 0
        assert sample.database is not None, sample.error
        assert sample.database.max_connections > 0 and 1 <= sample.database.connections <= sample.database.max_connections
        assert sample.database.size_bytes > 0 and sample.database.commits > 0
        assert sample.api_up and sample.engine_calls == self.sample_engine_calls

    def test_stack_sample_of_a_stopped_stack_reads_nothing_and_does_not_raise(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        sample = runtime.stack_sample(sample_target_for(spec))
        assert sample.db is None and sample.api is None and sample.database is None and not sample.api_up
        assert sample.error

    def test_stop_keeps_containers_and_up_starts_them_again(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_stop(spec)
        state = runtime.stack_state(spec.project_id)
        assert len(state.containers) == 2 and not any(c.running for c in state.containers)
        runtime.stack_up(spec)
        assert all(c.running for c in runtime.stack_state(spec.project_id).containers)

    def test_up_without_start_leaves_containers_created_but_not_running(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        state = runtime.stack_state(spec.project_id)
        assert len(state.containers) == 2 and not any(c.running for c in state.containers)

    def test_remove_containers_keeps_network_and_volume(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_remove_containers(spec.project_id)
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and state.network and state.volume

    def test_purge_removes_everything_and_is_idempotent(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_purge(spec.project_id)
        runtime.stack_purge(spec.project_id)
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and not state.network and not state.volume

    def test_actions_on_a_project_with_nothing_on_the_engine_are_fine(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_stop(spec)
        runtime.stack_remove_containers(spec.project_id)
        assert runtime.stack_state(spec.project_id).containers == ()

    def test_missing_image_fails_naming_it_and_creates_nothing(self, runtime, make_spec):
        spec = make_spec(api_image="offline/does-not-exist:1")
        with pytest.raises(ImageUnavailable, match="offline/does-not-exist:1"):
            runtime.stack_up(spec)
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and not state.network and not state.volume

    def test_images_labels_answers_for_the_images_the_engine_has_only(self, runtime, make_spec):
        spec = make_spec()
        labels = runtime.images_labels({spec.db.image, "offline/does-not-exist:1"})
        assert set(labels) == {spec.db.image} and isinstance(labels[spec.db.image], dict)

    def test_pulling_an_image_no_registry_has_is_image_unavailable_naming_it(self, runtime):
        lines: list[str] = []
        with pytest.raises(ImageUnavailable, match="offline/does-not-exist:1"):
            runtime.image_pull("offline/does-not-exist:1", progress=lines.append)
        assert runtime.images_labels({"offline/does-not-exist:1"}) == {}

    def test_stack_up_without_create_volume_refuses_a_missing_volume_and_creates_nothing(self, runtime, make_spec):
        spec = make_spec()
        with pytest.raises(VolumeMissing, match=spec.volume):
            runtime.stack_up(spec, create_volume=False)
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and not state.network and not state.volume

    def test_stack_up_without_create_volume_uses_the_volume_that_is_there(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        runtime.stack_remove_containers(spec.project_id)
        runtime.stack_up(spec, start=False, create_volume=False)
        state = runtime.stack_state(spec.project_id)
        assert state.volume and {c.service for c in state.containers} == {"db", "api"}

    def test_taken_host_port_fails_with_port_unavailable(self, runtime, make_spec, hold_port):
        spec = make_spec()
        hold_port(spec.db.host_port)
        with pytest.raises(PortUnavailable):
            runtime.stack_up(spec)

    def test_containers_lists_every_berth_container_with_project_and_service(self, runtime, make_spec):
        first, second = make_spec(), make_spec()
        runtime.stack_up(first)
        runtime.stack_up(second, start=False)
        listed = {(c.project_id, c.service) for c in runtime.containers()}
        assert {(first.project_id, "db"), (first.project_id, "api"), (second.project_id, "db"), (second.project_id, "api")} <= listed

    def test_logs_of_a_created_container_are_text_and_of_a_missing_one_empty(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        assert isinstance(runtime.container_logs(spec.project_id, "db", tail=10), str)
        assert runtime.container_logs("000000000000", "db") == ""

    # --- exec and throwaway containers (backups) ---------------------------------

    def test_exec_in_a_missing_container_raises_stack_not_found(self, runtime):
        with pytest.raises(StackNotFound, match="project_000000000000_db"):
            runtime.exec_stream("project_000000000000_db", ["pg_isready"])

    def test_exec_in_a_stopped_container_fails_saying_it_is_not_running(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        with pytest.raises(RuntimeFailure, match="is not running"):
            runtime.exec_stream(spec.db.name, ["pg_isready"])

    def test_exec_in_the_running_db_answers_with_the_commands_exit_code(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.stack_wait_ready(spec, timeout_s=60)
        out, result = runtime.exec_stream(spec.db.name, ["pg_isready", "-q", "-h", "127.0.0.1"]).read_all()
        assert (out, result.exit_code) == (b"", 0)

    def test_scratch_runs_labelled_without_published_ports_and_remove_takes_all_of_it(self, runtime, make_spec):
        spec = make_spec()
        scratch = scratch_for(spec)
        runtime.scratch_up(scratch)
        state = runtime.stack_state(spec.project_id)
        (container,) = state.containers
        assert (container.name, container.service, container.running) == (scratch.name, "backup-verify", True)
        assert container.host_ports == ()
        # Its own volume is labelled with the project, but it is not the project's data volume; no network at all:
        # Berth reaches it with exec, and a backup never waits on an address pool.
        assert not state.volume and not state.network and f"{scratch.name}_data" in runtime.inventory().volumes
        runtime.scratch_remove(scratch.name)
        runtime.scratch_remove(scratch.name)  # twice is fine
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and not state.network and not state.volume
        assert not [n for n in [*runtime.inventory().volumes, *runtime.inventory().networks] if n.startswith(scratch.name)]

    def test_stack_up_makes_the_network_on_the_subnet_asked_for_and_a_taken_one_is_refused(self, runtime, make_spec):
        subnet = f"10.241.{secrets.randbelow(256)}.{16 * secrets.randbelow(16)}/28"
        spec = dataclasses.replace(make_spec(), subnet=subnet)
        runtime.stack_up(spec, start=False)
        assert subnet in runtime.subnets_in_use()
        other = dataclasses.replace(make_spec(), subnet=subnet)
        with pytest.raises(SubnetUnavailable, match=subnet):
            runtime.stack_up(other, start=False)
        assert not runtime.stack_state(other.project_id).network
        runtime.stack_purge(spec.project_id)
        assert subnet not in runtime.subnets_in_use()

    def test_scratch_on_a_project_volume_keeps_the_volume_when_removed(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        scratch = scratch_for(spec, purpose="dump", own_volume=False)
        runtime.scratch_up(scratch)
        runtime.scratch_remove(scratch.name)
        state = runtime.stack_state(spec.project_id)
        assert state.volume and {c.service for c in state.containers} == {"db", "api"}

    def test_scratch_on_a_missing_volume_fails_and_creates_nothing(self, runtime, make_spec):
        spec = make_spec()
        with pytest.raises(StackNotFound, match=spec.volume):
            runtime.scratch_up(scratch_for(spec, purpose="dump", own_volume=False))
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and not state.network and not state.volume

    def test_purge_removes_a_projects_throwaway_containers_too(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        runtime.scratch_up(scratch_for(spec))
        runtime.stack_purge(spec.project_id)
        state = runtime.stack_state(spec.project_id)
        assert state.containers == () and not state.network and not state.volume

    def test_file_put_refuses_a_file_that_is_not_its_announced_size(self, runtime, make_spec):
        # Into a throwaway, where backups copy their dumps (on a Swarm a service
        # has a container only while a task of it runs).
        spec = make_spec()
        scratch = scratch_for(spec)
        runtime.scratch_up(scratch)
        with pytest.raises(RuntimeFailure, match="3 of its 10 bytes"):
            runtime.file_put(scratch.name, "/tmp/short", iter([b"abc"]), size=10)

    def test_a_read_only_root_takes_copies_only_onto_the_containers_volumes(self, runtime, make_spec):
        # A restore copies its dump into the running db's /tmp, a volume of its own;
        # the root is read-only, so a copy elsewhere is refused, never silently lost.
        spec = make_spec()
        runtime.stack_up(spec)
        runtime.file_put(spec.db.name, "/tmp/berth-contract", iter([b"abc"]), size=3)
        with pytest.raises(RuntimeFailure, match="read-only"):
            runtime.file_put(spec.db.name, "/etc/berth-contract", iter([b"abc"]), size=3)

    def test_a_second_data_volume_is_made_removed_and_purged_with_its_project(self, runtime, make_spec):
        # A major-version upgrade keeps the old volume beside the new one.
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        other = f"{spec.volume}_pg17"
        runtime.volume_create(other, spec.labels)
        runtime.volume_create(other, spec.labels)  # twice converges
        assert runtime.stack_state(spec.project_id, volume=other).volume
        assert runtime.inventory().volumes[other] == spec.project_id
        runtime.volume_remove(other)
        runtime.volume_remove(other)  # nothing there is fine
        assert not runtime.stack_state(spec.project_id, volume=other).volume
        assert runtime.stack_state(spec.project_id).volume
        runtime.volume_create(other, spec.labels)
        runtime.stack_purge(spec.project_id)
        assert other not in runtime.inventory().volumes

    def test_stack_up_on_another_volume_recreates_the_db_there(self, runtime, make_spec):
        spec = make_spec()
        runtime.stack_up(spec, start=False)
        moved = dataclasses.replace(spec, volume=f"{spec.volume}_pg17")
        runtime.stack_up(moved, start=False)
        assert runtime.stack_state(spec.project_id, volume=moved.volume).volume
        runtime.stack_remove_containers(spec.project_id)
        runtime.volume_remove(spec.volume)  # the first one is no longer in use
        assert not runtime.stack_state(spec.project_id).volume
        runtime.stack_purge(spec.project_id)
