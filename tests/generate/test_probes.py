"""Probes and density on hidden states: planted directions are found, saved probes score identically."""

from __future__ import annotations

import numpy as np
import pytest

from caveat.errors import ConfigError, DataError
from caveat.evaluation.calibration import error_detection_auroc
from caveat.generate.estimators import Context, get_estimator, parse_estimators
from caveat.generate.fit import fit_probe_set
from caveat.generate.probes import LinearProbe, ProbeSet, best_split, choose_feature, held_out_auroc
from caveat.generate.sampling import Answer, Generation
from caveat.uncertainty.methods.mahalanobis import Mahalanobis
from caveat.uncertainty.methods.rde import RobustDensity


def _planted(n, *, layers=4, dim=12, layer=2, seed=0):
    """(N, layers, D) hidden states whose ``layer`` holds a linear direction of the errors; other layers noise."""
    rng = np.random.default_rng(seed)
    errors = rng.random(n) < 0.4
    x = rng.normal(size=(n, layers, dim))
    direction = np.zeros(dim)
    direction[:3] = [1.0, -1.0, 0.5]
    x[:, layer] += 2.0 * np.where(errors, 1.0, -1.0)[:, None] * direction
    return x, errors


def _generation(hidden: np.ndarray) -> Generation:
    """A generation whose greedy pass kept ``hidden`` (T, L + 1, D)."""
    answer = Answer("a", [1], np.array([-0.1]), np.array([0.5]), True)
    return Generation("p", answer, [], 0.0, extra={"hidden_states": hidden})


def test_correctness_probe_finds_a_planted_direction_and_not_shuffled_labels():
    x, errors = _planted(300)
    layer, position, table = choose_feature({"prompt_last": x}, errors, folds=5)
    assert (layer, position) == (2, "prompt_last") and table["prompt_last"][2] > 0.95
    assert max(table["prompt_last"][:2]) < 0.7  # noise layers are not chosen
    probe = LinearProbe().fit(x[:, layer], errors)
    test_x, test_errors = _planted(2000, seed=1)
    assert error_detection_auroc(probe.score(test_x[:, layer]), test_errors) > 0.95
    # labels shuffled: the held-out AUROC of a probe on the same features falls to chance
    big_x, big_errors = _planted(1000, seed=2)
    shuffled = np.random.default_rng(2).permutation(big_errors)
    assert held_out_auroc(big_x[:, layer], big_errors) > 0.95
    assert abs(held_out_auroc(big_x[:, layer], shuffled) - 0.5) < 0.06


def test_best_split_separates_two_groups_and_refuses_constant_values():
    values = np.array([0.0, 0.1, 0.05, 1.2, 1.3, 1.25, 0.02])
    threshold = best_split(values)
    assert 0.1 < threshold < 1.2
    with pytest.raises(DataError, match="all equal"):
        best_split(np.ones(5))


def test_choose_feature_needs_both_classes_twice():
    x, _ = _planted(20)
    with pytest.raises(DataError, match="at least two"):
        choose_feature({"prompt_last": x}, np.array([True] + [False] * 19))


def test_probe_set_saved_and_reloaded_scores_identically(tmp_path):
    x, errors = _planted(200)
    probes = ProbeSet(meta={"model": "m"})
    probes.add("correctness", LinearProbe().fit(x[:, 2], errors), layer=2, position="prompt_last")
    probes.add("semantic_entropy", LinearProbe().fit(x[:, 1], errors), layer=1, position="answer_mean")
    probes.add("mahalanobis", Mahalanobis().fit(x[:, 2], np.zeros(200, dtype=int)), layer=2, position="prompt_last")
    probes.add("rde", RobustDensity(n_components=6).fit(x[:, 2]), layer=2, position="prompt_last")
    probes.save(tmp_path / "p")
    assert not list((tmp_path / "p").glob("*.pkl")) and (tmp_path / "p" / "correctness.safetensors").is_file()
    loaded = ProbeSet.load(tmp_path / "p")
    assert loaded.meta == {"model": "m"} and loaded.specs == probes.specs
    rng = np.random.default_rng(5)
    for _ in range(5):
        g = _generation(rng.normal(size=(3, 4, 12)))
        for kind in ("correctness", "semantic_entropy", "mahalanobis", "rde"):
            assert loaded.score(kind, g.extra) == probes.score(kind, g.extra)
        # the registered estimators read the same folder
        ctx = Context()
        assert get_estimator(f"probe:{tmp_path / 'p'}").fn(g, ctx, "") == probes.score("correctness", g.extra)
        assert get_estimator(f"sep:{tmp_path / 'p'}").fn(g, ctx, "") == probes.score("semantic_entropy", g.extra)


