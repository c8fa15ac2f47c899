from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from reports.rollups import rule_matches_refresh


class Command(BaseCommand):
    help = (
        "Rebuild the reports' rollup of rule matches from the score ledger (beat does it "
        "nightly). Exits with status 1 when the rebuild fails; the old rows then stay."
    )

    def handle(self, *args, **options) -> None:
        try:
            rollup = rule_matches_refresh()
        except DatabaseError as error:
            raise CommandError(f"Rule matches not rebuilt: {error}") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Rule matches rebuilt: {rollup.rows:,} rows in {rollup.seconds:.1f} s, "
                f"as of {rollup.built_at:%Y-%m-%d %H:%M:%S %Z}."
            )
        )
