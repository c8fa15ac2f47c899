# The rules each lead matches now (scoring.models.RuleMatch), kept by the database from
# the ledger. Each entry with a rule counts one award of it (+1), or one reversal (-1);
# a statement that writes entries adds its rows' counts per (model, lead, rule), one
# that deletes them takes them off, one that updates them does both, and a row left at
# nothing goes. On PostgreSQL the triggers run once per statement over its transition
# tables (a rescore range's hundred thousand entries make one grouped upsert, in key
# order so that two writers never wait on each other crosswise); SQLite has no
# transition tables, so its triggers run for each row. The rows are filled from the
# existing ledger in the same transaction as the triggers, with the ledger locked
# against writes, so no entry falls between the two.
#
# SQLite drops a table's triggers when a migration rebuilds the table: a migration that
# alters scoring_scoreentry there must create them again (``sqlite_triggers``).

from django.db import migrations, models

TABLE = "scoring_rulematch"
KEY = "model_id, lead_id, rule_id"
SIGN = "CASE WHEN {rows}.reversal_of_id IS NULL THEN 1 ELSE -1 END"


def _counted(rows: str, sign: str = "", table: str = "") -> str:
    """The count of each entry of ``rows`` (a transition table, or an alias of ``table``),
    with ``sign``."""
    return (
        f"SELECT {KEY}, {sign}{SIGN.format(rows=rows)} AS awards "
        f"FROM {table} {rows} WHERE rule_id IS NOT NULL"
    )


def _postgres_function(name: str, counted: str) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} AS m ({KEY}, awards)
    SELECT {KEY}, sum(awards) FROM ({counted}) counted
    GROUP BY {KEY} HAVING sum(awards) <> 0 ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET awards = m.awards + EXCLUDED.awards;
    DELETE FROM {TABLE} m USING (
        SELECT {KEY} FROM ({counted}) counted GROUP BY {KEY} HAVING sum(awards) <> 0
    ) changed
    WHERE m.awards = 0 AND m.model_id = changed.model_id AND m.lead_id = changed.lead_id
      AND m.rule_id = changed.rule_id;
    RETURN NULL;
END
$$;
"""


POSTGRES_TRIGGERS = (
    _postgres_function("scoring_rule_match_added", _counted("added"))
    + _postgres_function("scoring_rule_match_removed", _counted("removed", "-"))
    + _postgres_function(
        "scoring_rule_match_moved",
        f"{_counted('added')} UNION ALL {_counted('removed', '-')}",
    )
    + """
CREATE TRIGGER scoring_rule_match_insert AFTER INSERT ON scoring_scoreentry
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_rule_match_added();
CREATE TRIGGER scoring_rule_match_delete AFTER DELETE ON scoring_scoreentry
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_rule_match_removed();
CREATE TRIGGER scoring_rule_match_update AFTER UPDATE ON scoring_scoreentry
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_rule_match_moved();
"""
)
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS scoring_rule_match_update ON scoring_scoreentry;
DROP TRIGGER IF EXISTS scoring_rule_match_delete ON scoring_scoreentry;
DROP TRIGGER IF EXISTS scoring_rule_match_insert ON scoring_scoreentry;
DROP FUNCTION IF EXISTS scoring_rule_match_moved();
DROP FUNCTION IF EXISTS scoring_rule_match_removed();
DROP FUNCTION IF EXISTS scoring_rule_match_added();
"""


def _sqlite_count(row: str, sign: str) -> str:
    """Add one row's count (``sign`` 1 or -1, negated for a reversal) to its key."""
    values = f"{row}.model_id, {row}.lead_id, {row}.rule_id"
    return f"""
        INSERT INTO {TABLE} ({KEY}, awards)
        SELECT {values}, {sign} * {SIGN.format(rows=row)} WHERE {row}.rule_id IS NOT NULL
        ON CONFLICT ({KEY}) DO UPDATE SET awards = awards + excluded.awards;
        DELETE FROM {TABLE} WHERE awards = 0 AND model_id = {row}.model_id
            AND lead_id = {row}.lead_id AND rule_id = {row}.rule_id;
    """


SQLITE_TRIGGERS = [
    f"CREATE TRIGGER scoring_rule_match_insert AFTER INSERT ON scoring_scoreentry BEGIN "
    f"{_sqlite_count('NEW', '1')} END",
    f"CREATE TRIGGER scoring_rule_match_delete AFTER DELETE ON scoring_scoreentry BEGIN "
    f"{_sqlite_count('OLD', '-1')} END",
    f"CREATE TRIGGER scoring_rule_match_update AFTER UPDATE ON scoring_scoreentry BEGIN "
    f"{_sqlite_count('OLD', '-1')} {_sqlite_count('NEW', '1')} END",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS scoring_rule_match_update",
    "DROP TRIGGER IF EXISTS scoring_rule_match_delete",
    "DROP TRIGGER IF EXISTS scoring_rule_match_insert",
]


def sqlite_triggers(schema_editor) -> None:
    for statement in SQLITE_TRIGGERS:
        schema_editor.execute(statement)


def matches_fill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("LOCK TABLE scoring_scoreentry IN SHARE ROW EXCLUSIVE MODE")
        schema_editor.execute(POSTGRES_TRIGGERS)
    else:
        sqlite_triggers(schema_editor)
    schema_editor.execute(
        f"INSERT INTO {TABLE} ({KEY}, awards) "
        f"SELECT {KEY}, sum(awards) FROM ({_counted('e', table='scoring_scoreentry')}) counted "
        f"GROUP BY {KEY} HAVING sum(awards) <> 0 ORDER BY {KEY}"
    )


def matches_empty(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    else:
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    schema_editor.execute(f"DELETE FROM {TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0028_custom_field_set_after_contact"),
        ("scoring", "0027_leadscore_predictive_idx"),
    ]

    operations = [
        migrations.CreateModel(
            name="RuleMatch",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "model_id",
                        "lead_id",
                        "rule_id",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "awards",
                    models.IntegerField(help_text="The rule's awards to the lead not reversed."),
                ),
                (
                    "lead",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="leads.lead",
                    ),
                ),
                (
                    "model",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="scoring.scoringmodel",
                    ),
                ),
                (
                    "rule",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="scoring.rule",
                    ),
                ),
            ],
            options={"verbose_name": "rule match"},
        ),
        migrations.RunPython(matches_fill, matches_empty, elidable=False),
    ]
