"""benchmarks/llm.py's table rows on planted results (the benches themselves train SmolLM2 for half an hour)."""

from __future__ import annotations

from benchmarks.llm import laplace_clinc_rows


def planted(la_nll: float) -> dict:
    figures = {"ece": 0.01, "brier": 0.1, "aurc": 0.01, "error_auroc": 0.9, "cost_ratio": 11.0}
    return {
        "laplace_lora": {"nll": la_nll, **figures},
        "temperature_scaled": {"nll": 0.25, "ece": 0.009, "temperature": 1.2},
        "ood_auroc": {"least_confidence": 0.93, "knn": 0.967, "laplace_lora": 0.941},
        "nll_no_worse_than_temperature": la_nll <= 0.25,
    }


def test_laplace_clinc_rows_say_the_check_and_every_oos_auroc():
    better, worse = laplace_clinc_rows(planted(0.24)), laplace_clinc_rows(planted(0.26))
    assert len(better) == 2 and "0.2400 / 0.0100 vs 0.2500 / 0.0090 (11.0× a pass) | NLL no worse | yes |" in better[0]
    assert "| NLL no worse | no |" in worse[0]
    assert "0.9410 (least_confidence 0.9300, knn 0.9670) | report |" in better[1]
