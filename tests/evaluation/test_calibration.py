import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

from caveat.errors import ConfigError
from caveat.evaluation import calibration as cal
from caveat.uncertainty import ArrayError

# Six binary predictions: confidence of the predicted class 0, and whether it was right.
CONF = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.55])
RIGHT = np.array([1, 0, 1, 1, 0, 1], bool)
PROBS6 = np.stack([CONF, 1 - CONF], axis=1)  # (6, 2): argmax is class 0 everywhere
LABELS6 = np.where(RIGHT, 0, 1)
# Uncertainty scores 0.1 .. 0.6 with errors at the 2nd and 5th most confident inputs.
SCORES6 = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
ERRORS6 = np.array([0, 1, 0, 0, 1, 0], bool)


def random_case(n=300, c=4, seed=0):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(scale=2.0, size=(n, c)), axis=1)
    labels = rng.integers(0, c, size=n)
    return probs, labels


def test_ece_mce_by_hand():
    # 5 equal-width bins (lo, hi]: (0.8, 1] holds 0.95 right, 0.85 wrong: |0.5 - 0.9| = 0.4
    # (0.6, 0.8] holds 0.75, 0.65 both right: |1 - 0.7| = 0.3; (0.4, 0.6] holds 0.55 x2, one right:
    # |0.5 - 0.55| = 0.05. ECE = (2*0.4 + 2*0.3 + 2*0.05) / 6 = 0.25; MCE = 0.4.
    assert cal.ece(PROBS6, LABELS6, n_bins=5) == pytest.approx(0.25)
    assert cal.mce(PROBS6, LABELS6, n_bins=5) == pytest.approx(0.4)
    # 2 equal-mass bins: {0.55, 0.55, 0.65} acc 2/3 conf 0.5833 -> 1/12; {0.75, 0.85, 0.95} acc 2/3
    # conf 0.85 -> 0.18333. ECE = (1/12 + 0.18333) / 2 = 0.13333; MCE = 0.18333.
    assert cal.ece(PROBS6, LABELS6, n_bins=2, adaptive=True) == pytest.approx(0.4 / 3)
    assert cal.mce(PROBS6, LABELS6, n_bins=2, adaptive=True) == pytest.approx(0.55 / 3)
    # 3 equal-mass bins of 2 are the equal-width bins above
    assert cal.ece(PROBS6, LABELS6, n_bins=3, adaptive=True) == pytest.approx(0.25)


def test_ece_zero_when_perfectly_calibrated_bins():
    # confidence 0.75 in one bin with 3 of 4 right: acc == conf
    probs = np.array([[0.75, 0.25]] * 4)
    assert cal.ece(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


def test_brier_and_nll_match_sklearn():
    probs, labels = random_case()
    assert cal.nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=range(4)))
    assert cal.brier(probs, labels) == pytest.approx(
        brier_score_loss(labels, probs, labels=range(4), scale_by_half=False)
    )
    p2, y2 = random_case(c=2, seed=1)
    # binary: our sum over both classes is twice sklearn's squared error of the positive class
    assert cal.brier(p2, y2) == pytest.approx(2 * brier_score_loss(y2, p2[:, 1]))
    assert cal.brier(np.eye(3), np.arange(3)) == 0.0 and cal.brier(np.eye(3), [1, 2, 0]) == 2.0


@pytest.mark.parametrize("seed", [0, 1])
def test_ranking_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=200).astype(float)  # many ties
    errors = rng.random(200) < 0.2 + 0.1 * scores
    assert cal.error_detection_auroc(scores, errors) == pytest.approx(roc_auc_score(errors, scores))
    assert cal.error_detection_aupr(scores, errors) == pytest.approx(average_precision_score(errors, scores))
    s_in, s_out = scores[~errors], scores[errors]
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    assert cal.ood_auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, np.r_[s_in, s_out]))
    fpr, tpr, _ = roc_curve(y, np.r_[s_in, s_out], drop_intermediate=False)
    assert cal.fpr_at_95_tpr(s_in, s_out) == pytest.approx(fpr[np.searchsorted(tpr, 0.95)])


