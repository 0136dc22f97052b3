"""One contract, two runtimes: FakeRuntime (unit) and DockerRuntime (integration) must both pass it.

A subclass provides the fixtures `runtime`, `make_spec` (a StackSpec for a new
project id, with free ports) and `hold_port` (makes a host port busy).
"""

import pytest

from projects.runtime import ImageUnavailable, PortUnavailable


class RuntimeContract:
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
