"""density: idle memory of one stack, per container and flavour, after 60 s idle;
and (--fleet) how many projects one machine holds: 200 stopped and 60 running.

Memory is read from the engine's stats, three ways: RSS (the cgroup's `rss`,
or `anon` on cgroup v2: the processes' private memory — the figure the
targets are stated in); RSS plus mapped files (adds Postgres's shared memory
and mapped binaries); and the working set `docker stats` shows (`usage` minus
inactive page cache, which still counts files initdb just wrote). The PostgREST flavour cannot run here (no
PostgREST image is reachable), so only PostGraphile is measured.

    uv run python bench/density.py [--idle 60] [--versions 15,17]
    uv run python bench/density.py --fleet [--stopped 200] [--running 60] [--idle 30]

The fleet goes through Berth's own services in this process (ports, subnets
from BERTH_NETWORK_POOL, the runtime), on the real engine: the stopped ones are
stacks created and never started (what a restore leaves: network, volume, two
containers), the running ones are started and probed like a create. Every
object carries the bench label and is removed at the end, also on failure.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LABEL, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402

MIB = 1024 * 1024


def memory(api, name: str) -> dict:
    stats = api.stats(name, stream=False)
    mem = stats["memory_stats"]
    detail = mem.get("stats", {})
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0))
    rss = detail.get("rss", detail.get("anon", 0))
    mapped = detail.get("mapped_file", detail.get("file_mapped", 0))
    return {
        "rss_mib": rss / MIB,
        "rss_mapped_mib": (rss + mapped) / MIB,
        "working_set_mib": (mem["usage"] - cache) / MIB,
        "usage_mib": mem["usage"] / MIB,
        "limit_mib": mem.get("limit", 0) / MIB,
    }


def meminfo_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cgroup_rss_mib(container_id: str) -> float | None:
    """The container's RSS from cgroup v1 (no engine call); None where that file is not readable."""
    try:
        stat = Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.stat").read_text()
    except OSError:
        return None
    fields = dict(line.split() for line in stat.splitlines())
    return int(fields.get("total_rss", fields.get("rss", 0))) / MIB