def test_auroc_closed_forms_and_fpr_by_hand():
    assert cal.ood_auroc([0.0, 1.0], [2.0, 3.0]) == 1.0
    assert cal.ood_auroc([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert cal.ood_auroc([1.0, 1.0], [1.0, 1.0]) == 0.5  # all tied: each pair counts one half
    # 20 OOD scores 1..20: flagging 95% = 19 of them needs t = 2; in-distribution 2 and 3 are >= t
    assert cal.fpr_at_95_tpr([0.0, 1.5, 2.0, 3.0], np.arange(1.0, 21.0)) == 0.5


def test_risk_coverage_and_aurc_by_hand():
    coverage, risk = cal.risk_coverage_curve(SCORES6, ERRORS6)
    np.testing.assert_allclose(coverage, np.arange(1, 7) / 6)
    np.testing.assert_allclose(risk, [0, 1 / 2, 1 / 3, 1 / 4, 2 / 5, 2 / 6])
    # AURC = (0 + 1/2 + 1/3 + 1/4 + 2/5 + 1/3) / 6 = 1.81667 / 6
    assert cal.aurc(SCORES6, ERRORS6) == pytest.approx(109 / 360)
    # the most confident two tie: answered together, both positions take risk 1/2, in either order
    tied = np.array([0.1, 0.1, 0.3, 0.4, 0.5, 0.6])
    coverage, risk = cal.risk_coverage_curve(tied, ERRORS6)
    np.testing.assert_allclose(coverage, np.arange(2, 7) / 6)
    expected = (1 / 2 + 1 / 2 + 1 / 3 + 1 / 4 + 2 / 5 + 1 / 3) / 6
    assert cal.aurc(tied, ERRORS6) == pytest.approx(expected)
    assert cal.aurc(tied, ERRORS6[[1, 0, 2, 3, 4, 5]]) == pytest.approx(expected)
    # an oracle that scores errors highest: risk 0 until the 4 correct inputs are answered
    assert cal.aurc(ERRORS6 + SCORES6, ERRORS6) == pytest.approx((1 / 5 + 2 / 6) / 6)
    # with 0/1 scores the two errors tie and are answered together: both positions take risk 2/6
    assert cal.aurc(ERRORS6.astype(float), ERRORS6) == pytest.approx((2 / 6 + 2 / 6) / 6)


def test_accuracy_at_coverage_and_selective_risk():
    correct = ~ERRORS6
    assert cal.accuracy_at_coverage(SCORES6, correct, 0.5) == pytest.approx(2 / 3)
    assert cal.accuracy_at_coverage(SCORES6, correct, 1.0) == pytest.approx(4 / 6)
    assert cal.accuracy_at_coverage(SCORES6, correct, 1 / 6) == 1.0
    # ties at the cut are broken by input order: of the tied first two, the earlier (wrong) one is kept
    assert cal.accuracy_at_coverage(np.r_[0.1, 0.1, SCORES6[2:]], ~ERRORS6[[1, 0, 2, 3, 4, 5]], 1 / 6) == 0.0
    assert cal.selective_risk([1, 0, 1, 0], [True, True, False, False]) == 0.5
    assert np.isnan(cal.selective_risk([1, 0], [False, False]))


def test_errors_name_value_and_fix():
    with pytest.raises(ConfigError, match="n_bins must be an integer >= 1; got 0"):
        cal.ece(PROBS6, LABELS6, n_bins=0)
    with pytest.raises(ArrayError, match=r"probs must have shape \(N, C\).*mean\(axis=0\)"):
        cal.ece(PROBS6[None], LABELS6)
    with pytest.raises(ArrayError, match=r"labels must lie in \[0, 2\); got values in \[0, 5\]"):
        cal.nll(PROBS6, np.arange(6))
    with pytest.raises(ArrayError, match="sum to 1"):
        cal.brier(PROBS6 * 2, LABELS6)
    with pytest.raises(ArrayError, match="errors are all False"):
        cal.error_detection_auroc(SCORES6, np.zeros(6, bool))
    with pytest.raises(ArrayError, match="errors are all False"):
        cal.error_detection_aupr(SCORES6, np.zeros(6, bool))
    with pytest.raises(ArrayError, match=r"errors must have shape \(6,\)"):
        cal.aurc(SCORES6, ERRORS6[:5])
    with pytest.raises(ArrayError, match="errors must be bool or 0/1"):
        cal.aurc(SCORES6, np.arange(6))
    with pytest.raises(ArrayError, match="scores contain NaN"):
        cal.aurc(np.r_[np.nan, SCORES6[1:]], ERRORS6)
    with pytest.raises(ConfigError, match=r"coverage must lie in \(0, 1\]; got 1.5"):
        cal.accuracy_at_coverage(SCORES6, ~ERRORS6, 1.5)
    with pytest.raises(ConfigError, match=r"tpr must lie in \(0, 1\]; got 95"):
        cal.fpr_at_95_tpr(SCORES6, SCORES6, tpr=95)


def test_ece_noise_is_the_ece_of_simulated_calibrated_answers():
    """The reference: ece() itself on each simulated correctness vector (same seed), and the promise: a model that
    is calibrated by construction exceeds the upper bound in about 5% of fresh samples."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(3, 0.5), size=400)  # (N, C)
    got = cal.ece_noise(probs, draws=60, seed=3)
    conf, pred = probs.max(1), probs.argmax(1)
    right = np.random.default_rng(3).random((60, 400)) < conf
    values = [cal.ece(probs, np.where(r, pred, (pred + 1) % 3)) for r in right]
    assert got["median"] == pytest.approx(np.median(values)) and got["upper"] == pytest.approx(
        np.quantile(values, 0.95)
    )
    fresh = np.random.default_rng(7).random((400, 400)) < conf  # answers right with probability = confidence
    over = np.mean([cal.ece(probs, np.where(r, pred, (pred + 1) % 3)) > got["upper"] for r in fresh])
    assert 0.01 <= over <= 0.10
    assert cal.ece_noise(probs[:40])["median"] > cal.ece_noise(probs)["median"]  # fewer inputs, more noise
    with pytest.raises(ConfigError, match="draws"):
        cal.ece_noise(probs, draws=1)
