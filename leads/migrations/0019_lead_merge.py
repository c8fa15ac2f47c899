# Merging duplicate leads (leads.merging) and finding them (leads.duplicates): the
# record of each merge that undoes it, the merged leads' ids kept as aliases, each
# lead's match keys in a narrow table with the indexes the nightly scan joins on, the
# review queue of pairs, and the one row of detection settings. Name similarity uses
# pg_trgm, whose extension leads.0008 created.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import leads.models.merge


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0018_lead_external_id"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DuplicateSettings",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name_similarity",
                    models.FloatField(
                        default=0.6,
                        help_text="How alike two names at one company must be to be suggested, 0.1 to 1 (trigram similarity on PostgreSQL; SQLite suggests equal names only).",
                    ),
                ),
                ("last_scan_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_scan_leads", models.PositiveIntegerField(default=0, editable=False)),
                ("last_scan_pairs", models.PositiveIntegerField(default=0, editable=False)),
            ],
            options={
                "verbose_name": "duplicate settings",
                "verbose_name_plural": "duplicate settings",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("pk", 1)), name="duplicatesettings_single_row"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("name_similarity__gte", 0.1), ("name_similarity__lte", 1)
                        ),
                        name="duplicatesettings_similarity_range",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="LeadMatchKey",
            fields=[
                (
                    "lead",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="match_key",
                        serialize=False,
                        to="leads.lead",
                    ),
                ),
                ("email_key", models.CharField(blank=True, max_length=254)),
                ("phone_key", models.CharField(blank=True, max_length=20)),
                ("name_key", models.CharField(blank=True, max_length=201)),
                ("company_key", models.CharField(blank=True, max_length=200)),
                ("lead_updated_at", models.DateTimeField()),
                ("scanned", models.BooleanField(default=False)),
            ],
            options={
                "verbose_name": "lead match key",
                "indexes": [
                    models.Index(
                        condition=models.Q(("email_key", ""), _negated=True),
                        fields=["email_key"],
                        name="matchkey_email_idx",
                    ),
                    models.Index(
                        condition=models.Q(("phone_key", ""), _negated=True),
                        fields=["phone_key"],
                        name="matchkey_phone_idx",
                    ),
                    models.Index(
                        condition=models.Q(
                            models.Q(("company_key", ""), _negated=True),
                            models.Q(("name_key", ""), _negated=True),
                        ),
                        fields=["company_key", "name_key"],
                        name="matchkey_company_name_idx",
                    ),
                    models.Index(
                        condition=models.Q(("scanned", False)),
                        fields=["lead"],
                        name="matchkey_unscanned_idx",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="LeadMerge",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "survivor_ref",
                    models.BigIntegerField(
                        help_text="The survivor's id, kept when its row is gone.",
                        verbose_name="survivor id",
                    ),
                ),
                (
                    "merged_ids",
                    models.JSONField(default=list, help_text="The ids of the leads merged in."),
                ),
                (
                    "fields",
                    models.JSONField(
                        default=dict,
                        encoder=leads.models.merge.ExactJSONEncoder,
                        help_text="Per field the survivor took: from which lead, its value before and after.",
                    ),
                ),
                (
                    "snapshots",
                    models.JSONField(
                        default=dict,
                        encoder=leads.models.merge.ExactJSONEncoder,
                        help_text="Each merged lead's row and product interests as they were.",
                    ),
                ),
                (
                    "moved",
                    models.JSONField(
                        default=dict,
                        encoder=leads.models.merge.ExactJSONEncoder,
                        help_text="Per kind of row, per merged lead, the ids that moved to the survivor (and what else each app changed to make room).",
                    ),
                ),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("undone_at", models.DateTimeField(blank=True, null=True)),
                (
                    "by",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "survivor",
                    models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="merges",
                        to="leads.lead",
                    ),
                ),
                (
                    "undone_by",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "lead merge",
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="LeadAlias",
            fields=[
                (
                    "alias_id",
                    models.BigIntegerField(
                        help_text="The merged lead's id.", primary_key=True, serialize=False
                    ),
                ),
                (
                    "lead",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="aliases",
                        to="leads.lead",
                    ),
                ),
                (
                    "merge",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="aliases",
                        to="leads.leadmerge",
                    ),
                ),
            ],
            options={
                "verbose_name": "lead alias",
                "verbose_name_plural": "lead aliases",
                "ordering": ["alias_id"],
            },
        ),
        migrations.CreateModel(
            name="DuplicatePair",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "reasons",
                    models.JSONField(
                        default=list,
                        help_text='The evidence: [{"kind": "email" | "phone" | "name_company", …}].',
                    ),
                ),
                ("score", models.FloatField(help_text="How sure, 0 to 1: 1 for the same mailbox.")),
                (
                    "sure",
                    models.BooleanField(
                        default=False,
                        help_text="The same mailbox: merged in bulk without a look at each.",
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("open", "To review"),
                            ("not_duplicate", "Not a duplicate"),
                            ("merged", "Merged"),
                        ],
                        default="open",
                        max_length=20,
                    ),
                ),
                ("found_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "lead_a",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="leads.lead",
                    ),
                ),
                (
                    "lead_b",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="leads.lead",
                    ),
                ),
                (
                    "merge",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="pairs",
                        to="leads.leadmerge",
                    ),
                ),
            ],
            options={
                "verbose_name": "duplicate pair",
                "ordering": ["-score", "-id"],
            },
        ),
        migrations.AddIndex(
            model_name="leadmerge",
            index=models.Index(fields=["survivor_ref", "-at"], name="leadmerge_survivor_idx"),
        ),
        migrations.AddIndex(
            model_name="duplicatepair",
            index=models.Index(fields=["status", "-score"], name="duplicatepair_queue_idx"),
        ),
        migrations.AddIndex(
            model_name="duplicatepair",
            index=models.Index(fields=["lead_b"], name="duplicatepair_lead_b_idx"),
        ),
        migrations.AddConstraint(
            model_name="duplicatepair",
            constraint=models.UniqueConstraint(
                fields=("lead_a", "lead_b"), name="duplicatepair_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="duplicatepair",
            constraint=models.CheckConstraint(
                condition=models.Q(("lead_a__lt", models.F("lead_b"))), name="duplicatepair_ordered"
            ),
        ),
    ]
