from django.core.management.base import BaseCommand

from scoring.snapshots import scores_snapshot


class Command(BaseCommand):
    help = (
        "Record each lead's score where it changed since its latest snapshot (what the "
        "score trend compares with), as the nightly decay job does after the decay."
    )

    def handle(self, *args, **options) -> None:
        written = scores_snapshot()
        self.stdout.write(self.style.SUCCESS(f"{written:,} score snapshot(s) written."))
