from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """The relation ``crm.User.product_lines`` declared from this side as
    ``ProductLine.reps``. State only: it uses the existing join table
    ``crm_user_product_lines`` with its columns ``user_id`` and ``productline_id``, so
    every rep keeps their product lines."""

    dependencies = [
        ("leads", "0015_activity_times_at_most_receipt"),
        ("crm", "0006_product_lines_to_leads"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="productline",
                    name="reps",
                    field=models.ManyToManyField(
                        blank=True,
                        db_table="crm_user_product_lines",
                        related_name="product_lines",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
