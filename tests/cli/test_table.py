"""``caveat evaluate --format table``: the calibrated figures, per section, within 80-100 columns, no word split."""

from __future__ import annotations

import copy
import re
import shutil

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.cli.common import shorten, table_width, wrap_name
from caveat.cli.evaluate import print_table

runner = CliRunner()

LONG_SET = "/home/someone/projects/customer_support/data/out_of_scope_requests_2024_q3_holdout.txt"
LONG_LABEL = "a_very_long_intent_label_name_for_checking_wrapping_behaviour"
LONG_SHIFT = "customer_reviews_from_another_shop_2023"


def _ood(least_confidence: float) -> dict:
    return {
        "least_confidence": {"auroc": least_confidence, "fpr95": 0.1338},
        "entropy": {"auroc": 0.9734, "fpr95": 0.1253},
        "energy": {"auroc": 0.9787, "fpr95": 0.0922},
        "mahalanobis": {"auroc": 0.9816, "fpr95": 0.082},
    }


def _method(score: str, ece: float, aurc: float, error_auroc: float, ood: float) -> dict:
    return {
        "score": score,
        "ece": ece,
        "ece_adaptive": ece,
        "brier": 0.0546,
        "nll": 0.1426,
        "aurc": aurc,
        "error_auroc": error_auroc,
        "accuracy_at_80": 0.99,
        "accuracy_at_90": 0.98,
        "accuracy_at_95": 0.97,
        "cost_ratio": 1.0036,
        "ood_auroc": {"oos_test": ood, LONG_SET: 0.5},
        "fpr95": {"oos_test": 0.082, LONG_SET: 0.9},
    }


def _figures(accuracy: float, ece: float, calibrated_ece: float, coverage: float) -> dict:
    """The in-domain keys a calibrated text run's evaluate writes (as on CLINC150), for one set."""
    return {
        "accuracy": accuracy,
        "macro_f1": 0.9655034,
        "weighted_f1": 0.9655034,
        "n": 4500,
        "nll": 0.1481029,
        "ece": ece,
        "ece_adaptive": 0.013032,
        "brier": 0.0552807,
        "aurc": 0.0028532,
        "error_auroc": 0.946056,
        "accuracy_at_80": 0.9975,
        "accuracy_at_90": 0.99284,
        "accuracy_at_95": 0.98526,
        "calibrated": {
            "temperature": 1.1322996,
            "ece": calibrated_ece,
            "nll": 0.1426019,
            "brier": 0.0546376,
            "ece_noise": {"median": 0.0071, "upper": 0.0093, "level": 0.95},
        },
        "conformal": {"coverage": coverage, "set_size": 0.9026666},
        "abstention": {
            "score": "least_confidence",
            "risk": 0.0064532,
            "coverage": 0.8953333,
            "guarantee": "risk ≤ 2% at 95% confidence",
        },
    }


@pytest.fixture
def metrics() -> dict:
    m = {"data": "test", "source": "/work/shared/data/clinc150/data_full.json#test", "task": "text-classification"}
    m.update(_figures(0.9655555, 0.0159714, 0.0104925, 0.8957777))
    m["per_class"] = {
        "play_music": {"precision": 0.923, "recall": 0.8, "f1": 0.857, "support": 30},
        "calendar": {"precision": 0.964, "recall": 0.9, "f1": 0.931, "support": 30},
        LONG_LABEL: {"precision": 0.1, "recall": 0.1, "f1": 0.01, "support": 3},
    }
    m["decisions"] = {
        "in_scope": {"answer": 4029, "abstain": 471, "route": 0},
        "oos_test": {
            "answer": 53,
            "abstain": 947,
            "route": 0,
            "oos_recall": 0.947,
            "in_scope_accuracy": 0.9655555,
            "in_scope_answered_accuracy": 0.9935467,
            "combined_answered_error": 0.0193532,
            "combined_coverage": 0.7421818,
        },
        LONG_SET: {"answer": 1, "abstain": 2, "route": 3, "oos_recall": 0.8333, "combined_answered_error": 0.0201},
    }
    m["ood"] = {"oos_test": _ood(0.9677125), LONG_SET: _ood(0.61)}
    m["ood_auroc"] = {"oos_test": 0.9677125, LONG_SET: 0.61}
    m["fpr95"] = {"oos_test": 0.1337777, LONG_SET: 0.5}
    m["methods"] = {
        "least_confidence": _method("least_confidence", 0.0104925, 0.0028856, 0.9453565, 0.9677125),
        "mahalanobis": _method("mahalanobis", 0.0104925, 0.0047607, 0.9035717, 0.981622),
        "laplace": _method("entropy", 0.0084, 0.003, 0.9424, 0.9738),
    }
    shifted = _figures(0.7712, 0.1234, 0.0567, 0.8111)
    shifted.update(source="custrev.all", skipped=0, ood={"least_confidence": {"auroc": 0.6543, "fpr95": 0.9}})
    m["shift"] = {"cr": shifted, LONG_SHIFT: copy.deepcopy(shifted)}
    m["mc_dropout"] = {
        "samples": 10,
        "ece": 0.0211,
        "nll": 0.1499,
        "aurc": 0.0031,
        "error_auroc": 0.9333,
        "top_layers": 2,
        "cost_ratio": 9.8765,
        "ood": {"oos_test": {"least_confidence": {"auroc": 0.9612}, "mutual_information": {"auroc": 0.8844}}},
    }
    m["ensemble"] = {
        "samples": 5,
        "members": 5,
        "accuracy": 0.9702,
        "ece": 0.0122,
        "aurc": 0.0027,
        "cost_ratio": 5.02,
        "ood": {},
    }
    return m


