"""dashboard: server time and query count of the projects list, a project page and GET /v1/projects
with 10, 1,000 and 10,000 projects in the database (rows only, no containers).

In-process through Django's test client, so "server time" is the whole request
inside Django (middleware, queries, templates) without a network hop.

    uv run python bench/dashboard.py [--sizes 10,1000,10000] [--requests 30]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RUN_ID, django_setup, summary, table, write_results  # noqa: E402


def fill(count: int, owner, *, health: str = "healthy") -> None:
    """Bring the table to `count` projects, quickly: one encrypted secret reused for every row."""
    from projects.models import Project

    have = Project.objects.count()
    template = Project(owner=owner, name="x", postgres_version="17", api_flavour="postgraphile")
    template.db_password = "bench-password"
    template.jwt_secret = "j" * 48
    rows = []
    for n in range(have, count):
        rows.append(Project(
            owner=owner, name=f"project {n}", postgres_version="17", api_flavour="postgraphile",
            db_port=20000 + n, api_port=40000 + n, status="running", health=health,
            db_password_encrypted=template.db_password_encrypted, jwt_secret_encrypted=template.jwt_secret_encrypted,
        ))  # fmt: skip
    Project.objects.bulk_create(rows, batch_size=1000)


def measure(client, path: str, headers: dict, requests: int) -> tuple[dict, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(path, **headers)  # warm-up
    times = []
    queries = 0
    status = 0
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get(path, **headers)
            times.append(time.perf_counter() - began)
        queries, status = len(captured), response.status_code
    return summary(times), queries, status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    django_setup(BERTH_DATA_DIR=f"/tmp/berth-bench-dashboard-{RUN_ID}", ALLOWED_HOSTS="testserver")
    from django.contrib.auth import get_user_model
    from django.test import Client

    from projects.models import Project
    from projects.services.accounts.tokens import api_token_create

    user = get_user_model().objects.create_user("bench", password="bench-password", is_staff=False)
    _, token = api_token_create(user=user, name="bench")
    client = Client()
    client.force_login(user)
    rows, data = [], {}
    for size in [int(s) for s in args.sizes.split(",")]:
        fill(size, user)
        one = Project.objects.order_by("id").first()
        for name, path, headers in [
            ("projects list", "/", {}),
            ("project page", f"/projects/{one.public_id}", {}),
            ("GET /v1/projects", "/v1/projects", {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
        ]:
            stats, queries, status = measure(client, path, headers, args.requests)
            assert status == 200, (path, status)
            data[f"{name} @ {size}"] = {"queries": queries, **stats}
            rows.append([name, size, queries, stats["p50"] * 1000, stats["p95"] * 1000])
            print(f"{name} with {size} projects: {queries} queries, p50 {stats['p50'] * 1000:.1f} ms")
    rendered = table(
        "dashboard: server time in Django, rows only (milliseconds)",
        ["view", "projects", "queries", "p50 ms", "p95 ms"],
        rows,
    )
    write_results("dashboard", {"results": data}, rendered)


if __name__ == "__main__":
    main()
