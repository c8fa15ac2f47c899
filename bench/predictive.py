"""Predictive scoring: training and batch scoring, beside plain scikit-learn and numpy.

    python bench/predictive.py [--closed 20000] [--open 20000] [--runs 2] [--record]

Builds, in its own database (``BENCH_DATABASE_URL``, default ``hotlist_bench_predictive``),
the starter model and ``--closed`` closed leads (won or lost deals over the last year,
decided by a hidden propensity from industry, seniority, a pick-list custom field with
placeholder values, a number that is often missing, page views and demo requests; a
custom field set after contact that gives the outcome away) and ``--open`` open leads of
the same kind with recent page views, every lead scored by the rules set-based; reused
when it holds that many leads. Then, ``--runs`` times each:

- ``predictive_train`` end to end: closed leads and decision times, features read as of
  each decision, encoding, time-ordered cross-validation of both candidates, the
  calibrated fit, the card's figures, the gate, and on publishing the predictive score
  of every scored lead written;
- plain scikit-learn on the same feature matrix (read and encoded once, outside the
  timing): ``StandardScaler`` + ``LogisticRegression`` fitted, and
  ``HistGradientBoostingClassifier`` fitted, with the service's parameters, one thread;
- ``predictive_scores_refresh``, what publishing runs: every scored lead's predictive
  score read, predicted and written;
- batch scoring of every open lead (``predictive_scores``: features read set-based,
  encoded, one ``predict_proba``), rows per second, beside a bare ``predict_proba`` of the
  live pipeline over the same, already encoded, matrix;
- real-time scoring of one new event on an open lead, as the worker's drain scores it
  (``leads_score(incremental=True)``: the rule score's fast path, the predictive score
  read as of now, both written), ``--events`` leads in turn with the predictive model
  live and the same number with it set aside, alternating, in process: what a live
  predictive model adds to each event's work in the worker.

Prints a Markdown table; ``--record`` writes it to docs/PERFORMANCE.md (section
"predictive").
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/hotlist_bench_predictive"
INDUSTRIES = ["software", "finance", "healthcare", "retail", "education"]
SENIORITIES = ["c_level", "vp", "director", "manager", "individual", "student", ""]
INTERESTS = ["High", "Medium", "Low", "Select", "-", ""]
SOURCES = ["website", "referral", "paid_search"]
CHUNK = 5000


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closed", type=int, default=20_000, help="Closed leads (≤ 50,000).")
    parser.add_argument("--open", type=int, default=20_000, help="Open leads to score.")
    parser.add_argument("--runs", type=int, default=2, help="Timed runs of each.")
    parser.add_argument("--events", type=int, default=200, help="Real-time events timed each way.")
    parser.add_argument("--record", action="store_true", help="Write docs/PERFORMANCE.md.")
    args = parser.parse_args()
    if not 0 < args.closed <= 50_000:
        parser.error("--closed: give 1 to 50,000 closed leads.")
    return args


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- The world ------------------------------------------------------------------------------


def build(args: argparse.Namespace):
    import generate
    from django.core.management import call_command

    from demo.scoring import seed_starter_model
    from leads.models import CustomFieldDefinition, FieldType, Lead

    call_command("migrate", verbosity=0)
    model = seed_starter_model()
    total = args.closed + args.open
    if Lead.objects.count() == total:
        log(f"Reusing the world of {args.closed:,} closed and {args.open:,} open leads.")
        return model
    if Lead.objects.exists():
        raise SystemExit("The benchmark database holds another world: drop it first.")
    CustomFieldDefinition.objects.get_or_create(
        key="interest",
        defaults={"label": "Interest", "field_type": FieldType.CHOICE, "choices": INTERESTS[:3]},
    )
    CustomFieldDefinition.objects.get_or_create(
        key="fleet_size", defaults={"label": "Fleet size", "field_type": FieldType.NUMBER}
    )
    CustomFieldDefinition.objects.get_or_create(
        key="rep_rating",
        defaults={
            "label": "Rep rating",
            "field_type": FieldType.INTEGER,
            "set_after_contact": True,
        },
    )
    log(f"Generating {args.closed:,} closed and {args.open:,} open leads …")
    world(args.closed, args.open)
    log("Scoring every lead …")
    generate.score_all(progress=log)
    return model


def world(closed: int, open_: int, seed: int = 7) -> None:
    """The leads, their deals and activities, in chunks of ``CHUNK`` leads."""
    import numpy as np
    from django.utils import timezone

    from leads.models import Company, Lead

    rng = np.random.default_rng(seed)
    now = timezone.now()
    companies = Company.objects.bulk_create(
        Company(
            name=f"bench-co{i}",
            industry=INDUSTRIES[i % len(INDUSTRIES)],
            employee_count=None if i % 4 == 0 else int(rng.integers(5, 5000)),
        )
        for i in range(200)
    )
    start = now - timedelta(days=400)
    for lo in range(0, closed + open_, CHUNK):
        rows = [
            _lead(i, i < closed, closed, rng, companies, start, now)
            for i in range(lo, min(lo + CHUNK, closed + open_))
        ]
        _store(rows)
        log(f"  {lo + len(rows):,} leads")
    Lead.objects.refresh_facts()


def _lead(i, is_closed, closed, rng, companies, start, now) -> dict:
    from leads.models import Lead

    company = companies[int(rng.integers(len(companies)))]
    seniority = SENIORITIES[int(rng.integers(len(SENIORITIES)))]
    interest = INTERESTS[int(rng.integers(len(INTERESTS)))]
    fleet = None if rng.random() < 0.3 else float(rng.integers(1, 400))
    views = int(rng.poisson(2.0))
    demo = bool(rng.random() < 0.25)
    logit = (
        -2.2
        + 1.4 * (company.industry == "software")
        - 0.8 * (company.industry == "education")
        + 1.0 * (seniority in ("c_level", "vp", "director"))
        - 1.5 * (seniority == "student")
        + 1.0 * (interest == "High")
        - 0.8 * (interest == "Low")
        + 0.5 * math.log1p(fleet or 0) / 3
        + 0.45 * views
        + 1.2 * demo
    )
    won = bool(rng.random() < 1 / (1 + math.exp(-logit)))
    if is_closed:
        decided = start + timedelta(days=360 * i / closed, hours=int(rng.integers(0, 24)))
    else:
        decided = now
    custom = {"interest": interest}
    if is_closed:
        custom["rep_rating"] = 5 if won else 1
    if fleet is not None:
        custom["fleet_size"] = fleet
    lead = Lead(
        email=f"p{i}@bench.example",
        company=company,
        seniority=seniority,
        source=SOURCES[i % 3],
        custom_fields=custom,
        created_at=decided - timedelta(days=30),
    )
    return {
        "lead": lead,
        "closed": is_closed,
        "won": won,
        "at": decided,
        "views": views,
        "demo": demo,
    }


def _store(rows: list[dict]) -> None:
    from django.db import transaction

    from leads.models import Activity, ActivityType, Deal, DealStatus, Lead

    with transaction.atomic():
        Lead.objects.bulk_create([row["lead"] for row in rows], batch_size=1000)
        Deal.objects.bulk_create(
            (
                Deal(
                    lead=row["lead"],
                    name="Deal",
                    status=DealStatus.WON if row["won"] else DealStatus.LOST,
                    created_at=row["at"],
                    closed_at=row["at"] + timedelta(days=20),
                )
                for row in rows
                if row["closed"]
            ),
            batch_size=1000,
        )
        activities = []
        for row in rows:
            lead, at = row["lead"], row["at"]
            activities += [
                Activity(
                    lead=lead,
                    type=ActivityType.PAGE_VIEW,
                    url=f"https://hotlist.example/pricing/{k}",
                    duration_seconds=60,
                    occurred_at=at - timedelta(days=1 + k * 3),
                    scored_at=at,
                )
                for k in range(row["views"])
            ]
            if row["demo"]:
                activities.append(
                    Activity(
                        lead=lead,
                        type=ActivityType.DEMO_REQUEST,
                        occurred_at=at - timedelta(days=2),
                        scored_at=at,
                    )
                )
        Activity.objects.bulk_create(activities, batch_size=2000)


# --- The timings ----------------------------------------------------------------------------


def train_once(model) -> tuple[float, object]:
    from scoring.predictive.services import predictive_train

    start = time.perf_counter()
    card = predictive_train(model=model, by=None)
    took = time.perf_counter() - start
    log(
        f"  predictive_train: {took:.1f} s ({card.algorithm}, {card.status}, ROC AUC "
        f"{card.roc_auc:.3f} against the rules' {card.rule_auc or 0.5:.3f})"
    )
    return took, card


def training_matrix(model):
    """The matrix ``predictive_train`` fits on, read and encoded as it does, with its
    outcomes and the training rows (older outcomes); and the seconds it took."""
    import numpy as np

    from scoring.lead_sets import segment_leads
    from scoring.predictive import training
    from scoring.predictive.encoding import encode, fit_encoding
    from scoring.predictive.features import (
        decision_times,
        excluded_keys,
        feature_fields,
        feature_frame,
    )
    from scoring.rule_matrix import closed_outcomes

    start = time.perf_counter()
    lead_ids, won = closed_outcomes(segment_leads(model))
    decisions = decision_times(lead_ids)
    order = np.argsort([at.timestamp() for at in decisions.closed_at], kind="stable")
    lead_ids, won = lead_ids[order], won[order]
    decided = [decisions.decided_at[i] for i in order]
    frame = feature_frame(
        lead_ids=lead_ids,
        as_of=decided,
        specs=feature_fields(model),
        excluded=excluded_keys(model),
        decided_at=decided,
    )
    train, _ = training.holdout_split(len(lead_ids))
    x = encode(fit_encoding(frame.take(train)), frame)
    took = time.perf_counter() - start
    log(f"  features of {len(lead_ids):,} closed leads read and encoded: {took:.1f} s")
    return x[train], won[train], took


def plain_fits(x, y) -> tuple[float, float]:
    """The service's two candidates fitted once each on ``x``, one thread, as it does."""
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from scoring.predictive.training import BOOSTING, LOGISTIC, candidates

    times = []
    with threadpool_limits(limits=1):
        for name in (LOGISTIC, BOOSTING):
            estimator = clone(candidates()[name])
            start = time.perf_counter()
            estimator.fit(x, y)
            times.append(time.perf_counter() - start)
    log(f"  plain fits: logistic {times[0]:.2f} s, boosting {times[1]:.2f} s")
    return times[0], times[1]