def _render(capsys, metrics: dict, **kwargs) -> str:
    print_table(metrics, **kwargs)
    return capsys.readouterr().out


def _cells(out: str, first: str) -> list[str]:
    """The cells of the first line that starts with ``first`` (cells are two or more spaces apart)."""
    line = next(line for line in out.splitlines() if line.startswith(first))
    return re.split(r"\s{2,}", line.strip())


def test_the_table_shows_the_calibrated_figures(capsys, metrics):
    out = _render(capsys, metrics, level=0.9, width=100)
    assert _cells(out, "accuracy") == ["accuracy", "0.9656"]
    assert _cells(out, "macro F1") == ["macro F1", "0.9655"]
    assert _cells(out, "inputs") == ["inputs", "4500"]
    assert _cells(out, "ECE, raw → calibrated") == ["ECE, raw → calibrated", "0.0160 → 0.0105"]
    assert _cells(out, "NLL, raw → calibrated") == ["NLL, raw → calibrated", "0.1481 → 0.1426"]
    assert _cells(out, "temperature") == ["temperature", "1.132"]
    assert _cells(out, "ECE of a calibrated") == ["ECE of a calibrated model, 95% bound", "0.0093"]
    assert _cells(out, "set coverage") == ["set coverage (level 90%)", "0.8958"]
    assert _cells(out, "mean set size") == ["mean set size", "0.90"]
    assert _cells(out, "abstention risk") == ["abstention risk", "0.0065"]
    assert _cells(out, "abstention coverage") == ["abstention coverage", "0.8953"]
    assert _cells(out, "guarantee") == ["guarantee", "risk ≤ 2% at 95% confidence"]

    # OOD detection: every set and score, the policy's score marked
    assert _cells(out, "oos_test  ") == ["oos_test", "least_confidence (policy)", "0.9677", "0.1338"]
    assert ["entropy", "0.9734", "0.1253"] in [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    assert _cells(out, "/home/someone/projects/customer_  least")[1:] == [
        "least_confidence (policy)",
        "0.6100",
        "0.1338",
    ]

    # decisions per set: answer / abstain / route, OOS recall, answered error and share
    assert _cells(out, "in-scope") == ["in-scope", "4029", "471", "0", "—", "0.0065", "0.8953"]
    assert _cells(out, "oos_test  ")[0] == "oos_test"  # the OOD table's row comes first
    decisions = out[out.index("decisions of the calibrated policy") :]
    assert _cells(decisions, "oos_test") == ["oos_test", "53", "947", "0", "0.9470", "0.0194", "0.7422"]
    assert _cells(decisions, "/home/someone/")[1:] == ["1", "2", "3", "0.8333", "0.0201", "—"]

    # each shifted set next to the in-domain split; the shift AUROC only for the shifted ones
    shift = out[out.index("distribution shift") :]
    assert _cells(shift, "test") == ["test", "4500", "0.9656", "0.0160 → 0.0105", "0.8958", "0.0065", "0.8953", "—"]
    assert _cells(shift, "cr") == ["cr", "4500", "0.7712", "0.1234 → 0.0567", "0.8111", "0.0065", "0.8953", "0.6543"]

    # methods side by side; the score a method ranks by under its name when it differs
    methods = out[out.index("uncertainty methods side by side") :]
    assert _cells(methods, "mahalanobis") == ["mahalanobis", "0.0105", "0.0048", "0.9036", "0.9816", "0.5000", "1.00×"]
    assert _cells(methods, "laplace")[1:3] == ["0.0084", "0.0030"]
    assert methods.splitlines()[[i for i, s in enumerate(methods.splitlines()) if s.startswith("laplace")][0] + 1] == (
        "(entropy)"
    )

    sampled = out[out.index("MC dropout (10 samples, top 2 layers)") :]
    assert _cells(sampled, "ECE") == ["ECE", "0.0211"] and _cells(sampled, "cost × one pass")[1] == "9.88×"
    assert _cells(sampled, "OOD AUROC oos_test (mutual_information)")[1] == "0.8844"
    assert _cells(out[out.index("deep ensemble (5 members)") :], "ECE") == ["ECE", "0.0122"]
    ensemble = out[out.index("deep ensemble (5 members)") :]
    assert _cells(ensemble, "accuracy of the mean") == ["accuracy of the mean", "0.9702"]
    assert _cells(out[out.index("per class") :], "play_music") == ["play_music", "0.923", "0.800", "0.857", "30"]


@pytest.mark.parametrize("width", [80, 100])
def test_the_table_fits_the_width_and_splits_no_word(capsys, metrics, width):
    out = _render(capsys, metrics, width=width)
    assert max(len(line) for line in out.splitlines()) <= width
    assert "…" not in out  # nothing cut short: every name wrapped at a boundary
    words = {w for w in re.split(r"[/_.#\s]+", " ".join([LONG_SET, LONG_LABEL, LONG_SHIFT, metrics["source"]])) if w}
    assert words - set(re.split(r"[/_.#\s]+", out)) == set()
    # the long set name's lines each end at a boundary, and read back as the name
    lines = [line.split("  ")[0] for line in out.splitlines()]
    start = lines.index(next(s for s in lines if s and LONG_SET.startswith(s)))
    joined = ""
    while len(joined) < len(LONG_SET):
        joined += lines[start].strip()
        start += 1
    assert joined == LONG_SET


def test_sections_that_do_not_apply_are_left_out(capsys):
    uncalibrated = {
        "data": "validation",
        "source": "validation.jsonl",
        "task": "text-classification",
        "accuracy": 0.5,
        "macro_f1": 0.25,
        "n": 2,
        "nll": 0.7,
        "ece": 0.125,
        "methods": {"least_confidence": _method("least_confidence", 0.125, 0.1, None, 0.5)},
        "per_class": {},
    }
    out = _render(capsys, uncalibrated, side_by_side=False)
    assert _cells(out, "ECE") == ["ECE", "0.1250"]
    for absent in ("calibrated", "temperature", "set coverage", "abstention", "out-of-scope", "decisions", "shift"):
        assert absent not in out
    assert "uncertainty methods" not in out and "per class" not in out and "MC dropout" not in out
    assert "uncertainty methods" in _render(capsys, uncalibrated)


def test_a_ner_table_shows_span_f1_and_span_calibration(capsys):
    ner = {
        "data": "test",
        "source": "test.conll",
        "task": "token-classification",
        "f1": 0.8123,
        "precision": 0.8,
        "recall": 0.825,
        "macro_f1": 0.7,
        "token_accuracy": 0.95,
        "n": 40,
        "n_entities": 61,
        "per_type": {"PER": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "support": 30}},
        "spans": {"n_spans": 60, "precision": 0.8, "product": {"ece": 0.2, "aurc": 0.1}, "min": {"ece": 0.3}},
        "calibrated": {"temperature": 1.5, "aggregate": "min", "n_spans": 60, "span_ece": 0.05, "span_aurc": 0.09},
        "abstention": {"score": "span", "risk": None, "coverage": 0.0, "guarantee": "risk ≤ 20% at 90% confidence"},
    }
    out = _render(capsys, ner)
    assert _cells(out, "span F1") == ["span F1", "0.8123"] and _cells(out, "entities") == ["entities", "61"]
    assert _cells(out, "span ECE (min), raw → calibrated") == ["span ECE (min), raw → calibrated", "0.3000 → 0.0500"]
    assert _cells(out, "abstention risk") == ["abstention risk", "—"]
    assert _cells(out, "PER") == ["PER", "0.900", "0.800", "0.847", "30"]


