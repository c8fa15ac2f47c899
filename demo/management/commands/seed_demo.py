"""``manage.py seed_demo``: a deterministic demo world to click through, score and benchmark."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from demo.cast import DEMO_USERS
from demo.config import (
    COPY_THRESHOLD,
    DEFAULT_ACTIVITIES_PER_LEAD,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEADS,
    DEFAULT_SEED,
    DEMO_PASSWORD,
    DemoWorldExists,
)
from demo.nurturing import seed_starter_sequences
from demo.scoring import seed_starter_model
from demo.world import DemoSummary, demo_seed, parse_anchor
from leads.models import Activity, Lead
from scoring.rescore_jobs import model_rescore_in_process


class Command(BaseCommand):
    help = (
        "Create the demo users and a deterministic world of companies, leads, activities, "
        "deals, tasks and notes. The same --seed, --leads, --activities-per-lead and --now "
        "give the same world."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--leads", type=int, default=DEFAULT_LEADS, help="How many leads.")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when any lead exists."
        )
        parser.add_argument(
            "--activities-per-lead",
            type=float,
            default=DEFAULT_ACTIVITIES_PER_LEAD,
            help="Average activities per lead.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help="Leads generated and written per chunk (and rows per INSERT).",
        )
        parser.add_argument(
            "--now",
            type=parse_anchor,
            default=None,
            help="Anchor for every time, ISO 8601 (default: the start of today, UTC).",
        )
        parser.add_argument(
            "--no-scoring",
            action="store_true",
            help="Skip the starter scoring model and the initial scoring of every lead.",
        )
        parser.add_argument(
            "--copy",
            action="store_true",
            default=None,
            help=f"Write with PostgreSQL COPY even below {COPY_THRESHOLD:,} leads.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["leads"] < 0 or options["batch_size"] < 1:
            raise CommandError("--leads must be 0 or more and --batch-size at least 1.")
        if options["if_empty"] and Lead.objects.exists():
            self.stdout.write("Leads exist already; seed_demo --if-empty did nothing.")
            return
        now = options["now"]
        try:
            summary = demo_seed(
                leads=options["leads"],
                seed=options["seed"],
                now=parse_anchor(now) if now is not None else None,
                activities_per_lead=options["activities_per_lead"],
                batch_size=options["batch_size"],
                copy=options["copy"] or None,
            )
        except DemoWorldExists as exc:
            raise CommandError(
                f"{exc} Seed an empty database, or pass --if-empty to skip quietly."
            ) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self._report(summary, options["seed"])
        seed_starter_sequences()
        if not options["no_scoring"]:
            self._score()

    def _score(self) -> None:
        """Install the starter model and score the new world once, in this process."""
        model = seed_starter_model()
        job = model_rescore_in_process(model=model, reason="Demo world seeded")
        if job is None:
            raise CommandError("Another rescore of the starter model claimed its job first.")
        # The world is being built and nothing else writes yet, so every stored activity
        # has just been applied: close the outbox instead of leaving it to the sweeper.
        Activity.objects.filter(scored_at__isnull=True).update(scored_at=timezone.now())
        hot = Lead.objects.filter(band="hot").count()
        self.stdout.write(
            f"  scored {job.done:,} leads with “{model}” ({job.changed_entries:,} ledger "
            f"entries); {hot:,} are hot"
        )

    def _report(self, summary: DemoSummary, seed: int) -> None:
        how = "COPY" if summary.used_copy else "bulk inserts"
        deals = summary.deals
        stages = ", ".join(f"{stage} {n:,}" for stage, n in sorted(summary.stages.items()))
        logins = ", ".join(user.username for user in DEMO_USERS)
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded the demo world (seed {seed}) in {summary.seconds:.1f} s with {how}."
            )
        )
        self.stdout.write(
            f"  {summary.companies:,} companies, {summary.leads:,} leads, "
            f"{summary.activities:,} activities; deals won {deals['won']:,}, "
            f"lost {deals['lost']:,}, open {deals['open']:,}"
        )
        self.stdout.write(f"  stages: {stages}")
        self.stdout.write(f'  sign in as {logins}: password "{DEMO_PASSWORD}"')
