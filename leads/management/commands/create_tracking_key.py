"""``manage.py create_tracking_key --name NAME``: a write key for the tracking endpoint."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leads.models import TrackingKey


class Command(BaseCommand):
    help = (
        "Create a write key for POST /v1/… (Segment-compatible tracking) and print it on "
        "the last line. Only its hash is stored: copy it now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Where the key is used, e.g. Website.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        name = name.strip()
        if not name:
            raise CommandError("Give the key a name.")
        key, secret = TrackingKey.objects.issue(name=name[:100])
        self.stdout.write(f"Created write key {key.pk} “{key.name}”. It is shown only once:")
        self.stdout.write(secret)
