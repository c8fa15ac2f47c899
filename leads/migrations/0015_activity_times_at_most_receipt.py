"""Activities stored with a time after their receipt (before the one time rule) are dated
as received and handed back to scoring.

Scoring passed such an activity over while marking it scored, so its points were never
given; ``scoring_verify`` then disagreed with the stored score once the time came. Dated
as received, as the rule now stores them, and with ``scored_at`` cleared, the sweeper
scores them like any activity that has waited for its turn. Nothing else changes.
"""

from django.db import migrations
from django.db.models import F


def date_as_received(apps, schema_editor):
    Activity = apps.get_model("leads", "Activity")
    Activity.objects.filter(occurred_at__gt=F("received_at")).update(
        occurred_at=F("received_at"), scored_at=None
    )


class Migration(migrations.Migration):
    dependencies = [("leads", "0014_notification_email_pending")]

    operations = [migrations.RunPython(date_as_received, migrations.RunPython.noop, elidable=True)]
