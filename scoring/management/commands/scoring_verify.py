from django.core.management.base import BaseCommand, CommandError

from scoring.verification import scores_verify


class Command(BaseCommand):
    help = (
        "Recompute every lead from its activities and the active rules and report each lead "
        "whose stored ledger or score differs. Exits with status 1 on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=50, help="Differences to print at most.")

    def handle(self, *args, limit: int, **options) -> None:
        count = 0
        for difference in scores_verify():
            count += 1
            if count <= limit:
                self.stdout.write(
                    f"lead {difference.lead_id}: {difference.what}: stored {difference.stored!r}, "
                    f"expected {difference.expected!r}"
                )
        if count:
            raise CommandError(f"{count} difference(s) between stored and recomputed scores.")
        self.stdout.write(self.style.SUCCESS("Every stored score matches its ledger and rules."))
