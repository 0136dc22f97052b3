"""provision: request → running project whose db answers a query and whose api answers.

Berth (through the API with ?wait, a real `manage.py up`) against the floor and
the compose way, interleaved in one run; N sequential, then N concurrent.

    uv run python bench/provision.py [--n 8] [--concurrent 5]

`--pool` measures the warm pool instead, in one run of one Berth: creates that
claim a pooled stack (request → 201 running; the db and api are then probed
from outside) interleaved with cold creates of a version the pool does not
hold, each after the pool is full again (a quiet machine for both); then five
quick hits and the time until the pool is full again.

    uv run python bench/provision.py --pool [--n 8] [--ports 19000-19099,19500-19599] [--web-port 8790]
"""

import argparse
import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REF_API_PORTS, REF_DB_PORTS, BerthServer, Timer, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402


def berth_create(server: BerthServer) -> tuple[float, str]:
    from projects.runtime.probes import api_answers as _api_answers, db_answers as _db_answers

    timer = Timer()
    # A name of its own: an owner's project names are unique, and creates run concurrently.
    code, body = server.request("POST", "/v1/projects?wait=120", {"name": f"bench-{secrets.token_hex(4)}"})
    if code != 201 or body.get("status") != "running":
        raise RuntimeError(f"create did not settle running: {code} {body}")
    # The operation already probed; prove it from the outside, as the references do.
    _db_answers(project_spec(body))
    _api_answers(project_spec(body))
    return timer.elapsed, body["project_id"]


def project_spec(body: dict):
    """The probe spec of a project the API returned (its ports and password, from its URLs)."""
    import dataclasses
    from urllib.parse import unquote, urlsplit

    from bench.references import reference_spec

    db, api = urlsplit(body["db_url"]), urlsplit(body["api_url"])
    spec = reference_spec(db.port, api.port)
    return dataclasses.replace(spec, db_probe=dataclasses.replace(spec.db_probe, password=unquote(db.password), bootstrap_sql=""))


def berth_remove(server: BerthServer, project_id: str) -> None:
    server.request("DELETE", f"/v1/projects/{project_id}?wait=60")
    server.request("POST", f"/v1/projects/{project_id}/purge?wait=60", {"confirm": project_id})


def reference_spec_new(taken: set[int]):
    from bench.references import free_port, reference_spec

    # The references' own halves of the bench ranges: Berth reserves ports in
    # its halves before it binds them, so a bind test alone could collide.
    return reference_spec(free_port(*REF_DB_PORTS, taken), free_port(*REF_API_PORTS, taken))


def reference_create(ref, spec) -> tuple[float, object]:
    timer = Timer()
    ref.up(spec)
    return timer.elapsed, spec


POOL_VERSION, POOL_SIZE, QUICK_HITS = "17", 5, 5
COLD_VERSION = "15"  # a version the pool does not hold: its creates take the cold path


def pool_counts(server: BerthServer) -> tuple[int, int]:
    code, body = server.request("GET", "/v1/pool")
    if code != 200:
        raise RuntimeError(f"GET /v1/pool: {code} {body}")
    mine = [p for p in body["pools"] if p["postgres_version"] == POOL_VERSION]
    return (mine[0]["ready"], mine[0]["filling"]) if mine else (0, 0)


def pool_wait_full(server: BerthServer, timeout_s: float = 300) -> float:
    """Seconds until the pool holds POOL_SIZE ready stacks (polled every 50 ms)."""
    timer = Timer()
    while timer.elapsed < timeout_s:
        if pool_counts(server)[0] >= POOL_SIZE:
            return timer.elapsed
        time.sleep(0.05)
    raise RuntimeError(f"the pool did not fill within {timeout_s} s: {pool_counts(server)}")


def berth_delete(server: BerthServer, project_id: str) -> None:
    """Containers gone, so the run's own idle stacks do not load the machine (no purge: its final backup costs more)."""
    server.request("DELETE", f"/v1/projects/{project_id}?wait=60")