def fleet(args) -> None:
    """200 stopped and 60 running projects on this machine, through Berth's services."""
    from concurrent.futures import ThreadPoolExecutor

    # 260 projects: wider ranges than the other benchmarks' 250 (the references do not run here).
    django_setup(BERTH_DB_PORTS="19000-19299", BERTH_API_PORTS="19500-19799")
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connections

    from projects.models import Project
    from projects.runtime import get_runtime
    from projects.stack.up import project_stack_up
    from projects.services.ports import project_insert_with_ports

    owner = get_user_model().objects.create_user(f"fleet-{time.time_ns()}")
    runtime = get_runtime()
    deadline = time.monotonic() + args.budget

    def new_project(n: int, status: str) -> Project:
        project = Project(owner=owner, name=f"fleet-{n}", postgres_version="17", api_flavour="postgraphile", status=status)
        project.db_password, project.jwt_secret = f"fleet-{n}-{time.time_ns()}", "j" * 48
        return project_insert_with_ports(project)

    def make(n: int, *, start: bool) -> float:
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's time budget ran out")
        began = time.perf_counter()
        try:
            project = new_project(n, "running" if start else "stopped")
            spec = project_stack_up(project, start=start)
            if start:
                runtime.stack_wait_ready(spec, timeout_s=300)
            return time.perf_counter() - began
        finally:
            connections.close_all()

    results: dict = {"stopped": args.stopped, "running": args.running}
    available_before = meminfo_available_mib()
    with cleanup_on_exit():
        with ThreadPoolExecutor(args.threads) as pool:
            began = time.perf_counter()
            stopped_times = list(pool.map(lambda n: make(n, start=False), range(args.stopped)))
            results["stopped_s"] = time.perf_counter() - began
            print(f"{args.stopped} stopped projects in {results['stopped_s']:.0f} s")
            began = time.perf_counter()
            running_times = list(pool.map(lambda n: make(args.stopped + n, start=True), range(args.running)))
            results["running_s"] = time.perf_counter() - began
            print(f"{args.running} running projects in {results['running_s']:.0f} s; idling {args.idle:.0f} s")
        time.sleep(args.idle)
        api = runtime.api
        label = LABEL
        ours = api.containers(filters={"label": label})
        results["containers_running"] = len(ours)
        results["containers"] = len(api.containers(all=True, filters={"label": label}))
        results["networks"] = len(api.networks(filters={"label": label}))
        results["engine_networks"] = len(api.networks())
        rss = [r for c in ours if (r := cgroup_rss_mib(c["Id"])) is not None]
        results["rss_mib_total"] = sum(rss) if rss else None
        results["available_mib_before"] = available_before
        results["available_mib_after"] = meminfo_available_mib()
        results["projects"] = Project.objects.count()
        results["network_pool"] = settings.BERTH_NETWORK_POOL
    results["stopped_each"] = summary(stopped_times)
    results["running_each"] = summary(running_times)
    rss_total = results["rss_mib_total"]
    rows = [
        ["stopped (created, never started)", args.stopped, results["stopped_s"], results["stopped_each"]["p50"], "-"],
        ["running (started, probed)", args.running, results["running_s"], results["running_each"]["p50"],
         f"{rss_total:.0f}" if rss_total is not None else "-"],
    ]  # fmt: skip
    rendered = table(
        f"density: {args.stopped} stopped and {args.running} running projects on one engine "
        f"({results['networks']} project networks, {results['engine_networks']} on the engine)",
        ["projects", "n", "wall s", "p50 s each", "RSS of running containers, MiB"],
        rows,
    )
    rendered += (
        f"\n\nMemAvailable before {available_before:.0f} MiB, after {results['available_mib_after']:.0f} MiB "
        f"(other work shares the machine)."
    )
    write_results("density-fleet", results, rendered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--versions", default="17,15")
    parser.add_argument("--fleet", action="store_true", help="200 stopped and 60 running projects instead")
    parser.add_argument("--stopped", type=int, default=200)
    parser.add_argument("--running", type=int, default=60)
    parser.add_argument("--threads", type=int, default=4, help="at once, like BERTH_WORKERS")
    parser.add_argument("--budget", type=float, default=1800, help="seconds; no new project after this")
    args = parser.parse_args()
    if args.fleet:
        return fleet(args)
    django_setup()
    from bench.references import free_port, reference_spec
    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import postgres_image

    runtime = DockerRuntime(pull_images=False)
    rows, results = [], {}
    with cleanup_on_exit():
        specs = []
        taken: set[int] = set()
        for version in args.versions.split(","):
            import dataclasses

            spec = reference_spec(free_port(19000, 19499, taken), free_port(19500, 19999, taken))
            spec = dataclasses.replace(spec, db=dataclasses.replace(spec.db, image=postgres_image(version)))
            runtime.stack_up(spec)
            runtime.stack_wait_ready(spec, timeout_s=120)
            specs.append((version, spec))
        print(f"{len(specs)} stack(s) ready; idling {args.idle:.0f} s")
        time.sleep(args.idle)
        for version, spec in specs:
            db, api = memory(runtime.api, spec.db.name), memory(runtime.api, spec.api.name)
            results[f"postgres {version} + postgraphile"] = {"db": db, "api": api}
            keys = ("rss_mib", "rss_mapped_mib", "working_set_mib", "usage_mib")
            rows.append([f"postgres {version}", "db", *(db[k] for k in keys)])
            rows.append([f"postgres {version}", "api (postgraphile)", *(api[k] for k in keys)])
            rows.append([f"postgres {version}", "stack", *(db[k] + api[k] for k in keys)])
    rendered = table(
        f"density: idle memory after {args.idle:.0f} s (MiB)",
        ["image", "container", "RSS", "RSS + mapped", "working set", "usage"],
        rows,
    )
    write_results("density", {"results": results, "idle_s": args.idle}, rendered)


if __name__ == "__main__":
    main()
