"""The ``robust_transfer`` benchmark's bookkeeping on planted compare rows (the figures themselves come from
``python -m benchmarks.run --only robust_transfer`` on SST-2)."""

from __future__ import annotations

import pytest

from benchmarks.robust_transfer import _attack_figures, certify_rows, rows


def _row(after: dict[str, float], held_out: set[str], caught: float) -> dict:
    return {
        "attack": {
            name: {"n": 500, "after_attack_accuracy": a, "held_out": name in held_out, "caught": caught}
            for name, a in after.items()
        }
    }


def test_gains_are_the_recipes_after_attack_accuracy_over_erms_and_only_held_out_attacks_are_judged():
    erm = _row({"greedy": 0.30, "pwws": 0.60}, held_out={"greedy", "pwws"}, caught=0.8)  # ERM draws from nothing
    recipe = _row({"greedy": 0.55, "pwws": 0.70}, held_out={"pwws"}, caught=0.6)
    greedy, pwws = _attack_figures(erm, recipe, "greedy"), _attack_figures(erm, recipe, "pwws")
    assert greedy["gain"] == pytest.approx(0.25) and not greedy["held_out"]  # seen by the recipe: reported only
    assert pwws["gain"] == pytest.approx(0.10) and pwws["held_out"]
    assert (pwws["erm_caught"], pwws["recipe_caught"]) == (0.8, 0.6)
    record = {
        "recipe": "consistency",
        "attacks": {"greedy": greedy, "pwws": pwws},
        "clean": {"erm": 0.89, "recipe": 0.885, "change": -0.005},
        "cr": {k: {"accuracy": 0.85, "calibrated_ece": 0.03} for k in ("erm", "recipe")},
        "checks": {"held_out_gain_ge_15_each": False, "clean_within_1pt": True},
    }
    table = rows(record)
    assert "(seen, 500 sentences)" in table[0] and table[0].endswith("| report | — | |")
    assert "(held-out, 500 sentences)" in table[1] and "(+0.100)" in table[1] and table[1].endswith("| no | |")
    assert "80.0% / 60.0%" in table[1] and table[2].endswith("| yes | |")


def test_the_certify_row_says_both_runs_and_whether_the_smoothed_one_met_the_target():
    def run(certified: float, accuracy: float) -> dict:
        return {"n": 300, "certified_accuracy": certified, "test_accuracy": accuracy}

    record = {
        "runs": {"sst2": run(0.55, 0.889), "sst2-smooth": run(0.763, 0.892)},
        "checks": {"certified_ge_60pct": True, "clean_within_3pts_of_erm": True},
    }
    (row,) = certify_rows(record)
    assert "(300 test sentences" in row and "| 0.550 / 0.763; 0.889 / 0.892 |" in row and row.endswith("| yes | |")
    record["checks"]["clean_within_3pts_of_erm"] = False
    assert certify_rows(record)[0].endswith("| no | |")


def test_split_cr_halves_by_seed_into_unlabelled_target_and_labelled_held_half(tmp_path):
    from benchmarks.robust_transfer import split_cr

    lines = [f"{i % 2} review number {i} , fine" for i in range(11)]
    (tmp_path / "cr.all").write_text("\n".join(lines) + "\n\n1 \n0\n")  # a label alone is no example
    target, held = split_cr(tmp_path / "cr.all", tmp_path / "out", seed=3)
    texts, labelled = target.read_text().splitlines(), held.read_text().splitlines()
    assert len(texts) == 5 and len(labelled) == 6  # the blank line and the bare labels are dropped
    assert sorted([*(f"{int(t.split()[2]) % 2} {t}" for t in texts), *labelled]) == sorted(lines)  # a partition
    assert all(not t[0].isdigit() for t in texts)  # labels stripped from the target half
    again, _ = split_cr(tmp_path / "cr.all", tmp_path / "again", seed=3)
    other, _ = split_cr(tmp_path / "cr.all", tmp_path / "other", seed=4)
    assert again.read_text() == target.read_text() != other.read_text()


def test_cr_target_row_gives_both_calibrations_and_judges_the_target_one():
    from benchmarks.robust_transfer import cr_target_rows

    def median(in_domain: float, target: float) -> dict:
        return {"median": {"in_domain": {"calibrated_ece": in_domain}, "target": {"calibrated_ece": target}}}

    record = {
        "splits": 3,
        "rows": {"sst2": median(0.038, 0.030), "sst2-mixcons": median(0.062, 0.054)},
        "checks": {"cr_calibrated_ece_no_worse_in_domain": False, "cr_calibrated_ece_no_worse_target": False},
    }
    (row,) = cr_target_rows(record)
    assert "| ECE | 0.0380 / 0.0620; 0.0300 / 0.0540 | defence no worse | no |" in row
