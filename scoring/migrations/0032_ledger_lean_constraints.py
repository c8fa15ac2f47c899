# The ledger's last database checks on every entry go. Nearly every row a rescore writes
# is an award: it left a NULL in the unique index of the reversal's link to its entry
# and queued two foreign key checks for commit (that link's and the adjusting user's),
# each for a NULL. A partial unique index over the reversals keeps "reversed once",
# built CONCURRENTLY on PostgreSQL so scoring goes on meanwhile; Django applies the
# deletions the foreign keys did (CASCADE, SET_NULL), as for the ledger's other columns.
# SQLite keeps the columns' inline UNIQUE and REFERENCES, which only a rebuild of the
# table could drop and which allow what the new state does.

from django.conf import settings
from django.db import migrations, models

TABLE = "scoring_scoreentry"
INDEX = "entry_reversed_once"
# The constraints of migration 0001, restored on the way back.
OLD_UNIQUE = "scoring_scoreentry_reversal_of_id_key"
OLD_FOREIGN_KEYS = {
    "reversal_of_id": ("scoring_scoreentry_reversal_of_id_fk_scoring_scoreentry_id", TABLE),
    "by_id": ("scoring_scoreentry_by_id_fk_crm_user_id", "crm_user"),
}


def _old_constraints(schema_editor) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    foreign_keys = [
        name
        for name, constraint in constraints.items()
        if constraint["foreign_key"] and constraint["columns"] in (["reversal_of_id"], ["by_id"])
    ]
    unique = [
        name
        for name, constraint in constraints.items()
        if constraint["unique"] and constraint["columns"] == ["reversal_of_id"] and name != INDEX
    ]
    return foreign_keys + unique


def forwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    concurrently = "CONCURRENTLY " if postgres else ""
    schema_editor.execute(
        f'CREATE UNIQUE INDEX {concurrently}IF NOT EXISTS "{INDEX}" ON "{TABLE}" '
        '("reversal_of_id") WHERE "reversal_of_id" IS NOT NULL'
    )
    if postgres:
        for name in _old_constraints(schema_editor):
            schema_editor.execute(f'ALTER TABLE "{TABLE}" DROP CONSTRAINT "{name}"')


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')
        return
    schema_editor.execute(
        f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{OLD_UNIQUE}" UNIQUE ("reversal_of_id")'
    )
    for column, (name, target) in OLD_FOREIGN_KEYS.items():
        schema_editor.execute(
            f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{name}" FOREIGN KEY ("{column}") '
            f'REFERENCES "{target}" ("id") DEFERRABLE INITIALLY DEFERRED'
        )
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("scoring", "0031_revaluations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
            state_operations=[
                migrations.AlterField(
                    model_name="scoreentry",
                    name="by",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="scoreentry",
                    name="reversal_of",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.CASCADE,
                        related_name="reversals",
                        to="scoring.scoreentry",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="scoreentry",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(reversal_of__isnull=False),
                        fields=("reversal_of",),
                        name=INDEX,
                    ),
                ),
            ],
        ),
    ]