def open_lead_ids() -> list[int]:
    from leads.models import Lead

    return list(Lead.objects.filter(deals__isnull=True).order_by("pk").values_list("pk", flat=True))


def scoring_once(card, ids: list[int]) -> float:
    from scoring.predictive.services import predictive_scores

    start = time.perf_counter()
    scores = predictive_scores(predictive=card, lead_ids=ids)
    took = time.perf_counter() - start
    assert len(scores) == len(ids)
    log(f"  predictive_scores of {len(ids):,} open leads: {took:.2f} s")
    return took


def bare_predict(card, ids: list[int]) -> tuple[list[float], float]:
    """``predict_proba`` of the live pipeline over the open leads' encoded matrix (read
    and encoded once, outside the timing), ``runs`` times; and the reading's seconds."""
    from django.utils import timezone
    from threadpoolctl import threadpool_limits

    from scoring.predictive.artifacts import artifact_of
    from scoring.predictive.encoding import encode
    from scoring.predictive.features import feature_frame

    artifact = artifact_of(card)
    start = time.perf_counter()
    frame = feature_frame(
        lead_ids=ids, as_of=[timezone.now()] * len(ids), specs=list(artifact.encoding.specs)
    )
    x = encode(artifact.encoding, frame)
    read = time.perf_counter() - start
    times = []
    with threadpool_limits(limits=1):
        for _ in range(3):
            start = time.perf_counter()
            artifact.estimator.predict_proba(x)
            times.append(time.perf_counter() - start)
    log(f"  bare predict_proba: {statistics.median(times):.3f} s; features read {read:.2f} s")
    return times, read


