# The rules each lead matches now (scoring.models.RuleMatch), kept by the database from
# the ledger: per (model, lead, rule), the rule's awards less their reversals.
# - A statement that writes entries adds its rows' counts (+1 an award, -1 a reversal,
#   whose award was written before it), and a row brought to nothing goes.
# - A statement that deletes or moves entries counts the keys it touched again from the
#   ledger as it is left: a deletion may take an award before its reversal, and counting
#   again never passes through a count below zero or leaves one behind.
# On PostgreSQL the triggers run once per statement over its transition tables (a
# rescore range's hundred thousand entries make one grouped upsert, in key order so that
# two writers never wait on each other crosswise); SQLite has no transition tables, so
# its triggers run for each row. The rows are filled from the existing ledger in the
# same transaction as the triggers, with the ledger locked against writes, so no entry
# falls between the two.
#
# SQLite drops a table's triggers when a migration rebuilds the table: a migration that
# alters scoring_scoreentry there must create them again (``sqlite_triggers``).

from django.db import migrations, models

TABLE = "scoring_rulematch"
KEY = "model_id, lead_id, rule_id"
SIGN = "CASE WHEN {rows}.reversal_of_id IS NULL THEN 1 ELSE -1 END"


def _counted(rows: str, table: str = "") -> str:
    """The count of each entry of ``rows`` (a transition table, or an alias of ``table``)."""
    return (
        f"SELECT {KEY}, {SIGN.format(rows=rows)} AS awards "
        f"FROM {table} {rows} WHERE rule_id IS NOT NULL"
    )


POSTGRES_ADD = f"""
CREATE FUNCTION scoring_rule_match_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} AS m ({KEY}, awards)
    SELECT {KEY}, sum(awards) FROM ({_counted("added")}) counted
    GROUP BY {KEY} HAVING sum(awards) <> 0 ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET awards = m.awards + EXCLUDED.awards;
    DELETE FROM {TABLE} m USING (
        SELECT DISTINCT {KEY} FROM added WHERE rule_id IS NOT NULL AND reversal_of_id IS NOT NULL
    ) reversed
    WHERE m.awards = 0 AND m.model_id = reversed.model_id AND m.lead_id = reversed.lead_id
      AND m.rule_id = reversed.rule_id;
    RETURN NULL;
END
$$;
"""


def _postgres_recount(name: str, keys: str) -> str:
    """A function counting again, from the ledger, the keys ``keys`` selects."""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} m USING ({keys}) k
    WHERE m.model_id = k.model_id AND m.lead_id = k.lead_id AND m.rule_id = k.rule_id;
    INSERT INTO {TABLE} ({KEY}, awards)
    SELECT e.model_id, e.lead_id, e.rule_id, sum({SIGN.format(rows="e")})
    FROM scoring_scoreentry e
    JOIN ({keys}) k ON e.model_id = k.model_id AND e.lead_id = k.lead_id AND e.rule_id = k.rule_id
    GROUP BY 1, 2, 3 HAVING sum({SIGN.format(rows="e")}) <> 0 ORDER BY 1, 2, 3;
    RETURN NULL;
END
$$;
"""


REMOVED_KEYS = f"SELECT DISTINCT {KEY} FROM removed WHERE rule_id IS NOT NULL"
MOVED_KEYS = (
    f"SELECT {KEY} FROM removed WHERE rule_id IS NOT NULL "
    f"UNION SELECT {KEY} FROM added WHERE rule_id IS NOT NULL"
)
POSTGRES_TRIGGERS = (
    POSTGRES_ADD
    + _postgres_recount("scoring_rule_match_recount_removed", REMOVED_KEYS)
    + _postgres_recount("scoring_rule_match_recount_moved", MOVED_KEYS)
    + """
CREATE TRIGGER scoring_rule_match_insert AFTER INSERT ON scoring_scoreentry
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_rule_match_add();
CREATE TRIGGER scoring_rule_match_delete AFTER DELETE ON scoring_scoreentry
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_rule_match_recount_removed();
CREATE TRIGGER scoring_rule_match_update AFTER UPDATE ON scoring_scoreentry
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION scoring_rule_match_recount_moved();
"""
)
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS scoring_rule_match_update ON scoring_scoreentry;
DROP TRIGGER IF EXISTS scoring_rule_match_delete ON scoring_scoreentry;
DROP TRIGGER IF EXISTS scoring_rule_match_insert ON scoring_scoreentry;
DROP FUNCTION IF EXISTS scoring_rule_match_recount_moved();
DROP FUNCTION IF EXISTS scoring_rule_match_recount_removed();
DROP FUNCTION IF EXISTS scoring_rule_match_add();
"""


def _sqlite_key(row: str, column: str = "") -> str:
    """``row``'s key equals the one in the columns (of the table ``column`` prefixes)."""
    return " AND ".join(f"{column}{name} = {row}.{name}" for name in KEY.split(", "))


def _sqlite_add(row: str) -> str:
    values = f"{row}.model_id, {row}.lead_id, {row}.rule_id"
    return f"""
        INSERT INTO {TABLE} ({KEY}, awards)
        SELECT {values}, {SIGN.format(rows=row)} WHERE {row}.rule_id IS NOT NULL
        ON CONFLICT ({KEY}) DO UPDATE SET awards = awards + excluded.awards;
        DELETE FROM {TABLE} WHERE awards = 0 AND {_sqlite_key(row)};
    """


def _sqlite_recount(row: str) -> str:
    sign = SIGN.format(rows="e")
    return f"""
        DELETE FROM {TABLE} WHERE {_sqlite_key(row)};
        INSERT INTO {TABLE} ({KEY}, awards)
        SELECT {KEY}, sum({sign}) FROM scoring_scoreentry e
        WHERE {row}.rule_id IS NOT NULL AND {_sqlite_key(row, "e.")}
        GROUP BY {KEY} HAVING sum({sign}) <> 0;
    """


SQLITE_TRIGGERS = [
    "CREATE TRIGGER scoring_rule_match_insert AFTER INSERT ON scoring_scoreentry BEGIN "
    f"{_sqlite_add('NEW')} END",
    "CREATE TRIGGER scoring_rule_match_delete AFTER DELETE ON scoring_scoreentry BEGIN "
    f"{_sqlite_recount('OLD')} END",
    "CREATE TRIGGER scoring_rule_match_update AFTER UPDATE ON scoring_scoreentry BEGIN "
    f"{_sqlite_recount('OLD')} {_sqlite_recount('NEW')} END",
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
        f"SELECT {KEY}, sum(awards) FROM ({_counted('e', 'scoring_scoreentry')}) counted "
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
