from django.db import migrations


class Migration(migrations.Migration):
    """The reps' product lines are declared on ``leads.ProductLine.reps`` from now on, so
    ``crm`` holds no relation into a higher app.

    Nothing left to do here: ``0001_squashed_0005_without_leads`` never declares
    ``User.product_lines``. The migration keeps its name for the databases that recorded it
    and for ``leads.0016_productline_reps``, which takes the relation (and, on a new
    database, creates its join table ``crm_user_product_lines``).
    """

    dependencies = [
        ("crm", "0001_squashed_0005_without_leads"),
    ]

    operations = []
