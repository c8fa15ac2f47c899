from django.core.management.base import BaseCommand, CommandError, CommandParser

from leads.models import Company
from scoring.accounts import accounts_refresh, accounts_refresh_all


class Command(BaseCommand):
    help = (
        "Sum each company's account score per scoring model again from its people's "
        "scores, as the nightly job does; --company for some companies only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--company",
            type=int,
            action="append",
            dest="companies",
            metavar="ID",
            help="Only this company (repeat for more).",
        )

    def handle(self, *args, **options) -> None:
        companies = options["companies"]
        if companies:
            found = set(Company.objects.filter(pk__in=companies).values_list("pk", flat=True))
            missing = sorted(set(companies) - found)
            if missing:
                raise CommandError(f"No company {', '.join(map(str, missing))}: nothing done.")
            written = accounts_refresh(company_ids=companies)
        else:
            written = accounts_refresh_all()
        self.stdout.write(self.style.SUCCESS(f"{written:,} account score(s) written."))
