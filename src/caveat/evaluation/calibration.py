"""Calibration, error-detection, OOD and selective-prediction metrics as pure functions on arrays.

Conventions: ``scores`` are uncertainty scores ``(N,)``, higher = more uncertain; ``errors`` and
``correct`` are ``(N,)`` bool (or 0/1). Ties are handled deterministically, as each function says:
ranking metrics give tied scores the average rank (as scikit-learn does), and selective metrics
answer tied inputs together or break ties by input order, never at random.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from caveat.errors import ConfigError
from caveat.uncertainty.errors import ArrayError
from caveat.uncertainty.scores import check_probs

_CLIP = 1e-12  # as evaluation.metrics.nll: log(0) would make one bad input dominate


def _probs_labels(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs)
    if p.ndim != 2:
        raise ArrayError(f"probs must have shape (N, C); got {p.shape}. Average samples first: probs.mean(axis=0)")
    p = check_probs(p)[0]  # (N, C)
    y = np.asarray(labels)
    if y.shape != (len(p),) or not np.issubdtype(y.dtype, np.integer):
        raise ArrayError(f"labels must be integer class ids of shape ({len(p)},); got {y.dtype} {y.shape}")
    if len(y) == 0:
        raise ArrayError("probs and labels are empty; metrics need at least one input")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ArrayError(f"labels must lie in [0, {p.shape[1]}); got values in [{y.min()}, {y.max()}]")
    return p, y


def _scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise ArrayError(f"{name} must be a non-empty 1-D array (N,); got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ArrayError(f"{name} contain NaN or inf; uncertainty scores must be finite")
    return s


def _flags(flags: np.ndarray, n: int, name: str) -> np.ndarray:
    f = np.asarray(flags)
    if f.shape != (n,):
        raise ArrayError(f"{name} must have shape ({n},), one entry per input; got {f.shape}")
    if f.dtype != bool:
        if not np.all(np.isin(f, (0, 1))):
            raise ArrayError(f"{name} must be bool or 0/1; got values {np.unique(f)[:5]}")
        f = f.astype(bool)
    return f


def _bins(probs, labels, n_bins: int, adaptive: bool) -> list[tuple[int, float, float]]:
    """(count, accuracy, mean confidence) of each non-empty bin of top-1 confidence."""
    if not (isinstance(n_bins, (int, np.integer)) and n_bins >= 1):
        raise ConfigError(f"n_bins must be an integer >= 1; got {n_bins!r}. Use 15")
    p, y = _probs_labels(probs, labels)
    conf = p.max(axis=1)  # (N,)
    correct = p.argmax(axis=1) == y  # ties in probs: the lowest class index is the prediction
    if adaptive:
        order = np.argsort(conf, kind="stable")  # equal confidences keep input order
        groups = [g for g in np.array_split(order, n_bins) if len(g)]
    else:
        which = _bin_index(conf, n_bins)
        groups = [np.flatnonzero(which == b) for b in range(n_bins)]
        groups = [g for g in groups if len(g)]
    return [(len(g), float(correct[g].mean()), float(conf[g].mean())) for g in groups]


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """(N,) equal-width bin of each confidence: right-closed bins (lo, hi] of [0, 1], the first also holding 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], conf, side="left")


def ece(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15, adaptive: bool = False) -> float:
    """Expected calibration error of the top-1 confidence: ``sum_b |B_b|/N * |acc_b - conf_b|``.

    Naeini, Cooper & Hauskrecht (2015), "Obtaining Well Calibrated Probabilities Using Bayesian
    Binning", AAAI; Guo et al. (2017). ``adaptive=True`` uses equal-mass bins (Nixon et al. 2019,
    "Measuring Calibration in Deep Learning").

    Parameters
    ----------
    probs : (N, C); labels : (N,) integer class ids.
    n_bins : int >= 1, default 15.
    adaptive : bool, default False
        False: equal-width, right-closed bins ``(lo, hi]`` of [0, 1] (the first also holds 0).
        True: sort by confidence (stable: ties keep input order) and split into ``n_bins`` groups
        whose sizes differ by at most one (``np.array_split``); tied confidences may straddle a cut.

    Returns
    -------
    float in [0, 1]; empty bins do not count.
    """
    bins = _bins(probs, labels, n_bins, adaptive)
    n = sum(c for c, _, _ in bins)
    return float(sum(c / n * abs(a - f) for c, a, f in bins))


