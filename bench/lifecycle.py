"""lifecycle: stop, start, delete, restore through Berth's API (?wait) against the floor.

The floor does the same engine work with bare low-level SDK calls: stop both
containers; start both and probe; remove both; recreate both stopped.

    uv run python bench/lifecycle.py [--n 8]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REF_API_PORTS, REF_DB_PORTS, BerthServer, Timer, cleanup_on_exit, django_setup, summary, table, write_results  # noqa: E402
from bench.provision import berth_create  # noqa: E402

ACTIONS = ("stop", "start", "delete", "restore")


def berth_action(server: BerthServer, project_id: str, action: str) -> float:
    method, path = ("DELETE", f"/v1/projects/{project_id}") if action == "delete" else ("POST", f"/v1/projects/{project_id}/{action}")
    timer = Timer()
    code, body = server.request(method, f"{path}?wait=120")
    elapsed = timer.elapsed
    expected = {"stop": "stopped", "start": "running", "delete": "deleted", "restore": "stopped"}[action]
    if code != 200 or body["status"] != expected:
        raise RuntimeError(f"{action} did not settle {expected}: {code} {body}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="rounds of stop, start, delete, restore (default 8)")
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    django_setup()
    from bench.references import Floor, free_port, reference_spec

    floor = Floor()
    berth_times = {a: [] for a in ACTIONS}
    floor_times = {a: [] for a in ACTIONS}
    began = time.monotonic()
    with cleanup_on_exit(), BerthServer() as server:
        _, project_id = berth_create(server)
        spec = reference_spec(free_port(*REF_DB_PORTS, set()), free_port(*REF_API_PORTS, set()))
        floor.up(spec)
        floor_steps = {
            "stop": floor.stop,
            "start": floor.start,
            "delete": floor.remove_containers,
            "restore": floor.recreate_stopped,
        }
        for i in range(args.n):
            if time.monotonic() - began > args.max_seconds:
                print("time limit reached; stopping early")
                break
            # Each round: stop, start (both running again), delete, restore (stopped), then start untimed.
            for action in ACTIONS:
                for first in (("berth", "floor") if i % 2 == 0 else ("floor", "berth")):
                    if first == "berth":
                        berth_times[action].append(berth_action(server, project_id, action))
                    else:
                        timer = Timer()
                        floor_steps[action](spec)
                        floor_times[action].append(timer.elapsed)
            berth_action(server, project_id, "start")
            floor.start(spec)
            print(f"round {i + 1}/{args.n}: " + ", ".join(f"{a} {berth_times[a][-1]:.2f}/{floor_times[a][-1]:.2f}" for a in ACTIONS))
        berth_action(server, project_id, "delete")
        server.request("POST", f"/v1/projects/{project_id}/purge?wait=60", {"confirm": project_id})
        floor.down(spec)

    stats = {"berth": {a: summary(v) for a, v in berth_times.items()}, "floor": {a: summary(v) for a, v in floor_times.items()}}
    rows = [
        [a, stats["berth"][a]["n"], stats["berth"][a]["p50"], stats["berth"][a]["p95"], stats["floor"][a]["p50"],
         stats["floor"][a]["p95"], stats["berth"][a]["p50"] / stats["floor"][a]["p50"]]
        for a in ACTIONS
    ]  # fmt: skip
    rendered = table(
        "lifecycle: request → settled (seconds)",
        ["action", "n", "berth p50", "berth p95", "floor p50", "floor p95", "p50 / floor"],
        rows,
    )
    write_results("lifecycle", {"stats": stats}, rendered)


if __name__ == "__main__":
    main()
