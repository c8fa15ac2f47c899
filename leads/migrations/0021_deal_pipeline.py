"""The deal pipeline: stages with their probabilities, the pick-list of lost reasons,
and on each deal its stage, expected close, own probability, product line and owner.

Existing deals are placed as the services would have placed them: open deals in the
first stage, every deal owned by its lead's owner and in its stage since it was
created."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.models import F, OuterRef, Subquery

# What a new installation starts with; admins and marketers change them in the admin.
DEFAULT_STAGES = (("Qualification", 20, 30), ("Proposal", 50, 21), ("Negotiation", 75, 14))
DEFAULT_LOST_REASONS = (
    "Price too high",
    "Chose a competitor",
    "No decision",
    "Bad timing",
    "Missing feature",
)


def add_defaults(apps, schema_editor):
    DealStage = apps.get_model("leads", "DealStage")
    LostReason = apps.get_model("leads", "LostReason")
    Deal = apps.get_model("leads", "Deal")
    Lead = apps.get_model("leads", "Lead")
    stages = [
        DealStage.objects.create(name=name, position=n, probability=p, rot_days=days)
        for n, (name, p, days) in enumerate(DEFAULT_STAGES, start=1)
    ]
    for n, name in enumerate(DEFAULT_LOST_REASONS, start=1):
        LostReason.objects.create(name=name, position=n)
    owner = Lead.objects.filter(pk=OuterRef("lead_id")).values("owner_id")[:1]
    Deal.objects.update(owner_id=Subquery(owner), stage_changed_at=F("created_at"))
    Deal.objects.filter(status="open").update(stage=stages[0])


class Migration(migrations.Migration):
    # Each step commits on its own: on a database with deals, the new foreign keys'
    # deferred checks would otherwise still be pending when the board's index is made
    # ("cannot CREATE INDEX … because it has pending trigger events"). The defaults are
    # written in one transaction of their own.
    atomic = False
    dependencies = [
        ("leads", "0020_search_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="deal",
            name="amount",
            field=models.DecimalField(
                decimal_places=2,
                default=0,
                max_digits=14,
                validators=[django.core.validators.MinValueValidator(0)],
            ),
        ),
        migrations.AlterField(
            model_name="deal",
            name="currency",
            field=models.CharField(
                default="EUR",
                max_length=3,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[A-Z]{3}$", "Use a three-letter currency code, e.g. EUR."
                    )
                ],
            ),
        ),
        migrations.CreateModel(
            name="LostReason",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("position", models.PositiveSmallIntegerField(default=0)),
                (
                    "active",
                    models.BooleanField(
                        default=True,
                        help_text="Offered when a deal is lost; retired reasons stay on old deals.",
                    ),
                ),
            ],
            options={
                "ordering": ["position", "name"],
            },
        ),
        migrations.AddField(
            model_name="deal",
            name="expected_close",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="deal",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="owned_deals",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="deal",
            name="probability",
            field=models.PositiveSmallIntegerField(
                blank=True,
                help_text="Per cent chance of winning; empty: the stage's.",
                null=True,
                validators=[django.core.validators.MaxValueValidator(100)],
            ),
        ),
        migrations.AddField(
            model_name="deal",
            name="product_line",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="deals",
                to="leads.productline",
            ),
        ),
        migrations.AddField(
            model_name="deal",
            name="stage_changed_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="When the deal entered its stage: how long it has idled.",
            ),
        ),
        migrations.CreateModel(
            name="DealStage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True)),
                (
                    "position",
                    models.PositiveSmallIntegerField(
                        default=0,
                        help_text="Columns of the deal board run from the lowest position up.",
                    ),
                ),
                (
                    "probability",
                    models.PositiveSmallIntegerField(
                        help_text="Per cent chance that a deal in this stage is won: its weight in the weighted totals, unless the deal sets its own.",
                        validators=[django.core.validators.MaxValueValidator(100)],
                    ),
                ),
                (
                    "rot_days",
                    models.PositiveSmallIntegerField(
                        blank=True,
                        help_text="A deal left this many days in the stage is flagged as rotting; empty: never.",
                        null=True,
                        validators=[django.core.validators.MinValueValidator(1)],
                        verbose_name="rots after (days)",
                    ),
                ),
            ],
            options={
                "ordering": ["position", "id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("probability__lte", 100)),
                        name="dealstage_probability_at_most_100",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("rot_days__isnull", True), ("rot_days__gte", 1), _connector="OR"
                        ),
                        name="dealstage_rot_days_positive",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="deal",
            name="stage",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deals",
                to="leads.dealstage",
            ),
        ),
        migrations.AddIndex(
            model_name="deal",
            index=models.Index(
                condition=models.Q(("status", "open")),
                fields=["stage", "expected_close", "id"],
                name="deal_open_board_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="deal",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("probability__isnull", True), ("probability__lte", 100), _connector="OR"
                ),
                name="deal_probability_at_most_100",
            ),
        ),
        migrations.RunPython(add_defaults, migrations.RunPython.noop, elidable=True, atomic=True),
    ]