def realtime_events(card, ids: list[int], n: int) -> dict[str, list[float]]:
    """Seconds of ``leads_score(incremental=True)`` for one new page view on each of ``n``
    open leads, with ``card`` live and set aside in turn (a lead each, alternating, so
    that load and caches weigh on both alike); the card is live again at the end."""
    import random

    from django.db import transaction
    from django.utils import timezone

    from leads.models import Activity
    from scoring.lead_scoring import leads_score
    from scoring.models import PredictiveModel, PredictiveStatus

    rng = random.Random(11)
    picked = rng.sample(ids, min(2 * n, len(ids)))
    out: dict[str, list[float]] = {"live": [], "rules": []}
    try:
        for i, lead_id in enumerate(picked):
            live = i % 2 == 0
            status = PredictiveStatus.LIVE if live else PredictiveStatus.TRAINED
            PredictiveModel.objects.filter(pk=card.pk).update(status=status)
            with transaction.atomic():
                Activity.objects.create(
                    lead_id=lead_id,
                    type="page_view",
                    url="/pricing",
                    occurred_at=timezone.now(),
                )
            start = time.perf_counter()
            leads_score(lead_ids=[lead_id], incremental=True)
            out["live" if live else "rules"].append(time.perf_counter() - start)
    finally:
        PredictiveModel.objects.filter(pk=card.pk).update(status=PredictiveStatus.LIVE)
    for key, values in out.items():
        log(f"  one event, {key}: median {statistics.median(values) * 1000:.1f} ms")
    return out