def berth_create_timed(server: BerthServer, version: str, expect_kind: str) -> tuple[float, str]:
    """request → 201 running; then the db and the api are probed from outside (not timed), as berth_create does."""
    from projects.runtime.probes import api_answers, db_answers

    timer = Timer()
    code, body = server.request("POST", "/v1/projects?wait=120", {"name": f"bench-{secrets.token_hex(4)}", "postgres_version": version})
    elapsed = timer.elapsed
    if code != 201 or body.get("status") != "running":
        raise RuntimeError(f"create did not settle running: {code} {body}")
    if body["operation"]["kind"] != expect_kind:
        raise RuntimeError(f"expected a {expect_kind}, got {body['operation']['kind']}")
    db_answers(project_spec(body))
    api_answers(project_spec(body))
    return elapsed, body["project_id"]


def pool_main(args: argparse.Namespace) -> None:
    (db_low, db_high), (api_low, api_high) = (tuple(map(int, r.split("-"))) for r in args.ports.split(","))
    env = {
        "BERTH_WARM_POOL": f"{POOL_VERSION}/postgraphile={POOL_SIZE}",
        "BERTH_DB_PORTS": f"{db_low}-{db_high}",
        "BERTH_API_PORTS": f"{api_low}-{api_high}",
    }
    django_setup(**env)
    times: dict[str, list[float]] = {"hit": [], "cold": []}
    refills: list[float] = []
    began = time.monotonic()
    with cleanup_on_exit(), BerthServer(port=args.web_port, env=env) as server:
        print(f"filling the pool ({POOL_SIZE} of {POOL_VERSION}/postgraphile) …")
        print(f"pool full after {pool_wait_full(server):.1f} s")
        # Warm-up: first requests import code, first containers warm the page cache.
        for version, kind in ((COLD_VERSION, "create"), (POOL_VERSION, "claim")):
            berth_delete(server, berth_create_timed(server, version, kind)[1])
        pool_wait_full(server)
        for i in range(args.n):
            if time.monotonic() - began > args.max_seconds:
                print("time limit reached; stopping early")
                break
            for kind in (["hit", "cold"] if i % 2 == 0 else ["cold", "hit"]):
                version, expect = (POOL_VERSION, "claim") if kind == "hit" else (COLD_VERSION, "create")
                elapsed, project_id = berth_create_timed(server, version, expect)
                times[kind].append(elapsed)
                print(f"{i + 1}/{args.n} {kind}: {elapsed:.3f} s")
                berth_delete(server, project_id)
                pool_wait_full(server)  # both measured on a quiet machine, with a full pool
                time.sleep(0.5)
        for round_ in range(args.refill_rounds):
            timer = Timer()
            taken = [berth_create_timed(server, POOL_VERSION, "claim")[1] for _ in range(QUICK_HITS)]
            hits_s = timer.elapsed
            try:
                full = pool_wait_full(server)
            except RuntimeError as exc:
                print(f"refill round {round_ + 1}: {exc}; stopping")
                break
            refills.append(timer.elapsed)
            print(f"refill round {round_ + 1}: {QUICK_HITS} hits in {hits_s:.2f} s, pool full again {full:.1f} s later ({timer.elapsed:.1f} s after the first)")
            for project_id in taken:
                berth_delete(server, project_id)
            try:
                pool_wait_full(server)
            except RuntimeError as exc:
                print(f"after refill round {round_ + 1}: {exc}; stopping")
                break
            time.sleep(2)
        load = os.getloadavg()

    hit, cold, refill = summary(times["hit"]), summary(times["cold"]), summary(refills)
    rows = [
        ["pool hit (claim)", hit["n"], hit["p50"], hit["p95"], hit["p50"] / cold["p50"]],
        [f"cold create (PostgreSQL {COLD_VERSION})", cold["n"], cold["p50"], cold["p95"], 1.0],
        [f"pool full again after {QUICK_HITS} quick hits", refill["n"], refill["p50"], refill["p95"], refill["p50"] / cold["p50"]],
    ]
    rendered = table(
        f"provision --pool: request → 201 running (seconds); pool {POOL_SIZE} × {POOL_VERSION}/postgraphile, BERTH_WORKERS 4",
        ["measure", "n", "p50 s", "p95 s", "p50 / cold p50"],
        rows,
    )
    rendered += f"\n\nload average at the end (1, 5, 15 min): {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}"
    write_results("provision-pool", {"hit": hit, "cold": cold, "refill_after_quick_hits": refill, "pool": env, "load_at_end": load}, rendered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="sequential creates per method (default 8)")
    parser.add_argument("--concurrent", type=int, default=5, help="creates at once per method (default 5)")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop early after this long")
    parser.add_argument("--pool", action="store_true", help="measure the warm pool: hits and cold creates in one run, and refill")
    parser.add_argument("--ports", default="19000-19249,19500-19749", help="--pool: Berth's db and api port ranges")
    parser.add_argument("--web-port", type=int, default=8790, help="--pool: the port Berth serves on")
    parser.add_argument("--refill-rounds", type=int, default=3, help="--pool: rounds of quick hits then refill (default 3)")
    args = parser.parse_args()
    if args.pool:
        pool_main(args)
        return
    django_setup()
    from bench.references import Compose, Floor

    floor, compose = Floor(), Compose()
    times: dict[str, dict[str, list[float]]] = {m: {"sequential": [], "concurrent": []} for m in ("berth", "floor", "compose")}
    began = time.monotonic()
    with cleanup_on_exit(), BerthServer() as server:
        taken: set[int] = set()
        # Warm-up: first requests import code, first containers warm the page cache.
        berth_remove(server, berth_create(server)[1])
        for i in range(args.n):
            if time.monotonic() - began > args.max_seconds:
                print("time limit reached; stopping early")
                break
            # Rotate the order so no method always runs on a machine the previous one just loaded.
            order = ["berth", "floor", "compose"][i % 3:] + ["berth", "floor", "compose"][: i % 3]
            for method in order:
                if method == "berth":
                    elapsed, pid = berth_create(server)
                    berth_remove(server, pid)
                else:
                    ref = floor if method == "floor" else compose
                    elapsed, spec = reference_create(ref, reference_spec_new(taken))
                    ref.down(spec)
                times[method]["sequential"].append(elapsed)
                print(f"sequential {i + 1}/{args.n} {method}: {elapsed:.3f} s")
            time.sleep(0.5)

        for method in ("berth", "floor", "compose"):
            with ThreadPoolExecutor(args.concurrent) as pool:
                if method == "berth":
                    results = list(pool.map(lambda _: berth_create(server), range(args.concurrent)))
                    for _, pid in results:
                        berth_remove(server, pid)
                else:
                    ref = floor if method == "floor" else compose
                    # Ports are chosen before the threads start: choosing is not thread-safe.
                    specs = [reference_spec_new(taken) for _ in range(args.concurrent)]
                    results = list(pool.map(lambda spec: reference_create(ref, spec), specs))
                    for _, spec in results:
                        ref.down(spec)
            times[method]["concurrent"] = [elapsed for elapsed, _ in results]
            print(f"concurrent x{args.concurrent} {method}: {[round(t, 2) for t in times[method]['concurrent']]}")
            time.sleep(1)

    stats = {m: {mode: summary(v) for mode, v in modes.items()} for m, modes in times.items()}
    rows = []
    for mode in ("sequential", "concurrent"):
        floor_p50 = stats["floor"][mode]["p50"]
        compose_p50 = stats["compose"][mode]["p50"]
        for method in ("berth", "floor", "compose"):
            s = stats[method][mode]
            rows.append([mode, method, s["n"], s["p50"], s["p95"], s["p50"] / floor_p50, s["p50"] / compose_p50])
    rendered = table(
        "provision: request → running, db answers a query, api answers (seconds)",
        ["mode", "method", "n", "p50 s", "p95 s", "p50 / floor", "p50 / compose"],
        rows,
    )
    write_results("provision", {"stats": stats}, rendered)


if __name__ == "__main__":
    main()
