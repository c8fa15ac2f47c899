from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from reports.rollups import rule_matches_refresh, stale_lead_facts

# Stale leads named at most.
SHOWN = 20


class Command(BaseCommand):
    help = (
        "Count again the leads each scoring rule matches, per owner and day, for Rule "
        "effectiveness (beat does it nightly and after every rescore), then check that "
        "every lead's furthest funnel step and deal outcome match its stage history and "
        "deals. Exits with status 1 when the count fails (the old counts then stay) or a "
        "lead's facts differ."
    )

    def handle(self, *args, **options) -> None:
        try:
            rollup = rule_matches_refresh()
        except DatabaseError as error:
            raise CommandError(f"Rule matches not counted: {error}") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Rule matches counted: {rollup.rows:,} in {rollup.seconds:.1f} s, "
                f"as of {rollup.built_at:%Y-%m-%d %H:%M:%S %Z}."
            )
        )
        stale = stale_lead_facts()
        if stale:
            shown = ", ".join(str(pk) for pk in stale[:SHOWN])
            raise CommandError(
                f"{len(stale):,} lead(s) with a furthest step or deal outcome that differs from "
                f"their history and deals (ids {shown}{', …' if len(stale) > SHOWN else ''}); "
                "python manage.py lead_facts_refresh sets them again."
            )
        self.stdout.write(
            self.style.SUCCESS("Every lead's furthest step and deal outcome match its history.")
        )
