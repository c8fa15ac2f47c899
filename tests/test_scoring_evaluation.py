"""The preview's measures on plain values: ROC AUC by ranks, deciles, lift, histogram."""

from __future__ import annotations

from scoring.evaluation import deciles, histogram, lift, roc_auc


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