def refresh_once(card) -> tuple[float, int]:
    from scoring.predictive.services import predictive_scores_refresh

    start = time.perf_counter()
    written = predictive_scores_refresh(predictive=card)
    took = time.perf_counter() - start
    log(f"  predictive_scores_refresh: {took:.2f} s ({written:,} leads)")
    return took, written


# --- The report -----------------------------------------------------------------------------


def render(r: dict, loads: list[str], args: argparse.Namespace) -> str:
    train, logistic, boosting = (statistics.median(r[k]) for k in ("train", "logit", "hgb"))
    scoring, bare = statistics.median(r["score"]), statistics.median(r["bare"])
    n_open = r["n_open"]
    matrix, refresh = statistics.median(r["matrix"]), statistics.median(r["refresh"])
    rest = train - matrix - refresh
    read = r["n_scored"] / (n_open / scoring)
    million = 1_000_000 * refresh / r["n_scored"] / 60
    cards = r["cards"]
    card = cards[-1]

    def times(values: list[float], digits: int = 2) -> str:
        return ", ".join(f"{t:.{digits}f} s" for t in values)

    events = r["events"]
    with_live, without = (sorted(events[k]) for k in ("live", "rules"))

    def ms(values: list[float], q: float) -> str:
        return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.1f} ms"

    added = statistics.median(with_live) - statistics.median(without)

    return "\n".join(
        [
            "## Predictive scoring",
            "",
            f"Measured by `python bench/predictive.py --closed {args.closed} --open {args.open} "
            f"--runs {args.runs} --record` on {harness.machine()}.",
            f"Load average (1 min) {loads[0]} before, {loads[1]} after (shared machine).",
            f"Data: {args.closed:,} closed leads (won and lost deals over a year, "
            f"{card.n_won:,} won) and {n_open:,} open leads, each with a company, a "
            "seniority, a pick-list custom field with placeholder values, a number missing "
            "for 30 %, page views and demo requests, and a field set after contact that "
            "the features leave out; the starter model, every lead scored. Training chose "
            f"{', '.join(sorted({c.algorithm for c in cards}))}; holdout ROC AUC "
            f"{card.roc_auc:.3f} against the rules' {card.rule_auc or 0.5:.3f}, "
            f"{card.status}. Median of {args.runs} runs each (bare predict: 3).",
            "",
            "| what | median | runs | ratio |",
            "| --- | --- | --- | --- |",
            f"| `predictive_train` end to end ({args.closed:,} closed leads; on publishing "
            f"every scored lead's predictive score written) | {harness.seconds(train)} "
            f"| {times(r['train'])} | {train / (logistic + boosting):.0f}x the two plain fits |",
            f"| Features of the closed leads read as of each decision and encoded "
            f"(inside the first row) | {harness.seconds(matrix)} "
            f"| {times(r['matrix'])} | |",
            f"| Plain scikit-learn: `StandardScaler` + `LogisticRegression` fit, same matrix "
            f"| {harness.seconds(logistic)} | {times(r['logit'])} | |",
            f"| Plain scikit-learn: `HistGradientBoostingClassifier` fit, same matrix "
            f"| {harness.seconds(boosting)} | {times(r['hgb'])} | |",
            f"| Batch scoring of {n_open:,} open leads (`predictive_scores`: features read, "
            f"encoded, predicted) | {harness.seconds(scoring)} ({n_open / scoring:,.0f} rows/s) "
            f"| {times(r['score'])} | {scoring / bare:.0f}x bare predict |",
            f"| Bare `predict_proba` of the live pipeline over the same encoded matrix "
            f"| {bare:.3f} s ({n_open / bare:,.0f} rows/s) | {times(r['bare'], 3)} | 1 |",
            f"| `predictive_scores_refresh`: every scored lead ({r['n_scored']:,}) read, "
            f"predicted and written, as publishing does (inside the first row) "
            f"| {harness.seconds(refresh)} | {times(r['refresh'])} | |",
            "",
            f"Real-time scoring of one new page view on an open lead, as the worker's drain "
            f"scores it (`leads_score(incremental=True)`, in process, {len(with_live)} leads "
            "each way, alternating):",
            "",
            "| what | median | p95 | max |",
            "| --- | --- | --- | --- |",
            f"| rules and the live predictive model (its score read as of now and written "
            f"with the rule score) | {ms(with_live, 0.5)} | {ms(with_live, 0.95)} "
            f"| {ms(with_live, 1.0)} |",
            f"| rules alone (the predictive model set aside) | {ms(without, 0.5)} "
            f"| {ms(without, 0.95)} | {ms(without, 1.0)} |",
            "",
            f"A live predictive model adds {added * 1000:.1f} ms to each event's work in "
            "the worker (median).",
            "",
            f"Reading it: of the {harness.seconds(train)} that training takes end to end, "
            f"reading the closed leads' features as of each decision is "
            f"{harness.seconds(matrix)} and publishing (every scored lead's predictive score "
            f"written) {harness.seconds(refresh)}; the remaining {harness.seconds(rest)} is "
            f"{rest / (logistic + boosting):.1f}x one plain fit of both candidates: the "
            "time-ordered cross-validation fits each on growing shares of the older "
            "outcomes (about 1.5 full fits each), the chosen one is fitted three more times "
            "for its calibration, and the card and the gate read the holdout again (the "
            "rules' scores, the live model's features, each input shuffled for boosting's "
            "importance). Batch scoring is bound by reading the features from the database "
            "(activity counts per window and URL group, fields, custom fields), not by the "
            f"model: the bare `predict_proba` over the same rows is {bare / scoring:.0%} of "
            f"it. Publishing reads and predicts as batch scoring does: at its rate its "
            f"{r['n_scored']:,} leads take about {harness.seconds(read)}, and the other "
            f"{harness.seconds(max(refresh - read, 0))} is the write of their scores (one "
            "`UPDATE` of a chunk's score rows joined to its scores as arrays, only where "
            "they moved; `bulk_update` on SQLite). At "
            f"the refresh's rate ({r['n_scored'] / refresh:,.0f} leads/s) a model going live "
            f"over 1,000,000 leads would take about {million:.0f} minutes.",
        ]
    )