def ece_noise(
    probs: np.ndarray, *, n_bins: int = 15, draws: int = 200, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """How large :func:`ece` is from sampling alone: the ECE a perfectly calibrated model with these top-1
    confidences shows on this many inputs, when each answer is right with probability equal to its confidence.

    The binned ECE is biased upwards on finite samples (Kumar, Liang & Ma 2019, "Verified Uncertainty
    Calibration"; Roelofs et al. 2022, "Mitigating Bias in Calibration Error Estimation"), so a measured ECE is
    only evidence of miscalibration when it exceeds this. ``draws`` simulated correctness vectors, equal-width
    bins as :func:`ece`; returns ``{"median", "upper"}`` (``upper``: the ``level`` quantile) and ``level``.
    """
    if not (isinstance(draws, (int, np.integer)) and draws >= 2):
        raise ConfigError(f"draws must be an integer >= 2; got {draws!r}. Use 200")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1); got {level!r}. Use 0.95")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ArrayError(f"probs must be a non-empty (N, C) array; got shape {p.shape}")
    conf = p.max(axis=1)  # (N,)
    which = _bin_index(conf, n_bins)  # (N,) the bins of ece()
    right = np.random.default_rng(seed).random((draws, len(conf))) < conf  # (draws, N) simulated correctness
    gap = right - conf  # (draws, N): correct minus confidence
    per_bin = np.zeros((draws, n_bins))
    np.add.at(per_bin, (slice(None), which), gap)  # summed gap per (draw, bin)
    values = np.abs(per_bin).sum(axis=1) / len(conf)  # (draws,)
    return {"median": float(np.median(values)), "upper": float(np.quantile(values, level)), "level": level}


def mce(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 15, adaptive: bool = False) -> float:
    """Maximum calibration error: ``max_b |acc_b - conf_b|`` over non-empty bins (bins as in :func:`ece`).

    Naeini, Cooper & Hauskrecht (2015), AAAI.
    """
    return float(max(abs(a - f) for _, a, f in _bins(probs, labels, n_bins, adaptive)))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over inputs of ``sum_c (p_c - 1[y = c])^2``, in [0, 2].

    Brier (1950), "Verification of Forecasts Expressed in Terms of Probability". For two classes it
    is twice the binary ``sklearn.metrics.brier_score_loss``.

    Parameters
    ----------
    probs : (N, C); labels : (N,) integer class ids.
    """
    p, y = _probs_labels(probs, labels)
    onehot = np.eye(p.shape[1])[y]  # (N, C)
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (nats); probabilities clipped at 1e-12.

    Parameters
    ----------
    probs : (N, C); labels : (N,) integer class ids.
    """
    p, y = _probs_labels(probs, labels)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], _CLIP, 1.0)).mean())


def _auroc(scores: np.ndarray, positive: np.ndarray, what: str) -> float:
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ArrayError(
            f"AUROC is undefined: {what} are all {'False' if n_pos == 0 else 'True'}; "
            "evaluate on data with both outcomes"
        )
    ranks = rankdata(scores)  # ties get the average rank, i.e. count one half (Mann-Whitney U)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def error_detection_auroc(scores: np.ndarray, errors: np.ndarray) -> float:
    """AUROC of uncertainty scores for detecting wrong predictions (errors are the positive class).

    Hendrycks & Gimpel (2017). Equals P(score of an error > score of a correct prediction), ties
    counting one half; 0.5 is chance.

    Parameters
    ----------
    scores : (N,) uncertainty; errors : (N,) bool, True where the prediction is wrong.
    """
    s = _scores(scores)
    return _auroc(s, _flags(errors, len(s), "errors"), "errors")


