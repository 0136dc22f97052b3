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

`--levels 4,8` measures concurrent cold creates only, at several levels side by
side in one run: one Berth per level, with as many workers as creates at once
(`BERTH_WORKERS` = the level), each on its own slice of the bench's ports and
its own network pool, all started before the first batch. Each round runs, per
level, N creates at once through Berth and N through the floor, the order
rotated; every batch records its load average and the CPU seconds spent by
Berth's processes, the engine's daemons and the stack's containers.

    BENCH_PORTS=19200-19599 uv run python bench/provision.py --levels 4,8 [--rounds 3] [--web-port 8795]
"""

import argparse
import ipaddress
import os
import secrets
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    BENCH_ENV, BERTH_API_PORTS, BERTH_DB_PORTS, LABEL, REF_API_PORTS, REF_DB_PORTS, BerthServer, Timer, cleanup_on_exit, django_setup,
    percentile, summary, table, write_results,
)  # fmt: skip


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


# --- --levels: concurrent creates side by side -------------------------------

TICK = os.sysconf("SC_CLK_TCK")
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy", "runc")


def _proc_stat(pid: int) -> tuple[int, str, float, float] | None:
    """(ppid, comm, own CPU seconds, reaped children's CPU seconds) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), comm, (utime + stime) / TICK, (cutime + cstime) / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_snapshot(roots: dict[str, int]) -> dict[tuple[str, int], float]:
    """CPU seconds now: each Berth's process tree, by role (web, worker, sync, backups, up), and the engine's daemons.

    Keys are (group, pid); a delta between two snapshots counts processes
    that lived through both, and those born between them from zero.
    """
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(int(entry))) is not None:
            stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[tuple[str, int], float] = {}
    for name, root in roots.items():
        todo = [root]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            if pid not in stats:
                continue
            line = _cmdline(pid)
            role = next((r for r in ("gunicorn", "worker", "sync_projects", "backup_projects") if r in line), "up")
            found[(f"{name} {role}", pid)] = stats[pid][2]
    for pid, (_ppid, comm, own, reaped) in stats.items():
        if comm in ENGINE_PROCESSES:
            found[("engine", pid)] = own + reaped
    return found


def cpu_delta(before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]) -> dict[str, float]:
    groups: dict[str, float] = {}
    for key, value in after.items():
        groups[key[0]] = groups.get(key[0], 0.0) + max(0.0, value - before.get(key, 0.0))
    return groups


def containers_cpu(names: list[str]) -> float:
    """CPU seconds the named containers have used (cgroup v1 cpuacct; their execs included)."""
    import docker

    api = docker.from_env().api
    total = 0.0
    for name in names:
        try:
            cid = api.inspect_container(name)["Id"]
        except docker.errors.NotFound:
            continue
        for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            if path.endswith("cpuacct.usage"):
                total += int(text) / 1e9
            else:
                total += int(text.split()[1]) / 1e6  # usage_usec
            break
    return total


