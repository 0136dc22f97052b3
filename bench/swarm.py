"""swarm: create → running on the test Swarm against the single engine, and one sync pass's engine calls and time with 1,000 rows on the Swarm.

Needs the test swarm (`../shared/docker/swarm up 2`) and BERTH_SWARM_NODES
(`eval "$(../shared/docker/swarm env)"`, or just that variable). Engine calls
are counted at the SDK's HTTP layer of every client the runtime holds (the
manager's and each node's).

    uv run python bench/swarm.py [--creates 4] [--rows 1000] [--passes 10]
"""

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LABEL, RUN_ID, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402
from bench.sync import count_engine_calls  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=4, help="stacks per runtime (the test swarm forwards 10 ports per node)")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    django_setup(BERTH_DATA_DIR=f"/tmp/berth-bench-swarm-{RUN_ID}")
    import docker
    from django.contrib.auth import get_user_model

    from bench.dashboard import fill
    from bench.references import free_port
    from projects.models import Project
    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import stack_spec
    from projects.runtime.swarm import SwarmRuntime, parse_nodes
    from projects.services.fleet.watcher import projects_sync
    from tests.engine import swarm_cleanup

    nodes = parse_nodes(os.environ.get("BERTH_SWARM_NODES", ""))
    if not nodes:
        sys.exit('no test swarm: ../shared/docker/swarm up 2, then eval "$(../shared/docker/swarm env)"')
    swarm = SwarmRuntime(nodes=nodes, manager=next(iter(nodes.values())))
    single = DockerRuntime(pull_images=False)
    clients = {name: docker.DockerClient(base_url=url) for name, url in nodes.items()}
    owner = get_user_model().objects.create_user("bench")
    fill(args.rows, owner, health="missing")

    def create_to_running(runtime, projects: list) -> list[float]:
        times = []
        for project in projects:
            spec = stack_spec(project)
            began = time.perf_counter()
            runtime.stack_up(spec)
            runtime.stack_wait_ready(spec, timeout_s=120)
            times.append(time.perf_counter() - began)
        return times

    with cleanup_on_exit():
        try:
            rows = list(Project.objects.order_by("id")[: 2 * args.creates])
            on_single, on_swarm = rows[: args.creates], rows[args.creates :]
            for project in rows:  # fill() leaves out the secrets a stack of today needs
                project.admin_password = project.authenticator_password = "bench-password"
                project.save(update_fields=["admin_password_encrypted", "authenticator_password_encrypted"])
            taken: set[int] = set()
            for project in on_single:
                project.db_port, project.api_port = free_port(19000, 19249, taken), free_port(19500, 19749, taken)
                project.save(update_fields=["db_port", "api_port"])
            # The test swarm forwards 16400-16409 and 17400-17409 of each node: alternate the nodes.
            node_names = itertools.cycle(sorted(nodes))
            for n, project in enumerate(on_swarm):
                project.node = next(node_names)
                project.node_address = swarm.swarm_nodes()[project.node].address
                project.db_port, project.api_port = 16400 + n // 2, 17400 + n // 2
                project.save(update_fields=["node", "node_address", "db_port", "api_port"])
            single_times = create_to_running(single, on_single)
            swarm_times = create_to_running(swarm, on_swarm)
            print(f"create → running: single engine {single_times}, swarm {swarm_times}")

            # One list per client (the manager's, each node's), cleared before each pass.
            per_client = {name: count_engine_calls(engine) for name, engine in [("manager", swarm.manager), *swarm.engines.items()]}
            times, call_counts = [], []
            for _ in range(args.passes):
                for listed in per_client.values():
                    listed.clear()
                began = time.perf_counter()
                report = projects_sync(runtime=swarm)
                times.append(time.perf_counter() - began)
                call_counts.append(sum(map(len, per_client.values())))
            calls = [f"{name}: {call}" for name, listed in per_client.items() for call in listed]
            healthy = Project.objects.filter(health="healthy").count()
            print(f"last pass: {report.checked} checked, {healthy} healthy; calls: {calls}")
        finally:
            swarm_cleanup(clients, LABEL)

    single_stats, swarm_stats, sync_stats = summary(single_times), summary(swarm_times), summary(times)
    rendered = table(
        f"swarm: create → running ({args.creates} stacks each), and one sync pass over {args.rows} rows ({args.creates} live on the swarm)",
        ["measure", "p50 s", "p95 s", "engine calls per pass"],
        [
            ["create → running, single engine", single_stats["p50"], single_stats["p95"], "–"],
            ["create → running, swarm (2 nodes)", swarm_stats["p50"], swarm_stats["p95"], "–"],
            ["sync pass on the swarm", sync_stats["p50"], sync_stats["p95"], max(call_counts)],
        ],
    )
    write_results(
        "swarm",
        {"single": single_stats, "swarm": swarm_stats, "sync": sync_stats, "engine_calls": call_counts, "calls": calls},
        rendered,
    )


if __name__ == "__main__":
    main()