def main() -> None:
    args = parse()
    os.environ.setdefault("HOTLIST_VAR_DIR", str(harness.ROOT / "var" / "bench-predictive"))
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    harness.setup_django(url)
    model = build(args)
    harness.vacuum_analyze()
    loads = [f"{os.getloadavg()[0]:.1f}"]
    keys = ("train", "matrix", "logit", "hgb", "score", "refresh", "cards")
    r: dict = {k: [] for k in keys}
    for _ in range(args.runs):
        took, card = train_once(model)
        r["train"].append(took)
        r["cards"].append(card)
    for _ in range(args.runs):
        x, y, took = training_matrix(model)
        r["matrix"].append(took)
        logistic, boosting = plain_fits(x, y)
        r["logit"].append(logistic)
        r["hgb"].append(boosting)
    from scoring.predictive.services import live_predictive

    live = live_predictive(model)
    if live is None:
        raise SystemExit("No predictive model went live: nothing to score with.")
    ids = open_lead_ids()
    r["n_open"] = len(ids)
    for _ in range(args.runs):
        r["score"].append(scoring_once(live, ids))
    r["bare"], _ = bare_predict(live, ids)
    for _ in range(args.runs):
        took, r["n_scored"] = refresh_once(live)
        r["refresh"].append(took)
    r["events"] = realtime_events(live, ids, args.events)
    loads.append(f"{os.getloadavg()[0]:.1f}")
    table = render(r, loads, args)
    print(table)
    if args.record:
        harness.record("predictive", table)
        log(f"Recorded in {harness.PERFORMANCE}")


if __name__ == "__main__":
    main()
