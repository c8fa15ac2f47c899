"""``manage.py duplicates_scan [--full]``: the nightly duplicate scan, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from leads.duplicates import duplicates_scan


class Command(BaseCommand):
    help = (
        "Compare the leads changed since the last scan (every lead with --full) with "
        "everyone and put the likely duplicates in the admin's review queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full", action="store_true", help="Compute every lead's keys again first."
        )

    def handle(self, *args: Any, full: bool, **options: Any) -> None:
        result = duplicates_scan(full=full)
        self.stdout.write(
            f"Compared {result.leads} lead(s): {result.pairs} likely duplicate pair(s), "
            f"{result.new_pairs} new."
        )
