# Points-only rule changes write one revaluation entry a lead (scoring.revaluations):
# - ScoreEntry.revalued_to marks them, with a partial index (lead, rule) over the few
#   rows that have it, built CONCURRENTLY on PostgreSQL so scoring goes on meanwhile;
# - RescoreJob.points_before records a points-only change;
# - the rule-match triggers (migration 0028) count a revaluation as no award.

from django.db import migrations, models

TABLE = "scoring_rulematch"
KEY = "model_id, lead_id, rule_id"
INDEX = "entry_revaluations_idx"


def _sign(rows: str, revaluations: bool) -> str:
    revaluation = f"WHEN {rows}.revalued_to IS NOT NULL THEN 0 " if revaluations else ""
    return f"CASE {revaluation}WHEN {rows}.reversal_of_id IS NULL THEN 1 ELSE -1 END"


def _postgres_functions(revaluations: bool) -> str:
    def sign(rows: str) -> str:
        return _sign(rows, revaluations)

    def recount(name: str, keys: str) -> str:
        return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} m USING ({keys}) k
    WHERE m.model_id = k.model_id AND m.lead_id = k.lead_id AND m.rule_id = k.rule_id;
    INSERT INTO {TABLE} ({KEY}, awards)
    SELECT e.model_id, e.lead_id, e.rule_id, sum({sign("e")})
    FROM scoring_scoreentry e
    JOIN ({keys}) k ON e.model_id = k.model_id AND e.lead_id = k.lead_id AND e.rule_id = k.rule_id
    GROUP BY 1, 2, 3 HAVING sum({sign("e")}) <> 0 ORDER BY 1, 2, 3;
    RETURN NULL;
END
$$;
"""

    removed = f"SELECT DISTINCT {KEY} FROM removed WHERE rule_id IS NOT NULL"
    moved = (
        f"SELECT {KEY} FROM removed WHERE rule_id IS NOT NULL "
        f"UNION SELECT {KEY} FROM added WHERE rule_id IS NOT NULL"
    )
    return (
        f"""
CREATE OR REPLACE FUNCTION scoring_rule_match_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {TABLE} AS m ({KEY}, awards)
    SELECT {KEY}, sum(awards) FROM (
        SELECT {KEY}, {sign("added")} AS awards FROM added WHERE rule_id IS NOT NULL
    ) counted
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
        + recount("scoring_rule_match_recount_removed", removed)
        + recount("scoring_rule_match_recount_moved", moved)
    )


def _sqlite_key(row: str, column: str = "") -> str:
    return " AND ".join(f"{column}{name} = {row}.{name}" for name in KEY.split(", "))


def _sqlite_triggers(revaluations: bool) -> list[str]:
    def add(row: str) -> str:
        return f"""
        INSERT INTO {TABLE} ({KEY}, awards)
        SELECT {row}.model_id, {row}.lead_id, {row}.rule_id, {_sign(row, revaluations)}
        WHERE {row}.rule_id IS NOT NULL AND {_sign(row, revaluations)} <> 0
        ON CONFLICT ({KEY}) DO UPDATE SET awards = awards + excluded.awards;
        DELETE FROM {TABLE} WHERE awards = 0 AND {_sqlite_key(row)};
    """

    def recount(row: str) -> str:
        sign = _sign("e", revaluations)
        return f"""
        DELETE FROM {TABLE} WHERE {_sqlite_key(row)};
        INSERT INTO {TABLE} ({KEY}, awards)
        SELECT {KEY}, sum({sign}) FROM scoring_scoreentry e
        WHERE {row}.rule_id IS NOT NULL AND {_sqlite_key(row, "e.")}
        GROUP BY {KEY} HAVING sum({sign}) <> 0;
    """

    return [
        "DROP TRIGGER IF EXISTS scoring_rule_match_update",
        "DROP TRIGGER IF EXISTS scoring_rule_match_delete",
        "DROP TRIGGER IF EXISTS scoring_rule_match_insert",
        "CREATE TRIGGER scoring_rule_match_insert AFTER INSERT ON scoring_scoreentry BEGIN "
        f"{add('NEW')} END",
        "CREATE TRIGGER scoring_rule_match_delete AFTER DELETE ON scoring_scoreentry BEGIN "
        f"{recount('OLD')} END",
        "CREATE TRIGGER scoring_rule_match_update AFTER UPDATE ON scoring_scoreentry BEGIN "
        f"{recount('OLD')} {recount('NEW')} END",
    ]


def _triggers(schema_editor, revaluations: bool) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_postgres_functions(revaluations))
    else:
        for statement in _sqlite_triggers(revaluations):
            schema_editor.execute(statement)


def triggers_forward(apps, schema_editor):
    _triggers(schema_editor, revaluations=True)


def triggers_backward(apps, schema_editor):
    _triggers(schema_editor, revaluations=False)


def index_create(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{INDEX}" ON "scoring_scoreentry" '
        '("lead_id", "rule_id") WHERE "revalued_to" IS NOT NULL'
    )


def index_drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("scoring", "0030_entry_lead_ledger_idx")]

    operations = [
        migrations.AddField(
            model_name="scoreentry",
            name="revalued_to",
            field=models.FloatField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="rescorejob",
            name="points_before",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.RunPython(triggers_forward, triggers_backward, elidable=False),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(index_create, index_drop, elidable=False)],
            state_operations=[
                migrations.AddIndex(
                    model_name="scoreentry",
                    index=models.Index(
                        condition=models.Q(revalued_to__isnull=False),
                        fields=["lead", "rule"],
                        name=INDEX,
                    ),
                ),
            ],
        ),
    ]
