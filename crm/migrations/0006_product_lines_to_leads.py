from django.db import migrations


class Migration(migrations.Migration):
    """The reps' product lines are declared on ``leads.ProductLine.reps`` from now on, so
    ``crm`` holds no relation into a higher app. State only: the join table
    ``crm_user_product_lines`` and its rows stay where they are, and
    ``leads.0016_productline_reps`` takes the relation over with the same table."""

    dependencies = [
        ("crm", "0005_team_webhooks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveField(model_name="user", name="product_lines")],
            database_operations=[],
        ),
    ]
