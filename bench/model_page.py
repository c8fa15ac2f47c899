"""The scoring model's admin page with many rules: its size and server time.

    python bench/model_page.py [--rules 75] [--runs 15]

Builds, in its own database (``BENCH_DATABASE_URL``, default
``hotlist_bench_model_page``), a live model with ``--rules`` rules (fit, engagement
and negative ones, as a tuned model has), a few custom fields, 40 finished rescores
and a change history, then requests the model's change page and one rule's page
through Django's test ``Client`` as a marketer, with ``DEBUG=false`` settings, the real
middleware and templates. Prints the HTML size and the median server time of each.
The page's height is measured in a browser by tests/browser/test_model_page.py.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_model_page"
ENVIRONMENT = {
    "DEBUG": "false",
    "SECRET_KEY": "bench-model-page-" + secrets.token_hex(24),
    "LOG_LEVEL": "WARNING",
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=75)
    parser.add_argument("--runs", type=int, default=15, help="Timed requests of each page.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed requests first.")
    return parser.parse_args()


def build(rules: int):
    """A live model with ``rules`` rules, its rescores and history; the marketer."""
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from crm.models import Role, User
    from leads.models import ActivityType, CustomFieldDefinition
    from scoring import changes
    from scoring.models import ModelStatus, RescoreJob, RescoreStatus, Rule, ScoringModel

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    marketer = User.objects.create_user(username="marketer", password="pw", is_staff=True)
    marketer.groups.add(Group.objects.get(name=Role.MARKETER.label))
    for n in range(8):
        CustomFieldDefinition.objects.create(key=f"extra_{n}", label=f"Extra {n}")
    model = ScoringModel.objects.create(name="Standard", status=ModelStatus.ACTIVE, is_default=True)
    fit_fields = ["job_title", "seniority", "country", "company.industry", "custom.extra_1"]
    types = [t for t, _ in ActivityType.choices][:12]
    made = []
    for n in range(rules):
        points = -(5 + n % 20) if n % 7 == 6 else 5 + n % 30
        if n % 2:
            rule = Rule(
                model=model,
                name=f"Fit {n}",
                kind="fit",
                points=points,
                field=fit_fields[n % len(fit_fields)],
                operator="contains",
                value=f"value {n}",
            )
        else:
            rule = Rule(
                model=model,
                name=f"Engagement {n}",
                kind="engagement",
                points=points,
                activity_type=types[n % len(types)],
                target="url",
                match="contains",
                pattern=f"/page-{n}",
                max_per_day=1,
            )
        rule.full_clean()
        rule.save()
        made.append(rule)
    for rule in made[:40]:
        before = changes.snapshot(rule)
        rule.points += 1
        rule.save()
        changes.rule_change_record(rule=rule, before=before, by=marketer)
    for n in range(40):
        RescoreJob.objects.create(
            model=model,
            reason=f"Rule changed {n}",
            status=RescoreStatus.DONE,
            done=9000,
            total=9000,
        )
    return marketer, model, made[0]


def measure(client, url: str, args: argparse.Namespace) -> tuple[int, float, list[float]]:
    for _ in range(args.warmup):
        client.get(url, secure=True)
    times = []
    size = 0
    for _ in range(args.runs):
        start = time.perf_counter()
        response = client.get(url, secure=True)
        times.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        size = len(response.content)
    return size, statistics.median(times), times


def main() -> None:
    args = parse()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-model-page"))
    harness.drop_database(url)
    harness.setup_django(url)
    from django.db import connections
    from django.test import Client
    from django.urls import reverse

    marketer, model, rule = build(args.rules)
    client = Client()
    client.force_login(marketer)
    pages = {
        "model page": reverse("admin:scoring_scoringmodel_change", args=[model.pk]),
        "rule page": reverse("admin:scoring_rule_change", args=[rule.pk]),
    }
    print(harness.machine())
    print(f"{args.rules} rules, median of {args.runs} requests after {args.warmup} untimed")
    for name, page in pages.items():
        size, median, times = measure(client, page, args)
        print(
            f"{name}: {size / 1024:,.0f} KB, median {median * 1000:,.0f} ms "
            f"(min {min(times) * 1000:,.0f}, max {max(times) * 1000:,.0f})"
        )
    connections.close_all()
    harness.drop_database(url)


if __name__ == "__main__":
    main()
