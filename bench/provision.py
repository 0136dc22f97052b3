"""provision: request → running project whose db answers a query and whose api answers.

Berth (through the API with ?wait, a real `manage.py up`) against the floor and
the compose way, interleaved in one run; N sequential, then N concurrent.

    uv run python bench/provision.py [--n 8] [--concurrent 5]
"""

import argparse
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BerthServer, Timer, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402


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
    return reference_spec(free_port(19250, 19499, taken), free_port(19750, 19999, taken))


def reference_create(ref, spec) -> tuple[float, object]:
    timer = Timer()
    ref.up(spec)
    return timer.elapsed, spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="sequential creates per method (default 8)")
    parser.add_argument("--concurrent", type=int, default=5, help="creates at once per method (default 5)")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop early after this long")
    args = parser.parse_args()
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