def machine_busy() -> float:
    """CPU seconds all cores have been busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def berth_create_or_fail(server: BerthServer) -> tuple[float | None, str]:
    """berth_create, but a create that does not settle running (at a high load, BERTH_READY_TIMEOUT) is a failure counted, not the end of the run."""
    from projects.runtime.probes import ProbeFailed, api_answers, db_answers

    timer = Timer()
    code, body = server.request("POST", "/v1/projects?wait=120", {"name": f"bench-{secrets.token_hex(4)}"})
    if code not in (201, 202) or "project_id" not in body:
        raise RuntimeError(f"create refused: {code} {body}")
    if code != 201 or body.get("status") != "running":
        print(f"  a create did not settle running: {code} {body.get('status')}: {body['operation'].get('error')}")
        return None, body["project_id"]
    try:
        db_answers(project_spec(body))
        api_answers(project_spec(body))
    except ProbeFailed as exc:
        print(f"  a create said running but does not answer: {exc}")
        return None, body["project_id"]
    return timer.elapsed, body["project_id"]


def floor_create_or_fail(floor, spec) -> tuple[float | None, object]:
    from projects.runtime.probes import ProbeFailed

    try:
        return reference_create(floor, spec)
    except ProbeFailed as exc:
        print(f"  a floor create did not answer in {floor.ready_timeout_s:.0f} s: {exc}")
        return None, spec


def berth_delete_fast(server: BerthServer, project_id: str) -> None:
    """Containers gone through Berth; its network and volume removed behind its back (this Berth is thrown away after the run)."""
    import docker

    server.request("DELETE", f"/v1/projects/{project_id}?wait=60")
    api = docker.from_env().api
    label = [f"berth.project={project_id}", LABEL]
    for network in api.networks(filters={"label": label}):
        api.remove_network(network["Id"])
    for volume in api.volumes(filters={"label": label}).get("Volumes") or []:
        api.remove_volume(volume["Name"])


def levels_main(args: argparse.Namespace) -> None:
    levels = [int(v) for v in args.levels.split(",")]
    django_setup()
    from bench.references import Floor

    floor = Floor()
    floor.ready_timeout_s = 110  # as the Berths' BERTH_READY_TIMEOUT below
    floor.with_healthcheck = args.floor_healthcheck
    # Each Berth gets its slice of the bench's Berth port ranges, its own data directory and network pool.
    db_slice = (BERTH_DB_PORTS[1] - BERTH_DB_PORTS[0] + 1) // len(levels)
    api_slice = (BERTH_API_PORTS[1] - BERTH_API_PORTS[0] + 1) // len(levels)
    envs = {}
    for k, level in enumerate(levels):
        db_low, api_low = BERTH_DB_PORTS[0] + k * db_slice, BERTH_API_PORTS[0] + k * api_slice
        envs[level] = {
            "BERTH_DATA_DIR": f"{BENCH_ENV['BERTH_DATA_DIR']}-w{level}",
            "BERTH_DB_PORTS": f"{db_low}-{db_low + db_slice - 1}",
            "BERTH_API_PORTS": f"{api_low}-{api_low + api_slice - 1}",
            "BERTH_NETWORK_POOL": str(list(ipaddress.IPv4Network(args.network_pool).subnets(new_prefix=20))[k]),
            # Every create of a batch waits in ?wait (the bound is per web process; 4 by default).
            "BERTH_MAX_WAITING": str(level),
            # On a loaded shared machine 8 initdbs at once can take over a minute; ?wait holds up to 120 s.
            "BERTH_READY_TIMEOUT": "110",
        }
    samples: dict[tuple[int, str], list[float]] = {(lvl, m): [] for lvl in levels for m in ("berth", "floor")}
    batches: list[dict] = []
    began = time.monotonic()
    taken: set[int] = set()
    with cleanup_on_exit(), ExitStack() as stack:
        servers = {}
        for k, level in enumerate(levels):
            servers[level] = stack.enter_context(BerthServer(port=args.web_port + k, workers=level, env=envs[level]))
            print(f"Berth for {level} at once: {servers[level].url}, BERTH_WORKERS {level}, {envs[level]}")

        def batch(level: int, method: str, record: bool) -> None:
            roots = {f"berth{lvl}": s.process.pid for lvl, s in servers.items() if s.process}
            load = os.getloadavg()
            before, busy, own = cpu_snapshot(roots), machine_busy(), sum(os.times()[:2])
            wall = Timer()
            with ThreadPoolExecutor(level) as pool:
                if method == "berth":
                    results = list(pool.map(lambda _: berth_create_or_fail(servers[level]), range(level)))
                else:
                    specs = [reference_spec_new(taken) for _ in range(level)]
                    results = list(pool.map(lambda spec: floor_create_or_fail(floor, spec), specs))
            wall_s, busy_s = wall.elapsed, machine_busy() - busy
            cpu = cpu_delta(before, cpu_snapshot(roots))
            # This process: the requests and outside probes of Berth's creates, the whole floor (its SDK calls and probes).
            cpu["bench"] = sum(os.times()[:2]) - own
            if method == "berth":
                for svc in ("db", "api"):
                    cpu[f"containers {svc}"] = containers_cpu([f"project_{pid}_{svc}" for _, pid in results])
                with ThreadPoolExecutor(level) as pool:
                    list(pool.map(lambda r: berth_delete_fast(servers[level], r[1]), results))
            else:
                for svc in ("db", "api"):
                    cpu[f"containers {svc}"] = containers_cpu([getattr(spec, svc).name for _, spec in results])
                for _, spec in results:
                    floor.down(spec)
                    taken.discard(spec.db.host_port)
                    taken.discard(spec.api.host_port)
            times = [elapsed for elapsed, _ in results if elapsed is not None]
            failed = len(results) - len(times)
            mine = f"berth{level}"
            entry = {
                "level": level, "method": method, "times": times, "wall_s": wall_s, "load_before": load, "load_after": os.getloadavg(),
                "machine_busy_s": busy_s, "cpu_s": cpu, "recorded": record, "failed": failed,
                "berth_cpu_s": sum(v for g, v in cpu.items() if g.startswith(mine + " ")) if method == "berth" else 0.0,
            }
            batches.append(entry)
            if record:
                samples[(level, method)] += times
            shown = ", ".join(f"{g} {v:.2f}" for g, v in sorted(cpu.items()) if v >= 0.05)
            print(f"{'' if record else 'warm-up '}{level} at once, {method}: p50 {percentile(times, 0.5):.2f} s, max {max(times, default=0):.2f} s, "
                  f"{failed} failed, "
                  f"load {load[0]:.1f}; CPU s: machine {busy_s:.1f}, {shown}")
            time.sleep(1)

        # Warm-up: every worker imports its code and the page cache holds the images.
        for level in levels:
            batch(level, "berth", False)
            batch(level, "floor", False)
        for r in range(args.rounds):
            if time.monotonic() - began > args.max_seconds:
                print("time limit reached; stopping early")
                break
            for level in levels[r % len(levels):] + levels[: r % len(levels)]:
                for method in (["berth", "floor"] if (r + levels.index(level)) % 2 == 0 else ["floor", "berth"]):
                    batch(level, method, True)
        uptime = Path("/proc/loadavg").read_text().split()[:3]

    rows = []
    stats = {f"{lvl} {m}": summary(v) for (lvl, m), v in samples.items()}
    for level in levels:
        f50, f95 = stats[f"{level} floor"]["p50"], stats[f"{level} floor"]["p95"]
        for method in ("berth", "floor"):
            s = stats[f"{level} {method}"]
            recorded = [b for b in batches if b["recorded"] and b["level"] == level and b["method"] == method]
            def mean(key: str) -> float:
                return statistics.fmean(b["cpu_s"].get(key, 0.0) for b in recorded) if recorded else float("nan")
            engine, dbs, apis = mean("engine"), mean("containers db"), mean("containers api")
            own = statistics.fmean(b["berth_cpu_s"] for b in recorded) if recorded and method == "berth" else 0.0
            loads = [b["load_before"][0] for b in recorded]
            failures = sum(b["failed"] for b in recorded)
            rows.append([level, method, f"{s['n']}" + (f" (+{failures} failed)" if failures else ""), s["p50"], s["p95"], s["p50"] / f50, s["p95"] / f95, own, engine, dbs, apis,
                         f"{min(loads):.1f}–{max(loads):.1f}" if loads else "-"])  # fmt: skip
    rendered = table(
        f"provision --levels {args.levels}: N cold creates at once (BERTH_WORKERS N) against the floor"
        f"{' with the db healthcheck' if args.floor_healthcheck else ''}, request → running (seconds)",
        ["at once", "method", "n", "p50 s", "p95 s", "p50 / floor", "p95 / floor", "CPU s/batch: Berth", "engine", "db containers", "api containers", "load (1 min)"],
        rows,
    )
    rendered += f"\n\nload average at the end (1, 5, 15 min): {', '.join(uptime)}; {len(batches)} batches ({sum(1 for b in batches if not b['recorded'])} warm-up)"
    write_results("provision-levels" + ("-floor-healthcheck" if args.floor_healthcheck else ""), {"levels": levels, "stats": stats, "batches": batches, "servers": envs}, rendered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="sequential creates per method (default 8)")
    parser.add_argument("--concurrent", type=int, default=5, help="creates at once per method (default 5)")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop early after this long")
    parser.add_argument("--pool", action="store_true", help="measure the warm pool: hits and cold creates in one run, and refill")
    parser.add_argument("--ports", default="19000-19249,19500-19749", help="--pool: Berth's db and api port ranges")
    parser.add_argument("--web-port", type=int, default=8790, help="--pool: the port Berth serves on; --levels: the first Berth's (the next ones on the ports after it)")
    parser.add_argument("--refill-rounds", type=int, default=3, help="--pool: rounds of quick hits then refill (default 3)")
    parser.add_argument("--levels", default="", help="concurrent creates only, at these levels side by side (e.g. 4,8), BERTH_WORKERS = level")
    parser.add_argument("--rounds", type=int, default=3, help="--levels: rounds of one batch per level and method (default 3)")
    parser.add_argument("--floor-healthcheck", action="store_true",
                        help="--levels: the floor's db gets Berth's pg_isready healthcheck (its share of the difference)")
    parser.add_argument("--network-pool", default="10.246.0.0/16", help="--levels: the Berths' subnets (a /20 each)")
    args = parser.parse_args()
    if args.levels:
        levels_main(args)
        return
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
