"""What the benchmarks share: an isolated Berth environment, a label, timing, tables, JSON.

Every benchmark talks only to 127.0.0.1, labels everything it creates with
`berth.bench=<run>` and removes exactly that when it ends (also on Ctrl-C).
"""

import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RUN_ID = secrets.token_hex(3)
LABEL = f"berth.bench={RUN_ID}"

# The ports a run may use (BENCH_PORTS, default 19000-19999; give each
# benchmark running at once on one engine its own): Berth's db ports, the
# references' db ports, Berth's api ports, the references' api ports, one
# quarter each; the last port of all is the benchmark Berth's web server.
_low, _high = (int(p) for p in os.environ.get("BENCH_PORTS", "19000-19999").split("-"))
_q = (_high - _low) // 4
BERTH_DB_PORTS = (_low, _low + _q - 1)
REF_DB_PORTS = (_low + _q, _low + 2 * _q - 1)
BERTH_API_PORTS = (_low + 2 * _q, _low + 3 * _q - 1)
REF_API_PORTS = (_low + 3 * _q, _high - 1)
WEB_PORT = _high

# A Berth on its own images (`manage.py images build`), on ports away from a development Berth's and the tests'.
BENCH_ENV = {
    "BERTH_DATA_DIR": f"/tmp/berth-bench-{RUN_ID}",
    "BERTH_POSTGRES_IMAGES": "15=berth/postgres:15,17=berth/postgres:17",
    "BERTH_DEFAULT_POSTGRES_VERSION": "17",
    "BERTH_POSTGRAPHILE_IMAGE": "berth/postgraphile:4",
    "BERTH_DEFAULT_API": "postgraphile",
    "BERTH_PUBLIC_HOST": "127.0.0.1",
    "BERTH_DB_PORTS": "%d-%d" % BERTH_DB_PORTS,  # the references (bench/references.py) use REF_*_PORTS
    "BERTH_API_PORTS": "%d-%d" % BERTH_API_PORTS,
    "BERTH_EXTRA_LABELS": LABEL,
    "BERTH_PULL_IMAGES": "0",
    "BERTH_WARM_POOL": "",  # the cold path, unless a benchmark measures the pool (provision.py --pool)
    "DJANGO_SETTINGS_MODULE": "controlplane.settings",
}


def django_setup(**extra: str) -> None:
    """Configure Django in this process for the benchmark's own data directory."""
    os.environ.update({**BENCH_ENV, **extra})
    Path(os.environ["BERTH_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def engine_cleanup() -> list[str]:
    import docker

    from tests.engine import engine_cleanup as labelled_cleanup  # one cleanup for tests and benchmarks

    return labelled_cleanup(docker.from_env(), LABEL)


@contextmanager
def cleanup_on_exit():
    try:
        yield
    finally:
        removed = engine_cleanup()
        if removed:
            print(f"cleaned up {len(removed)} engine object(s) labelled {LABEL}")


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "mean": statistics.fmean(values) if values else float("nan"),
        "values": values,
    }


def machine() -> dict:
    import docker

    info = docker.from_env().info()
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": info.get("ServerVersion"),
        "storage_driver": info.get("Driver"),
        "cgroup": info.get("CgroupVersion"),
    }


def table(title: str, header: list[str], rows: list[list]) -> str:
    def fmt(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    cells = [header, *[[fmt(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"## {title}", "", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def write_results(name: str, data: dict, rendered: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    data = {"benchmark": name, "run": RUN_ID, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(rendered + "\n")
    print(rendered)
    print(f"\nwritten: bench/results/{name}.json, bench/results/{name}.md")


class BerthServer:
    """A real Berth (`manage.py up`: gunicorn + workers + watcher) on 127.0.0.1, for API benchmarks."""

    def __init__(self, port: int = WEB_PORT, workers: int = 4, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.workers = workers
        self.env = env or {}  # over BENCH_ENV (e.g. the pool mode's BERTH_WARM_POOL)
        self.process: subprocess.Popen | None = None
        self.token = ""

    def __enter__(self) -> "BerthServer":
        env = {**os.environ, **BENCH_ENV, "BERTH_WORKERS": str(self.workers), **self.env}
        Path(env["BERTH_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        log = open(Path(env["BERTH_DATA_DIR"]) / "up.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "up", "--bind", f"127.0.0.1:{self.port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        # Migrations on a loaded machine can take minutes.
        deadline = time.monotonic() + 240
        import urllib.request

        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        else:
            self.__exit__()  # never leave a Berth running behind a failed start
            raise RuntimeError(f"Berth did not start; see {env['BERTH_DATA_DIR']}/up.log")
        self.token = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "create_api_token", "admin"],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout.strip()  # fmt: skip
        time.sleep(2)  # let every worker reach its polling loop
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(2)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 150) -> tuple[int, dict]:
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)