def test_mahalanobis_estimator_equals_the_closed_form(tmp_path):
    rng = np.random.default_rng(3)
    train = rng.normal(size=(80, 6)) @ rng.normal(size=(6, 6))  # correlated features
    probes = ProbeSet().add(
        "mahalanobis",
        Mahalanobis(shrinkage="none", ridge=0.0).fit(train, np.zeros(80, dtype=int)),
        layer=1,
        position="answer_mean",
    )
    probes.save(tmp_path / "d")
    mu = train.mean(0)
    precision = np.linalg.inv((train - mu).T @ (train - mu) / len(train))
    estimator = get_estimator(f"mahalanobis:{tmp_path / 'd'}")
    assert estimator.needs == {"hidden_states"}
    for _ in range(4):
        hidden = rng.normal(size=(4, 3, 6))  # T = 4 tokens: the mean of answer rows 1..3 at layer 1
        x = hidden[1:, 1].mean(0)
        expected = (x - mu) @ precision @ (x - mu)
        assert estimator.fn(_generation(hidden), Context(), "") == pytest.approx(expected, rel=1e-8)


def test_rde_estimator_scores_the_answer_mean_state_as_the_density_does(tmp_path):
    rng = np.random.default_rng(4)
    train = rng.normal(size=(60, 6)) @ rng.normal(size=(6, 6)) * 20  # correlated, at a hidden state's scale
    density = RobustDensity(n_components=5).fit(train)
    ProbeSet().add("rde", density, layer=1, position="answer_mean").save(tmp_path / "d")
    estimator = get_estimator(f"rde:{tmp_path / 'd'}")
    assert estimator.needs == {"hidden_states"}
    for _ in range(4):
        hidden = rng.normal(size=(4, 3, 6)) * 20  # T = 4 tokens: the mean of answer rows 1..3 at layer 1
        expected = density.score(hidden[1:, 1].mean(0)[None])[0]
        assert estimator.fn(_generation(hidden), Context(), "") == pytest.approx(expected, rel=1e-12)


def test_estimators_with_an_argument_must_be_given_one(tmp_path):
    with pytest.raises(ConfigError, match="probe:DIR"):
        get_estimator("probe")
    with pytest.raises(ConfigError, match="takes no argument"):
        get_estimator("msp:x")
    with pytest.raises(ConfigError, match="generate-fit"):
        get_estimator(f"probe:{tmp_path}").fn(_generation(np.zeros((1, 2, 3))), Context(), "")
    assert "probe" not in parse_estimators("all", samples=0) and "rauq" in parse_estimators("all", samples=0)
    assert parse_estimators(f"msp,probe:{tmp_path}", samples=0) == ["msp", f"probe:{tmp_path}"]


