"""``manage.py duplicates_scan [--full]``: the nightly duplicate scan of leads and
companies, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from leads.company_duplicates import company_duplicates_scan
from leads.duplicates import duplicates_scan


class Command(BaseCommand):
    help = (
        "Compare the leads, then the companies, changed since the last scan (every one "
        "with --full) with everyone and put the likely duplicates in the admin's review "
        "queues."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="Compute every lead's keys again first and compare every company again.",
        )

    def handle(self, *args: Any, full: bool, **options: Any) -> None:
        result = duplicates_scan(full=full)
        self.stdout.write(
            f"Compared {result.leads} lead(s): {result.pairs} likely duplicate pair(s), "
            f"{result.new_pairs} new."
        )
        companies = company_duplicates_scan(full=full)
        self.stdout.write(
            f"Compared {companies.companies} company record(s): {companies.pairs} likely "
            f"duplicate pair(s), {companies.new_pairs} new."
        )
