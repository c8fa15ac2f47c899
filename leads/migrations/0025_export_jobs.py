# Export jobs (leads.export_jobs): a large list of leads written to a file by a worker
# and downloaded when ready; notifications of the kind "export" tell its requester.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0024_queue_deferrals"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="kind",
            field=models.CharField(
                choices=[
                    ("handoff", "Hand-off"),
                    ("escalation", "Escalation"),
                    ("surge", "Score surge"),
                    ("task", "Task"),
                    ("rejection", "Rejected hand-off"),
                    ("export", "Export"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="ExportJob",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("source", models.CharField(max_length=20)),
                (
                    "query",
                    models.TextField(
                        blank=True, help_text="The list's query string: filters and order."
                    ),
                ),
                ("file_format", models.CharField(max_length=10)),
                (
                    "columns",
                    models.JSONField(default=list, help_text="The file's column names, in order."),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Being written"),
                            ("done", "Ready"),
                            ("failed", "Failed"),
                            ("expired", "Expired"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("total_rows", models.PositiveIntegerField(blank=True, null=True)),
                ("rows_written", models.PositiveIntegerField(default=0)),
                (
                    "file_name",
                    models.CharField(
                        blank=True, help_text="Relative to EXPORT_DIR.", max_length=200
                    ),
                ),
                ("file_size", models.BigIntegerField(default=0)),
                (
                    "error",
                    models.TextField(blank=True, help_text="Why the job failed, for the person."),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("queued_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("progress_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "requested_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["status", "queued_at"], name="exportjob_status_idx"),
                    models.Index(
                        fields=["requested_by", "-created_at"], name="exportjob_requester_idx"
                    ),
                ],
            },
        ),
    ]