def test_fit_probe_set_from_arrays_finds_the_planted_layer_and_position_for_both_probes():
    """The arrays half of generate-fit: the correctness probe lands on the layer and position whose states carry
    the errors, the semantic-entropy probe on the one that carries the entropy, and the fitted set scores a
    generation's ``extra`` exactly as it scores the array it was fitted from."""
    x, errors = _planted(400, layer=2, seed=3)  # (N, 4, 12): prompt_last carries the errors at layer 2
    rng = np.random.default_rng(4)
    entropy = rng.random(400) * 0.2 + np.where(rng.random(400) < 0.5, 1.5, 0.0)  # two groups
    answer_mean = rng.normal(size=x.shape)
    answer_mean[:, 1, :3] += 2.0 * np.where(entropy > 1.0, 1.0, -1.0)[:, None]  # answer_mean layer 1 carries it
    features = {"prompt_last": x, "answer_mean": answer_mean}
    probes, summary = fit_probe_set(features, errors, semantic_entropy=entropy)
    assert (probes.specs["correctness"]["layer"], probes.specs["correctness"]["position"]) == (2, "prompt_last")
    assert (probes.specs["semantic_entropy"]["layer"], probes.specs["semantic_entropy"]["position"]) == (
        1,
        "answer_mean",
    )
    assert 1.0 > summary["semantic_entropy"]["threshold"] > 0.2  # the best split lies between the groups
    assert summary["correctness"]["held_out_auroc"]["prompt_last"][2] > 0.95
    assert probes.specs["mahalanobis"]["layer"] == probes.specs["rde"]["layer"] == 2  # where the probe sits
    hidden = np.stack([x[0], answer_mean[0], answer_mean[0]])  # T = 3: row 0 prompt_last, rows 1.. answer tokens
    from_extra = probes.score("correctness", _generation(hidden).extra)
    from_array = probes.scorers["correctness"].score(x[:1, 2])[0]
    assert from_extra == pytest.approx(from_array, abs=1e-12)
    with pytest.raises(DataError, match="two"):
        fit_probe_set(features, np.zeros(400, dtype=bool))  # one class: no probe to fit
    with pytest.raises(DataError, match="400 scores, one per generation"):
        fit_probe_set(features, errors, token_scores={"msp": np.zeros(399)})  # one score short


def test_stacked_probe_learns_what_neither_the_hidden_states_nor_the_token_scores_hold_alone(tmp_path):
    """Errors planted half in a hidden-state direction and half in a token score: the stacked probe, fitted on
    the probe's out-of-fold log-odds and the token score, beats both on fresh generations, scores a
    generation's ``extra`` plus its inputs exactly as the arrays, and reloads to the same score."""

    def draw(n, seed):
        rng = np.random.default_rng(seed)
        errors = rng.random(n) < 0.5
        x = rng.normal(size=(n, 3, 8))
        x[:, 1, 0] += 0.6 * np.where(errors, 1.0, -1.0)  # layer 1 carries part of the signal
        token = rng.normal(size=n) + 1.2 * errors  # and a token statistic carries an independent part
        return {"prompt_last": x, "answer_mean": rng.normal(size=x.shape)}, errors, token

    features, errors, token = draw(600, 0)
    probes, summary = fit_probe_set(features, errors, token_scores={"mean_nll": token})
    assert probes.specs["stacked"]["inputs"] == ["mean_nll"] and summary["stacked"]["held_out_auroc"] > 0.8
    assert probes.specs["correctness"]["l2"] in (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
    test_features, test_errors, test_token = draw(3000, 1)
    probe_scores = probes.scorers["correctness"].score(test_features["prompt_last"][:, 1])
    z = np.column_stack([np.log(probe_scores / (1 - probe_scores)), test_token])
    stacked_scores = probes.scorers["stacked"].score(z)
    auroc = {
        "probe": error_detection_auroc(probe_scores, test_errors),
        "token": error_detection_auroc(test_token, test_errors),
        "stacked": error_detection_auroc(stacked_scores, test_errors),
    }
    assert auroc["stacked"] > max(auroc["probe"], auroc["token"]) + 0.03, auroc
    hidden = np.stack([test_features["prompt_last"][0], test_features["answer_mean"][0]])
    extra = _generation(hidden).extra
    assert probes.score("stacked", extra, {"mean_nll": test_token[0]}) == pytest.approx(stacked_scores[0], abs=1e-12)
    with pytest.raises(ConfigError, match="missing"):
        probes.score("stacked", extra, {})
    probes.save(tmp_path / "p")
    again = ProbeSet.load(tmp_path / "p")
    assert again.score("stacked", extra, {"mean_nll": test_token[0]}) == probes.score(
        "stacked", extra, {"mean_nll": test_token[0]}
    )
