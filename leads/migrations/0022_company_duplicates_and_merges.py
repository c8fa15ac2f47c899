# Finding duplicate companies (leads.company_duplicates) and merging them
# (leads.company_merging): each company's match keys (its name, the words of its name,
# the domains that name it) in narrow tables with the indexes the nightly scan joins on,
# the review queue of company pairs, the record of each company merge that undoes it, the
# merged companies' ids kept as aliases, and the company name threshold beside the lead
# one in the detection settings. Name similarity uses pg_trgm, whose extension
# leads.0008 created.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import leads.models.merge


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0021_deal_pipeline"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CompanyAlias",
            fields=[
                (
                    "alias_id",
                    models.BigIntegerField(
                        help_text="The merged company's id.", primary_key=True, serialize=False
                    ),
                ),
            ],
            options={
                "verbose_name": "company alias",
                "verbose_name_plural": "company aliases",
                "ordering": ["alias_id"],
            },
        ),
        migrations.CreateModel(
            name="CompanyDomainKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("domain", models.CharField(max_length=253)),
                (
                    "web",
                    models.BooleanField(
                        default=False,
                        help_text="The company's own website, not only its leads' addresses.",
                    ),
                ),
            ],
            options={
                "verbose_name": "company domain key",
            },
        ),
        migrations.CreateModel(
            name="CompanyDuplicatePair",
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
                        help_text='The evidence: [{"kind": "domain" | "mail_domain" | "name", "score": …, "value": the domain shared}].',
                    ),
                ),
                ("score", models.FloatField(help_text="How sure, 0 to 1: 1 for the same website.")),
                (
                    "sure",
                    models.BooleanField(
                        default=False,
                        help_text="The same website: merged in bulk without a look at each.",
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
            ],
            options={
                "verbose_name": "duplicate company pair",
                "ordering": ["-score", "-id"],
            },
        ),
        migrations.CreateModel(
            name="CompanyMatchKey",
            fields=[
                (
                    "company",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="match_key",
                        serialize=False,
                        to="leads.company",
                    ),
                ),
                ("name_key", models.CharField(blank=True, max_length=200)),
                ("scanned", models.BooleanField(default=False)),
            ],
            options={
                "verbose_name": "company match key",
            },
        ),
        migrations.CreateModel(
            name="CompanyMerge",
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
                    models.JSONField(default=list, help_text="The ids of the companies merged in."),
                ),
                (
                    "fields",
                    models.JSONField(
                        default=dict,
                        encoder=leads.models.merge.ExactJSONEncoder,
                        help_text="Per field the survivor took: from which company, its value before and after.",
                    ),
                ),
                (
                    "snapshots",
                    models.JSONField(
                        default=dict,
                        encoder=leads.models.merge.ExactJSONEncoder,
                        help_text="Each merged company's row as it was.",
                    ),
                ),
                (
                    "moved",
                    models.JSONField(
                        default=dict,
                        help_text="Per kind of row, per merged company, the ids that moved to the survivor.",
                    ),
                ),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                ("undone_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "company merge",
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="CompanyNameWord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("word", models.CharField(max_length=200)),
            ],
            options={
                "verbose_name": "company name word",
            },
        ),
        migrations.AddField(
            model_name="duplicatesettings",
            name="company_name_similarity",
            field=models.FloatField(
                default=0.7,
                help_text="How alike two company names must be to be suggested, 0.1 to 1, legal forms (Inc, GmbH, …) left out (trigram similarity on PostgreSQL; SQLite suggests equal names only).",
            ),
        ),
        migrations.AddField(
            model_name="duplicatesettings",
            name="last_scan_companies",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="duplicatesettings",
            name="last_scan_company_pairs",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddConstraint(
            model_name="duplicatesettings",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("company_name_similarity__gte", 0.1), ("company_name_similarity__lte", 1)
                ),
                name="duplicatesettings_company_similarity_range",
            ),
        ),
        migrations.AddField(
            model_name="companyalias",
            name="company",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="aliases",
                to="leads.company",
            ),
        ),
        migrations.AddField(
            model_name="companydomainkey",
            name="company",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="domain_keys",
                to="leads.company",
            ),
        ),
        migrations.AddField(
            model_name="companyduplicatepair",
            name="company_a",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="leads.company",
            ),
        ),
        migrations.AddField(
            model_name="companyduplicatepair",
            name="company_b",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="leads.company",
            ),
        ),
        migrations.AddField(
            model_name="companyduplicatepair",
            name="decided_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="companymatchkey",
            index=models.Index(
                condition=models.Q(("name_key", ""), _negated=True),
                fields=["name_key"],
                name="companykey_name_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="companymatchkey",
            index=models.Index(
                condition=models.Q(("scanned", False)),
                fields=["company"],
                name="companykey_unscanned_idx",
            ),
        ),
        migrations.AddField(
            model_name="companymerge",
            name="by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="companymerge",
            name="survivor",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="merges",
                to="leads.company",
            ),
        ),
        migrations.AddField(
            model_name="companymerge",
            name="undone_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="companyduplicatepair",
            name="merge",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="pairs",
                to="leads.companymerge",
            ),
        ),
        migrations.AddField(
            model_name="companyalias",
            name="merge",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="aliases",
                to="leads.companymerge",
            ),
        ),
        migrations.AddField(
            model_name="companynameword",
            name="company",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="name_words",
                to="leads.company",
            ),
        ),
        migrations.AddIndex(
            model_name="companydomainkey",
            index=models.Index(fields=["domain"], name="companydomainkey_domain_idx"),
        ),
        migrations.AddConstraint(
            model_name="companydomainkey",
            constraint=models.UniqueConstraint(
                fields=("company", "domain"), name="companydomainkey_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="companymerge",
            index=models.Index(fields=["survivor_ref", "-at"], name="companymerge_survivor_idx"),
        ),
        migrations.AddIndex(
            model_name="companyduplicatepair",
            index=models.Index(fields=["status", "-score"], name="companypair_queue_idx"),
        ),
        migrations.AddIndex(
            model_name="companyduplicatepair",
            index=models.Index(fields=["company_b"], name="companypair_company_b_idx"),
        ),
        migrations.AddConstraint(
            model_name="companyduplicatepair",
            constraint=models.UniqueConstraint(
                fields=("company_a", "company_b"), name="companyduplicatepair_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="companyduplicatepair",
            constraint=models.CheckConstraint(
                condition=models.Q(("company_a__lt", models.F("company_b"))),
                name="companyduplicatepair_ordered",
            ),
        ),
        migrations.AddIndex(
            model_name="companynameword",
            index=models.Index(fields=["word", "company"], name="companynameword_word_idx"),
        ),
        migrations.AddConstraint(
            model_name="companynameword",
            constraint=models.UniqueConstraint(
                fields=("company", "word"), name="companynameword_unique"
            ),
        ),
    ]