def test_names_wrap_at_boundaries_and_long_words_shorten_in_the_middle(monkeypatch):
    assert wrap_name("/work/shared/data/clinc150/data_full.json#test", 20) == (
        "/work/shared/data/\nclinc150/data_full.\njson#test"
    )
    assert wrap_name("supercalifragilistic_x", 9) == "supe…tic_\nx"  # 9 columns, the underscore kept
    assert shorten("abcdefghij", 5) == "ab…ij"
    monkeypatch.delenv("COLUMNS", raising=False)
    assert table_width() == 100  # not a terminal
    for columns, width in (("60", 80), ("90", 90), ("200", 100)):
        monkeypatch.setenv("COLUMNS", columns)
        assert table_width() == width


def test_evaluate_format_table_on_a_calibrated_run(served_run, tmp_path):
    run = shutil.copytree(served_run, tmp_path / "run")  # evaluate writes metrics.json: leave the fixture alone
    oos = tmp_path / "out_of_scope_questions_about_the_weather.txt"
    oos.write_text("zebra xylophone quartz\nwhat is the capital of peru\nqqq vvv www\n")
    result = runner.invoke(app, ["evaluate", str(run), "--ood", str(oos), "--format", "table"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    for figure in ("accuracy", "ECE, raw → calibrated", "temperature", "set coverage (level 80%)", "mean set size"):
        assert figure in out
    assert "abstention risk" in out and "guarantee" in out and "risk ≤ 20%" in out
    assert "out-of-scope detection" in out and "decisions of the calibrated policy" in out
    assert re.search(r"^in-scope\s+\d+\s+\d+\s+\d+", out, re.M)
    assert {"out", "of", "scope", "questions", "about", "the", "weather"} <= set(re.split(r"[/_.#\s]+", out))
    assert "uncertainty methods side by side" in out  # evaluate scores every method of a calibrated run
