"""coldpath: where a cold create's time goes, stage by stage, for the recipes we can choose between.

One stack at a time through the bare SDK (bench/references.py's Floor calls),
probed every 10 ms, with the time at which each stage first succeeds, counted
from the moment both containers have been started:

  db accepts (the real server on the published port: initdb done) → bootstrap
  (roles, psql exec) → db answers (a query as `app`) → api answers (GraphQL).

Recipes, interleaved round by round:
  stock   PostGraphile's own `--retry-on-init-fail` (100·n² ms waits): the floor's
  rc      Berth's retry rc file (every 100 ms for the first 50 attempts)
  nosync  rc, and initdb --no-sync: what initdb's fsyncs cost (measured, not used)

    uv run python bench/coldpath.py [--n 6]
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REF_API_PORTS, REF_DB_PORTS, Timer, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402

STAGES = ["started", "db accepts", "bootstrap", "db answers", "api answers"]


def until(probe, spec, deadline: float) -> None:
    from projects.runtime.probes import ProbeFailed

    while True:
        try:
            probe(spec)
            return
        except ProbeFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def timed_create(floor, spec) -> dict[str, float]:
    from projects.runtime.probes import api_answers, db_accepts, db_answers

    api = floor.api
    timer = Timer()
    api.create_network(spec.network, driver="bridge", labels=floor.labels)
    api.create_volume(spec.volume, labels=floor.labels)
    floor.recreate_stopped(spec)
    for c in spec.containers:
        if c.files:
            from projects.runtime.wire import tar_archive

            api.put_archive(c.name, "/", tar_archive(c.files))
    for c in spec.containers:
        api.start(c.name)
    marks = {"started": timer.elapsed}
    deadline = time.monotonic() + 60
    until(db_accepts, spec, deadline)
    marks["db accepts"] = timer.elapsed
    until(floor.bootstrap, spec, deadline)
    marks["bootstrap"] = timer.elapsed
    until(db_answers, spec, deadline)
    marks["db answers"] = timer.elapsed
    until(api_answers, spec, deadline)
    marks["api answers"] = timer.elapsed
    return marks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=6, help="rounds (each makes one stack per recipe)")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    django_setup()
    from bench.references import Floor, free_port, reference_spec, stock_api

    floor = Floor()
    recipes = {
        "stock": lambda spec: stock_api(spec),
        "rc": lambda spec: spec,
        "nosync": lambda spec: dataclasses.replace(
            spec, db=dataclasses.replace(spec.db, environment={**spec.db.environment, "POSTGRES_INITDB_ARGS": "--no-sync"})
        ),
    }
    marks: dict[str, list[dict[str, float]]] = {name: [] for name in recipes}
    loads: list[float] = []
    started = time.monotonic()
    with cleanup_on_exit():
        for _ in range(args.n):
            if time.monotonic() - started > args.max_seconds:
                break
            for name, recipe in recipes.items():
                spec = recipe(reference_spec(free_port(*REF_DB_PORTS, set()), free_port(*REF_API_PORTS, set()), stock_retry=False))
                loads.append(float(Path("/proc/loadavg").read_text().split()[0]))
                try:
                    marks[name].append(timed_create(floor, spec))
                finally:
                    floor.down(spec)
    rows = []
    for name, runs in marks.items():
        rows.append([name, len(runs), *[summary([m[s] for m in runs])["p50"] for s in STAGES]])
    rendered = table("coldpath — p50 seconds from the first engine call to each stage", ["recipe", "n", *STAGES], rows)
    rendered += f"\n\nload average (1 min) at each stack: min {min(loads):.2f}, max {max(loads):.2f}"
    write_results("coldpath", {"marks": marks, "loads": loads}, rendered)


if __name__ == "__main__":
    main()
