"""sync: wall time and engine API calls of one `sync_projects` pass with 10,000 project rows and 20 live stacks.

Engine calls are counted at the SDK's HTTP layer (every GET/POST/DELETE the
DockerRuntime sends), so nothing the runtime does can hide from the count.

    uv run python bench/sync.py [--rows 10000] [--stacks 20] [--passes 10]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RUN_ID, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402


def count_engine_calls(runtime) -> list[str]:
    calls: list[str] = []
    api = runtime.api
    for verb in ("_get", "_post", "_delete", "_put"):
        original = getattr(api, verb)

        def counted(url, *args, _original=original, _verb=verb, **kwargs):
            calls.append(f"{_verb[1:].upper()} {url.split('/v1.', 1)[-1]}")
            return _original(url, *args, **kwargs)

        setattr(api, verb, counted)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--stacks", type=int, default=20)
    parser.add_argument("--passes", type=int, default=10)
    args = parser.parse_args()
    django_setup(BERTH_DATA_DIR=f"/tmp/berth-bench-sync-{RUN_ID}")
    from django.contrib.auth import get_user_model

    from bench.dashboard import fill
    from projects.models import Project
    from projects.runtime.docker import DockerRuntime
    from projects.stack.spec import stack_spec
    from projects.services.fleet.watcher import projects_sync

    owner = get_user_model().objects.create_user("bench")
    # Rows without containers are observed as missing: record them so, and the
    # passes measure the steady state (a pass that changes every row is the first one only).
    fill(args.rows, owner, health="missing")
    runtime = DockerRuntime(pull_images=False)
    with cleanup_on_exit():
        # Live stacks for the first rows: give them free ports of the bench range, then start them.
        from bench.references import free_port

        taken: set[int] = set()
        live = list(Project.objects.order_by("id")[: args.stacks])
        for project in live:
            project.db_port, project.api_port = free_port(19000, 19499, taken), free_port(19500, 19999, taken)
            project.save(update_fields=["db_port", "api_port"])
            runtime.stack_up(stack_spec(project))
        for project in live:
            runtime.stack_wait_ready(stack_spec(project), timeout_s=120)
        print(f"{args.rows} rows, {len(live)} live stacks ready")

        calls = count_engine_calls(runtime)
        times, call_counts = [], []
        for _ in range(args.passes):
            calls.clear()
            began = time.perf_counter()
            report = projects_sync(runtime=runtime)
            times.append(time.perf_counter() - began)
            call_counts.append(len(calls))
        healthy = Project.objects.filter(health="healthy").count()
        print(f"last pass: {report.checked} checked, {len(report.drift)} drift, {healthy} healthy; calls: {calls}")

    stats = summary(times)
    rendered = table(
        f"sync: one pass over {args.rows} rows with {len(live)} live stacks",
        ["passes", "engine calls per pass", "p50 s", "p95 s", "projects checked", "healthy"],
        [[args.passes, max(call_counts), stats["p50"], stats["p95"], report.checked, healthy]],
    )
    write_results("sync", {"stats": stats, "engine_calls": call_counts, "calls": calls}, rendered)


if __name__ == "__main__":
    main()
