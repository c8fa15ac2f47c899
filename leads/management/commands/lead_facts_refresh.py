from django.core.management.base import BaseCommand

from leads.models import Lead


class Command(BaseCommand):
    help = (
        "Set every lead's furthest funnel step and deal outcome (what the reports count by) "
        "from its stage history and deals, writing only the leads that differ: after "
        "stages or deals were written around the models, e.g. by plain SQL."
    )

    def handle(self, *args, **options) -> None:
        rows = Lead.objects.refresh_facts()
        self.stdout.write(self.style.SUCCESS(f"{rows:,} lead(s) set again."))
