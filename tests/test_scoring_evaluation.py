"""The preview's measures on plain values: ROC AUC by ranks, deciles, lift, histogram."""

from __future__ import annotations

from scoring.evaluation import deciles, histogram, lift, lowest_won, roc_auc, won_share_floor


def test_roc_auc_counts_ties_as_half_and_needs_both_outcomes():
    assert roc_auc([(10, True), (5, False)]) == 1.0
    assert roc_auc([(5, True), (10, False)]) == 0.0
    assert roc_auc([(7, True), (7, False)]) == 0.5
    # Won 30, 20, 10 against lost 20, 0: pairs 1 + 1 + 0.5 + 1 + 0 + 1 = 4.5 of 6
    scored = [(30, True), (20, True), (10, True), (20, False), (0, False)]
    assert roc_auc(scored) == 4.5 / 6
    assert roc_auc([(1, True), (2, True)]) is None
    assert roc_auc([]) is None


def test_deciles_cut_the_ranked_leads_into_ten_groups_the_first_ones_larger():
    scored = [(score, score >= 15) for score in range(23)]  # 23 leads: 3, 3, 3, then 2s

    groups = deciles(scored)

    assert [g.closed for g in groups] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert [(g.label, g.low, g.high, g.won) for g in groups[:3]] == [
        ("10", 20, 22, 3),
        ("9", 17, 19, 3),
        ("8", 14, 16, 2),
    ]
    assert len(deciles([(1, True), (2, False)])) == 2


def test_lift_is_a_groups_conversion_over_all_closed_leads():
    assert lift(3, 4, 4, 16) == 3.0
    assert lift(0, 0, 4, 16) is None
    assert lift(1, 2, 0, 10) is None


def test_one_histogram_holds_both_series_in_round_bins():
    bins = histogram([0, 5, 5, 10], [0, 10, 60, 70], bins=12)

    assert [(b.low, b.high) for b in bins][:2] == [(0, 10), (10, 20)]
    assert [b.counts for b in bins] == [
        (3, 1),
        (1, 1),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 1),
        (0, 1),
    ]
    assert histogram([-12, 3], [], bins=3)[0].low == -20
    assert histogram([], []) == []


def test_the_threshold_hint_reads_the_won_leads_scores():
    scored = [(70, True), (60, True), (90, False), (20, True), (45, True), (5, False)]

    # Won: 70, 60, 45, 20 — lost leads do not count
    assert lowest_won(scored) == 20
    assert won_share_floor(scored, 0.5) == 60  # two of four at 60 or more
    assert won_share_floor(scored, 0.75) == 45  # three of four
    assert won_share_floor(scored, 0.9) == 20  # 3.6 of four: all four
    assert won_share_floor(scored, 0.25) == 70


def test_the_threshold_hint_without_won_leads_is_empty():
    assert lowest_won([(10, False)]) is None
    assert won_share_floor([(10, False)], 0.5) is None
