# The work queue (leads.work_queue): each person's leads set aside (snoozed or skipped
# with a reason) until a time, and a partial index on the activities a lead sends in
# (demo and quote requests, trial sign-ups, email replies, form submissions), newest first.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0023_lead_display_name_sort"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="QueueDeferral",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("until", models.DateTimeField()),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("snoozed", "Snoozed"),
                            ("worked", "Worked"),
                            ("wrong_person", "Wrong person"),
                            ("already_talking", "Already talking"),
                            ("not_now", "Not now"),
                            ("other", "Other"),
                        ],
                        max_length=20,
                    ),
                ),
                ("note", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "queue deferral",
            },
        ),
        migrations.AddIndex(
            model_name="activity",
            index=models.Index(
                condition=models.Q(
                    (
                        "type__in",
                        [
                            "demo_request",
                            "quote_request",
                            "trial_signup",
                            "email_reply",
                            "form_submission",
                        ],
                    )
                ),
                fields=["-occurred_at"],
                include=("lead", "type", "created_by"),
                name="activity_inbound_idx",
            ),
        ),
        migrations.AddField(
            model_name="queuedeferral",
            name="lead",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="leads.lead"
            ),
        ),
        migrations.AddField(
            model_name="queuedeferral",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="queuedeferral",
            constraint=models.UniqueConstraint(
                fields=("user", "lead"), name="queue_deferral_one_per_lead"
            ),
        ),
    ]