def error_detection_aupr(scores: np.ndarray, errors: np.ndarray) -> float:
    """Area under the precision-recall curve for detecting errors, as average precision.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over distinct score thresholds, high scores flagged first;
    tied scores enter together (scikit-learn's ``average_precision_score``). Hendrycks & Gimpel (2017).

    Parameters
    ----------
    scores : (N,) uncertainty; errors : (N,) bool, True where the prediction is wrong.
    """
    s = _scores(scores)
    e = _flags(errors, len(s), "errors")
    if not e.any():
        raise ArrayError("AUPR is undefined: errors are all False; evaluate on data with some errors")
    order = np.argsort(-s, kind="stable")
    s, e = s[order], e[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of tied scores
    tp = np.cumsum(e)[last]
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ood_auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """AUROC for telling out-of-distribution inputs (positive class) from in-distribution ones.

    Hendrycks & Gimpel (2017). Higher score = more OOD; ties count one half.

    Parameters
    ----------
    scores_in : (N_in,); scores_out : (N_out,).
    """
    s_in, s_out = _scores(scores_in, "scores_in"), _scores(scores_out, "scores_out")
    positive = np.r_[np.zeros(len(s_in), bool), np.ones(len(s_out), bool)]
    return _auroc(np.r_[s_in, s_out], positive, "labels")


def fpr_at_95_tpr(scores_in: np.ndarray, scores_out: np.ndarray, *, tpr: float = 0.95) -> float:
    """False-positive rate on in-distribution inputs when ``tpr`` of OOD inputs are flagged.

    Liang, Li & Srikant (2018), "Enhancing the Reliability of OOD Image Detection in Neural
    Networks" (ODIN), ICLR. An input is flagged when ``score >= t``, with t the highest threshold
    that flags at least ``tpr`` of ``scores_out``; in-distribution inputs tied with t are flagged.

    Returns
    -------
    float in [0, 1]; lower is better.
    """
    if not 0 < tpr <= 1:
        raise ConfigError(f"tpr must lie in (0, 1]; got {tpr!r}. Use 0.95")
    s_in, s_out = _scores(scores_in, "scores_in"), _scores(scores_out, "scores_out")
    k = math.ceil(tpr * len(s_out) - 1e-9)  # OOD inputs to flag; 1e-9 absorbs 0.95 * 20 = 19.000...1
    t = np.sort(s_out)[::-1][k - 1]
    return float((s_in >= t).mean())


def risk_coverage_curve(scores: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Selective risk as the most confident inputs are answered first.

    Geifman & El-Yaniv (2017), "Selective Classification for Deep Neural Networks", NeurIPS.
    Tied scores are answered together, so the curve has one point per distinct score and does not
    depend on input order.

    Parameters
    ----------
    scores : (N,) uncertainty (lowest answered first); errors : (N,) bool.

    Returns
    -------
    coverage : (K,) increasing, ending at 1; risk : (K,) error rate among the answered inputs.
    """
    s = _scores(scores)
    e = _flags(errors, len(s), "errors")
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    answered = last + 1
    return answered / len(s), np.cumsum(e)[last] / answered


def aurc(scores: np.ndarray, errors: np.ndarray) -> float:
    """Area under the risk-coverage curve (lower is better).

    Geifman, Uziel & El-Yaniv (2019), "Bias-Reduced Uncertainty Estimation for Deep Neural
    Classifiers", ICLR (after Geifman & El-Yaniv 2017). Without ties it is ``(1/N) sum_n risk(n)``,
    ``risk(n)`` the error rate of the n most confident inputs; tied inputs all take the risk of
    answering their whole group (a right-endpoint step integral of :func:`risk_coverage_curve`).
    """
    coverage, risk = risk_coverage_curve(scores, errors)
    return float(np.sum(np.diff(np.r_[0.0, coverage]) * risk))


def accuracy_at_coverage(scores: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the ``ceil(coverage * N)`` most confident inputs.

    El-Yaniv & Wiener (2010), "On the Foundations of Noise-free Selective Classification", JMLR.
    Ties at the cut are broken by input order (earlier inputs first), so exactly that many are answered.

    Parameters
    ----------
    scores : (N,) uncertainty; correct : (N,) bool; coverage : float in (0, 1].
    """
    if not 0 < coverage <= 1:
        raise ConfigError(f"coverage must lie in (0, 1]; got {coverage!r}. E.g. 0.8 answers 80% of inputs")
    s = _scores(scores)
    c = _flags(correct, len(s), "correct")
    n = max(1, math.ceil(coverage * len(s) - 1e-9))
    return float(c[np.argsort(s, kind="stable")[:n]].mean())


def selective_risk(errors: np.ndarray, answered: np.ndarray) -> float:
    """Error rate among the answered inputs (Geifman & El-Yaniv 2017).

    Parameters
    ----------
    errors : (N,) bool; answered : (N,) bool, True where the system answered.

    Returns
    -------
    float in [0, 1], or NaN when nothing is answered (the risk is undefined at coverage 0).
    """
    e = np.asarray(errors)
    if e.ndim != 1:
        raise ArrayError(f"errors must be 1-D (N,); got shape {e.shape}")
    e = _flags(e, len(e), "errors")
    a = _flags(answered, len(e), "answered")
    return float(e[a].mean()) if a.any() else float("nan")
