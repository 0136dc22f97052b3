"""density: idle memory of one stack, per container and flavour, after 60 s idle.

Memory is read from the engine's stats, three ways: RSS (the cgroup's `rss`,
or `anon` on cgroup v2: the processes' private memory — the figure the
targets are stated in); RSS plus mapped files (adds Postgres's shared memory
and mapped binaries); and the working set `docker stats` shows (`usage` minus
inactive page cache, which still counts files initdb just wrote). The PostgREST flavour cannot run here (no
PostgREST image is reachable), so only PostGraphile is measured.

    uv run python bench/density.py [--idle 60] [--versions 15,17]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cleanup_on_exit, django_setup, table, write_results  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--versions", default="17,15")
    args = parser.parse_args()
    django_setup()
    from bench.references import free_port, reference_spec
    from projects.runtime.docker import DockerRuntime
    from projects.runtime.spec import postgres_image

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
