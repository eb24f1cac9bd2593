"""caveat compare on two tiny runs: one row per run, the right columns, JSON and markdown written,
attacks reused from metrics.json only when their settings match."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app, flag_message
from caveat.errors import ConfigError
from caveat.evaluation.run import evaluate_run
from caveat.report import Report
from caveat.robustness.compare import AttackSettings, compare_runs, to_markdown, write_compare
from caveat.robustness.compare_rows import training_cost

approx = pytest.approx


@pytest.fixture
def two_runs(trained_runs, tmp_path):
    """Copies (compare writes its attacks into each run's metrics.json): erm and fgm."""
    return [shutil.copytree(trained_runs[i], tmp_path / name) for i, name in ((0, "erm"), (2, "fgm"))]


def test_compare_two_runs(two_runs, text_data, mixed_file, tiny_backbone, tmp_path, monkeypatch):
    args = [
        "compare",
        *map(str, two_runs),
        "--data",
        "test",
        "--attack",
        "greedy",
        "--max-examples",
        "8",
        "--max-change",
        "0.3",
        "--min-similarity",
        "0.5",
        "--similarity-model",
        str(tiny_backbone),
        "--shift",
        f"same={text_data / 'test.jsonl'}",
        "--shift",
        f"mixed={mixed_file}",
    ]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert (tmp_path / "out" / "compare.md").read_text() == result.stdout == to_markdown(saved)
    assert saved["columns"] == [
        "run",
        "recipe",
        "accuracy",
        "ECE",
        "after greedy",
        "same accuracy",
        "same ECE",
        "mixed accuracy",
        "mixed ECE",
        "s/step",
    ]
    assert [row[:2] for row in saved["table"]] == [["erm", "erm"], ["fgm", "fgm α=1"]]
    assert all(len(row) == len(saved["columns"]) for row in saved["table"])
    lines = result.stdout.splitlines()
    assert lines[2].startswith("| run | recipe | accuracy | ECE | after greedy |") and len(lines[4:6]) == 2
    for run, row in zip(two_runs, saved["rows"]):
        evaluated = evaluate_run(run, "test", write=False)
        assert row["accuracy"] == approx(evaluated["accuracy"]) and row["ece"] == approx(evaluated["ece"])
        assert row["shift"]["same"]["accuracy"] == approx(row["accuracy"])  # identical data, identical numbers
        assert (
            row["shift"]["same"]["ece"] == approx(row["ece"]) and row["shift"]["same"]["least_confidence_auroc"] == 0.5
        )
        attack = json.loads((run / "metrics.json").read_text())["attack"]["test"][
            "greedy"
        ]  # merged as caveat attack does
        assert row["attack"]["greedy"]["after_attack_accuracy"] == attack["after_attack_accuracy"]
        assert row["attack"]["greedy"]["n"] == 8 and row["attack"]["greedy"]["reused"] is False
        assert row["attack"]["greedy"]["examples"] == attack["examples"][:3]  # the page shows them
        training = json.loads((run / "caveat.json").read_text())["training"]
        assert row["training"]["seconds_per_step"] == approx(training["seconds"] / training["steps"])
    assert (
        saved["table"][0][2] == saved["rows"][0]["accuracy"]
        and saved["table"][1][4] == saved["rows"][1]["attack"]["greedy"]["after_attack_accuracy"]
    )
    assert any("first 8 examples" in note for note in saved["notes"])
    # the page: the same table, each run against the first (erm), the attack's examples; its data in report.json
    page = Report.model_validate_json((tmp_path / "out" / "report.json").read_text())
    assert page.section("compare").table("compare").rows == saved["table"] and saved["baseline"] == "erm"
    (change,) = page.section("baseline").table("baseline").records()
    erm, fgm = saved["rows"]
    assert change["run"] == "fgm" and change["Δ after greedy"] == approx(
        fgm["attack"]["greedy"]["after_attack_accuracy"] - erm["attack"]["greedy"]["after_attack_accuracy"]
    )
    assert change["Δ mixed ECE"] == approx(fgm["shift"]["mixed"]["ece"] - erm["shift"]["mixed"]["ece"])
    assert "<h2>Against the baseline (erm)</h2>" in (tmp_path / "out" / "report.html").read_text()
    shown = page.section("attacks").table("adversarial_examples").rows
    assert len(shown) == sum(min(2, len(r["attack"]["greedy"]["examples"])) for r in saved["rows"]) > 0

    # the same settings again: the saved attacks are read, not re-run; the default --out is ./compare
    monkeypatch.chdir(tmp_path)
    again = CliRunner().invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    reread = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert [r["attack"]["greedy"]["reused"] for r in reread["rows"]] == [True, True]
    assert reread["table"] == saved["table"]
    other = compare_runs(
        two_runs[:1],
        attacks="greedy",
        settings=AttackSettings(max_examples=6, max_change=0.3, min_similarity=0.5),
        similarity_model=str(tiny_backbone),
    )
    assert other["rows"][0]["attack"]["greedy"]["reused"] is False and other["rows"][0]["attack"]["greedy"]["n"] == 6
    assert other["columns"] == ["run", "recipe", "accuracy", "ECE", "after greedy", "s/step"]


def test_calibrated_runs_add_calibrated_ece_columns(trained_runs, text_data, tmp_path):
    result = compare_runs([trained_runs[0], trained_runs[1]], shift=[f"same={text_data / 'test.jsonl'}"])
    assert result["columns"] == [
        "run",
        "recipe",
        "accuracy",
        "ECE",
        "ECE (calibrated)",
        "same accuracy",
        "same ECE",
        "same ECE (calibrated)",
        "s/step",
    ]
    assert result["table"][0][4] is None and result["table"][1][4] == result["table"][1][7]  # uncalibrated: empty
    json_path, md_path, html_path = write_compare(result, tmp_path / "out")
    assert html_path.is_file() and (tmp_path / "out" / "report.json").is_file()
    assert json.loads(json_path.read_text())["rows"][1]["calibrated"] is True and "| — |" in md_path.read_text()


def test_training_cost_and_markdown_cells():
    assert training_cost(SimpleNamespace(info={"training": {"seconds": 10.0, "steps": 4, "processes": 1}})) == {
        "seconds": 10.0,
        "steps": 4,
        "processes": 1,
        "seconds_per_step": 2.5,
    }
    assert training_cost(SimpleNamespace(info={}))["seconds_per_step"] is None
    md = to_markdown(
        {"data": "test", "columns": ["run", "objective", "s/step"], "table": [["a|b", "erm", None]], "notes": ["n"]}
    )
    assert "| a\\|b | erm | — |" in md and md.endswith("- n\n")


def test_bad_input(trained_runs, tmp_path):
    with pytest.raises(ConfigError, match="compare needs at least one run directory"):
        compare_runs([])
    with pytest.raises(ConfigError, match=r"max_change must be in \(0, 1\]"):
        AttackSettings(max_change=0.0)
    with pytest.raises(ConfigError, match="max_examples must be >= 1"):
        AttackSettings(max_examples=0)
    with pytest.raises(ConfigError, match="unknown attack 'bogus'"):
        compare_runs([trained_runs[0]], attacks="bogus")
    (tmp_path / "file").write_text("")
    with pytest.raises(
        ConfigError, match="out .*file is a file; give a folder for compare.json, compare.md and report.html"
    ):
        write_compare({}, tmp_path / "file")
    with pytest.raises(ConfigError, match=r"baseline 'nope' is not one of the compared runs \(.*\); give one of those"):
        compare_runs([trained_runs[0]], baseline="nope")  # before any model pass: no shift, no attack would run
    result = CliRunner().invoke(app, ["compare", str(trained_runs[0]), "--shift", "cr"])
    assert result.exit_code != 0 and "is not NAME=FILE" in str(result.exception)


# --- NER (token-classification) runs ---------------------------------------------------------------

NER_ATTACK = {"max_examples": 8, "max_change": 0.3, "min_similarity": 0.5}


@pytest.fixture
def two_ner_runs(ner_run, ner_fgm_run, tmp_path):
    """Copies (compare writes its attacks into each run's metrics.json): the session's NER run and an fgm one."""
    return [shutil.copytree(ner_run, tmp_path / "ner-erm"), shutil.copytree(ner_fgm_run, tmp_path / "ner-fgm")]


def test_compare_ner_runs(two_ner_runs, ner_data, tiny_backbone, tmp_path):
    from caveat.robustness.run import attack_run

    args = [
        "compare",
        *map(str, two_ner_runs),
        "--data",
        "test",
        "--attack",
        "greedy",
        "--max-examples",
        "8",
        "--max-change",
        "0.3",
        "--min-similarity",
        "0.5",
        "--similarity-model",
        str(tiny_backbone),
        "--shift",
        f"same={ner_data / 'test.conll'}",
        "--out",
        str(tmp_path / "out"),
        "--baseline",
        str(two_ner_runs[1]),
    ]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert (tmp_path / "out" / "compare.md").read_text() == result.stdout == to_markdown(saved)
    assert saved["task"] == "token-classification" and saved["attacks"] == ["greedy"]
    assert saved["columns"] == [
        "run",
        "recipe",
        "span F1",
        "span ECE",
        "after greedy span F1",
        "after greedy sentence accuracy",
        "same span F1",
        "same span ECE",
        "s/step",
    ]
    assert [row[:2] for row in saved["table"]] == [["ner-erm", "erm"], ["ner-fgm", "fgm α=1"]]
    assert result.stdout.splitlines()[2].startswith("| run | recipe | span F1 | span ECE | after greedy span F1 |")
    assert any("first 8 sentences" in note for note in saved["notes"])
    # the page, against the run given by its path: span columns
    assert saved["baseline"] == "ner-fgm"
    page = Report.model_validate_json((tmp_path / "out" / "report.json").read_text())
    (change,) = page.section("baseline").table("baseline").records()
    assert change["run"] == "ner-erm" and change["Δ span F1"] == approx(
        saved["rows"][0]["span_f1"] - saved["rows"][1]["span_f1"]
    )
    assert "Δ after greedy" in change and "Δ same span ECE" in change
    assert page.section("attacks").table("attacks").columns[3:5] == ["clean span F1", "after-attack span F1"]
    for run, row, cells in zip(two_ner_runs, saved["rows"], saved["table"]):
        evaluated = evaluate_run(run, "test", write=False)  # seqeval, entity level
        assert row["span_f1"] == approx(evaluated["f1"]) and row["n"] == evaluated["n"] == 40
        assert row["span_precision"] == approx(evaluated["precision"]) and row["span_recall"] == approx(
            evaluated["recall"]
        )
        assert row["span_ece"] == approx(evaluated["spans"]["product"]["ece"]) and row["calibrated"] is False
        assert "accuracy" not in row and "ece" not in row
        # identical "shifted" data: the in-domain figures
        assert row["shift"]["same"]["span_f1"] == approx(row["span_f1"]) and row["shift"]["same"]["span_ece"] == approx(
            row["span_ece"]
        )
        assert row["shift"]["same"]["n"] == row["n"]
        # the attack figures are attack_run's with the same settings (attacked afresh, merged into metrics.json)
        direct = attack_run(run, "test", "greedy", **NER_ATTACK, similarity_model=str(tiny_backbone), write=False)[
            "attacks"
        ]["greedy"]
        attack = row["attack"]["greedy"]
        assert attack["reused"] is False and attack["n"] == direct["n"] == 8
        for key in (
            "clean_accuracy",
            "after_attack_accuracy",
            "clean_span_f1",
            "after_attack_span_f1",
            "clean_span_errors",
            "after_attack_span_errors",
            "gold_spans",
            "success_rate",
            "mean_changed_fraction",
            "mean_similarity",
        ):
            assert attack[key] == approx(direct[key]), key
        assert attack["after_attack_span_f1"] <= attack["clean_span_f1"]
        merged = json.loads((run / "metrics.json").read_text())["attack"]["test"]["greedy"]
        assert merged["after_attack_span_f1"] == attack["after_attack_span_f1"]
        assert cells[2:7] == [
            row["span_f1"],
            row["span_ece"],
            attack["after_attack_span_f1"],
            attack["after_attack_accuracy"],
            row["shift"]["same"]["span_f1"],
        ]
        training = json.loads((run / "caveat.json").read_text())["training"]
        assert cells[-1] == row["training"]["seconds_per_step"] == approx(training["seconds"] / training["steps"])

    # the same settings again: the saved attacks are read, not re-run, and the numbers are the same
    again = compare_runs(
        two_ner_runs,
        attacks="greedy",
        shift={"same": str(ner_data / "test.conll")},
        settings=AttackSettings(**NER_ATTACK),
        similarity_model=str(tiny_backbone),
    )
    assert [r["attack"]["greedy"]["reused"] for r in again["rows"]] == [True, True]
    assert again["table"] == saved["table"] and again["columns"] == saved["columns"]
    for first, second in zip(saved["rows"], again["rows"]):
        assert {k: v for k, v in second["attack"]["greedy"].items() if k != "reused"} == {
            k: v for k, v in first["attack"]["greedy"].items() if k != "reused"
        }


def test_compare_calibrated_ner_run(ner_run, calibrated_ner_run):
    result = compare_runs([ner_run, calibrated_ner_run])
    assert result["columns"] == ["run", "recipe", "span F1", "span ECE", "span ECE (calibrated)", "s/step"]
    evaluated = evaluate_run(calibrated_ner_run, "test", write=False)
    plain, calibrated = result["rows"]
    assert plain["calibrated"] is False and plain["calibrated_span_ece"] is None and result["table"][0][4] is None
    assert calibrated["calibrated"] is True and calibrated["calibrated_span_ece"] == approx(
        evaluated["calibrated"]["span_ece"]
    )
    assert calibrated["span_aggregate"] == evaluated["calibrated"]["aggregate"]
    assert calibrated["span_ece"] == approx(evaluated["spans"][calibrated["span_aggregate"]]["ece"])
    assert calibrated["span_f1"] == approx(plain["span_f1"])  # calibration moves confidences, not tags
    assert "| — |" in to_markdown(result)


def test_ner_bad_input(trained_runs, ner_run, ner_data, tmp_path, monkeypatch):
    from caveat.errors import DataError
    from caveat.inference import Predictor

    def no_model(*args, **kwargs):
        raise AssertionError("a model pass before the input was checked")

    monkeypatch.setattr(Predictor, "from_run", no_model)
    with pytest.raises(ConfigError) as err:  # before any model pass
        compare_runs([trained_runs[0], ner_run])
    message = str(err.value)
    assert str(trained_runs[0]) in message and str(ner_run) in message and "compare runs of one task" in message
    assert "text-classification" in message and "token-classification" in message
    bad = tmp_path / "bad.conll"
    bad.write_text((ner_data / "test.conll").read_text().replace("B-PER", "B-ORG", 1))
    with pytest.raises(DataError, match=r"shift bad=.*bad\.conll .*B-ORG"):
        compare_runs([ner_run], shift=[f"bad={bad}"])


def test_recipe_names_the_objective_smoothing_and_augmentation():
    from caveat.config import load_config
    from caveat.robustness.compare_rows import recipe

    assert recipe(load_config(overrides=[]).train) == "erm"
    assert (
        recipe(load_config(overrides=["train.objective=pgd", "train.alpha=0.3", "train.label_smoothing=0.1"]).train)
        == "pgd α=0.3 + label smoothing 0.1"
    )
    a2t = ["train.augment.enabled=true", "train.augment.attack=greedy", "train.augment.fraction=0.5"]
    assert recipe(load_config(overrides=a2t).train) == "erm + A2T (greedy, 50% of train from epoch 1)"
    assert (
        recipe(load_config(overrides=[*a2t, "train.augment.mode=random", "train.augment.start_epoch=0"]).train)
        == "erm + random edits (greedy, 50% of train from epoch 0)"
    )


def test_python_api(two_runs, tiny_backbone, text_data, tmp_path):
    import caveat

    options = {"max_examples": 6, "max_change": 0.3, "min_similarity": 0.5}
    got = caveat.compare(
        two_runs,
        attacks="greedy",
        shift=[f"same={text_data / 'test.jsonl'}"],
        out=tmp_path / "o",
        baseline="fgm",
        similarity_model=str(tiny_backbone),
        **options,
    )
    assert got["baseline"] == "fgm" and json.loads((tmp_path / "o" / "compare.json").read_text()) == got
    assert (tmp_path / "o" / "report.html").is_file()
    direct = compare_runs(
        two_runs,
        attacks="greedy",
        shift=[f"same={text_data / 'test.jsonl'}"],
        settings=AttackSettings(**options),
        similarity_model=str(tiny_backbone),
    )
    assert direct["table"] == got["table"]
    attacked = caveat.attack(two_runs[0], "test", "greedy", similarity_model=str(tiny_backbone), write=False, **options)
    assert (
        attacked["attacks"]["greedy"]["after_attack_accuracy"]
        == got["rows"][0]["attack"]["greedy"]["after_attack_accuracy"]
    )


def test_calibrated_runs_show_their_attacks_read_through_the_policy(trained_runs, tiny_backbone, tmp_path):
    from caveat.robustness.metrics import POLICY_KEYS

    runs = [shutil.copytree(trained_runs[i], tmp_path / name) for i, name in ((0, "erm"), (1, "calibrated"))]
    settings = AttackSettings(max_examples=8, max_change=0.3, min_similarity=0.5)
    options = {"attacks": "greedy", "settings": settings, "similarity_model": str(tiny_backbone)}
    result = compare_runs(runs, **options)
    assert result["columns"] == [
        "run",
        "recipe",
        "accuracy",
        "ECE",
        "ECE (calibrated)",
        "after greedy",
        "greedy caught",
        "after greedy answered error",
        "s/step",
    ]
    plain, calibrated = result["rows"]
    saved = json.loads((runs[1] / "metrics.json").read_text())["attack"]["test"]["greedy"]
    assert {k: calibrated["attack"]["greedy"][k] for k in POLICY_KEYS} == {k: saved[k] for k in POLICY_KEYS}
    assert not set(POLICY_KEYS) & set(plain["attack"]["greedy"])
    assert result["table"][1][6:8] == [saved["caught"], saved["answered_error_after_attack"]]
    assert result["table"][0][6:8] == [None, None]
    assert any(n.startswith("caught: share of the successful") for n in result["notes"])
    assert "| — | — |" in to_markdown(result)
    write_compare(result, tmp_path / "out")  # the page shows the same table
    page = Report.model_validate_json((tmp_path / "out" / "report.json").read_text())
    assert page.section("compare").table("compare").columns == result["columns"]

    # saved with the policy: reused; saved before the run was calibrated: attacked again, read through it
    again = compare_runs(runs[1:], **options)
    assert again["rows"][0]["attack"]["greedy"]["reused"] is True and again["table"][0][6:8] == result["table"][1][6:8]
    path = runs[1] / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["attack"]["test"]["greedy"] = {k: v for k, v in saved.items() if k not in POLICY_KEYS}
    path.write_text(json.dumps(metrics))
    fresh = compare_runs(runs[1:], **options)["rows"][0]["attack"]["greedy"]
    assert fresh["reused"] is False and {k: fresh[k] for k in POLICY_KEYS} == {k: saved[k] for k in POLICY_KEYS}


# --- held-out attacks and human-made adversarial sets (issue 19) ----------------------------------------------


def test_held_out_bookkeeping_from_the_recipe():
    """Which candidate sources a recipe trained on, and which attacks that holds out; the gains on planted rows."""
    from caveat.config import load_config
    from caveat.robustness.attacks import parse_attacks
    from caveat.robustness.held_out import is_held_out, mark_held_out, training_sources

    def train(*overrides):
        return load_config(overrides=list(overrides)).train

    greedy = train("train.augment.enabled=true", "train.augment.attack=greedy")
    assert training_sources(greedy) == ["embedding"]
    assert training_sources(train("train.augment.enabled=true", "train.augment.attack=charswap")) == ["char"]
    assert training_sources(train("train.objective=fgm")) == []  # embedding space: no discrete source
    assert training_sources(train("train.augment.attack=greedy")) == []  # not enabled
    mixture = train("train.augment.enabled=true", "train.augment.attack=greedy,charswap,pwws@ppdb")
    assert training_sources(mixture) == ["char", "embedding", "ppdb"]
    families = parse_attacks("all")
    assert families == ["charswap", "wordsub", "greedy", "pwws"]
    assert {a: is_held_out(a, ["embedding"]) for a in families} == {
        "charswap": True,
        "wordsub": False,
        "greedy": False,
        "pwws": True,  # ppdb
    }
    assert is_held_out("greedy@ppdb", ["embedding"]) and not is_held_out("greedy@embedding+ppdb", ["embedding"])
    assert not any(is_held_out(a, ["char", "embedding", "ppdb"]) for a in families)

    after = {"erm": [0.4, 0.5, 0.3, 0.6], "aug": [0.5, 0.9, 0.8, 0.6], "fgm": [0.45, 0.55, 0.4, None]}
    rows = [
        {
            "run": run,
            "training_sources": sources,
            "attack": {a: {"after_attack_accuracy": x} for a, x in zip(families, after[run])},
        }
        for run, sources in (("erm", []), ("aug", ["embedding"]), ("fgm", []))
    ]
    mark_held_out(rows, families, "erm", score="after_attack_accuracy")
    erm, aug, fgm = rows
    assert aug["held_out_attacks"] == ["charswap", "pwws"] and aug["seen_attacks"] == ["wordsub", "greedy"]
    assert [aug["attack"][a]["gain"] for a in families] == approx([0.1, 0.4, 0.5, 0.0])
    assert aug["held_out_gain"] == approx(0.05) and aug["seen_gain"] == approx(0.45)
    assert fgm["held_out_attacks"] == families and fgm["seen_attacks"] == [] and fgm["seen_gain"] is None
    assert fgm["attack"]["pwws"]["gain"] is None and fgm["held_out_gain"] == approx((0.05 + 0.05 + 0.1) / 3)
    assert erm["held_out_gain"] == 0.0 and erm["seen_gain"] is None


def _recipe(run, **augment):
    """Give a copied run another training recipe in its caveat.json (the weights stay: no training)."""
    path = run / "caveat.json"
    info = json.loads(path.read_text())
    info["config"]["train"]["augment"] |= augment
    path.write_text(json.dumps(info))
    return run


def test_compare_held_out_attacks_and_adversarial_sets(trained_runs, tiny_backbone, mixed_file, tmp_path):
    from tests.fakes import FILLER

    erm = shutil.copytree(trained_runs[0], tmp_path / "erm")
    augmented = _recipe(  # the calibrated copy of erm's weights, now "trained" with greedy's random edits
        shutil.copytree(trained_runs[1], tmp_path / "greedy-aug"), enabled=True, attack="greedy", mode="random"
    )
    fgm = shutil.copytree(trained_runs[2], tmp_path / "fgm")
    lexicons = tmp_path / "lexicons"  # ppdb synonyms for pwws, and an antonym file
    lexicons.mkdir()
    (lexicons / "ppdb_synonyms.txt").write_text("".join(f"{a} {b}\n" for a, b in zip(FILLER, FILLER[1:])))
    (lexicons / "wordnet_antonyms.txt").write_text("alpha beta\n")
    args = ["compare", str(erm), str(augmented), str(fgm), "--attack", "all", "--held-out-attacks"]
    args += ["--max-examples", "6", "--max-change", "0.3", "--min-similarity", "0.5"]
    args += [
        "--similarity-model",
        str(tiny_backbone),
        "--lexicons",
        str(lexicons),
        "--adversarial",
        f"adv={mixed_file}",
    ]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    families = ["charswap", "wordsub", "greedy", "pwws"]
    assert saved["attacks"] == families and saved["held_out_attacks"] is True
    assert saved["adversarial"] == {"adv": str(mixed_file)}
    first, aug, adv_fgm = saved["rows"]
    assert [r["training_sources"] for r in saved["rows"]] == [[], ["embedding"], []]
    assert aug["held_out_attacks"] == ["charswap", "pwws"] and aug["seen_attacks"] == ["wordsub", "greedy"]
    assert adv_fgm["held_out_attacks"] == families and adv_fgm["seen_attacks"] == [] and adv_fgm["seen_gain"] is None
    assert first["held_out_gain"] == 0.0 and first["seen_gain"] is None  # the baseline against itself
    for row in saved["rows"]:
        gains = {
            a: row["attack"][a]["after_attack_accuracy"] - first["attack"][a]["after_attack_accuracy"] for a in families
        }
        assert {a: row["attack"][a]["gain"] for a in families} == approx(gains)
        held = [gains[a] for a in row["held_out_attacks"]]
        assert row["held_out_gain"] == approx(sum(held) / len(held))
        assert row["attack"]["pwws"]["sources"] == ["ppdb"] and row["attack"]["charswap"]["sources"] == ["char"]
    assert aug["seen_gain"] == approx(0.0)  # erm's weights: the same after-attack accuracy
    # the table: the sources trained on, the two gains, the adversarial set's columns (a calibrated run: answered)
    columns = saved["columns"]
    assert columns[:4] == ["run", "recipe", "trained on", "accuracy"]
    assert columns[columns.index("after pwws") + 1 : columns.index("after pwws") + 3] == ["held-out gain", "seen gain"]
    assert columns[-6:] == [
        "adv accuracy",
        "adv ECE",
        "adv ECE (calibrated)",
        "adv answered",
        "adv answered error",
        "s/step",
    ]
    cells = dict(zip(columns, saved["table"][1]))
    assert cells["trained on"] == "embedding" and cells["held-out gain"] == aug["held_out_gain"]
    assert saved["table"][0][2] is None  # erm trained on no source: —
    # the adversarial set is evaluated as a shifted set; the calibrated run's policy on it
    direct = evaluate_run(augmented, "test", adversarial={"adv": str(mixed_file)}, write=False)["adversarial"]["adv"]
    assert aug["adversarial"]["adv"] == approx(
        {
            "n": direct["n"],
            "accuracy": direct["accuracy"],
            "macro_f1": direct["macro_f1"],
            "ece": direct["ece"],
            "calibrated_ece": direct["calibrated"]["ece"],
            "answered": direct["abstention"]["coverage"],
            "answered_error": direct["abstention"]["risk"],
        }
    )
    assert first["adversarial"]["adv"]["answered"] is None and cells["adv answered"] == direct["abstention"]["coverage"]
    # the markdown marks each run's after-attack figures on its held-out attacks
    md = (tmp_path / "out" / "compare.md").read_text()
    assert md == result.stdout == to_markdown(saved)
    aug_line = next(line for line in md.splitlines() if line.startswith("| greedy-aug |"))
    marked = aug_line.split(" | ")
    at = {name: columns.index(f"after {name}") for name in families}
    assert all(marked[at[a]].endswith("(held-out)") for a in ("charswap", "pwws"))
    assert not any(marked[at[a]].endswith("(held-out)") for a in ("wordsub", "greedy"))
    assert md.count("(held-out)") == 2 + 4 + 4  # greedy-aug: 2; erm and fgm: every attack
    assert any(note.startswith("held-out: an attack none of whose candidate sources") for note in saved["notes"])
    # the page: gains per run, held-out or seen per attack and run, the adversarial set
    page = Report.model_validate_json((tmp_path / "out" / "report.json").read_text())
    summary = {r["run"]: r for r in page.section("held_out").table("held_out").records()}
    assert summary["greedy-aug"]["held-out attacks"] == "charswap, pwws" and summary["fgm"]["seen attacks"] == "—"
    assert summary["fgm"]["held-out gain"] == approx(adv_fgm["held_out_gain"])
    per_attack = page.section("held_out").table("held_out_attacks").records()
    assert {(r["attack"], r["run"]): r["held-out"] for r in per_attack}[("greedy", "greedy-aug")] == "seen"
    assert {(r["attack"], r["run"]): r["held-out"] for r in per_attack}[("greedy", "fgm")] == "held-out"
    shown = page.section("adversarial").table("adversarial").records()
    assert [r["run"] for r in shown] == ["erm", "greedy-aug", "fgm"] and shown[1]["answered"] == aug["adversarial"][
        "adv"
    ]["answered"]
    assert "<h2>Held-out attacks</h2>" in (tmp_path / "out" / "report.html").read_text()


def test_held_out_and_adversarial_input_is_checked_before_any_model_pass(
    trained_runs, ner_run, mixed_file, monkeypatch
):
    from caveat.inference import Predictor

    def no_model(*args, **kwargs):
        raise AssertionError("a model pass before the input was checked")

    monkeypatch.setattr(Predictor, "from_run", no_model)
    with pytest.raises(
        ConfigError, match="held_out_attacks sorts attacks into seen and held-out, but no attack is given"
    ):
        compare_runs([trained_runs[0]], held_out_attacks=True)
    with pytest.raises(ConfigError, match="adversarial and shift both name a set 'x'; give each set its own name"):
        compare_runs([trained_runs[0]], shift=[f"x={mixed_file}"], adversarial=[f"x={mixed_file}"])
    with pytest.raises(ConfigError, match="adversarial is for text-classification runs"):
        compare_runs([ner_run], adversarial=[f"x={mixed_file}"])
    with pytest.raises(ConfigError, match=r"adversarial 'x' is not NAME=FILE"):
        compare_runs([trained_runs[0]], adversarial=["x"])
    result = CliRunner().invoke(app, ["compare", str(trained_runs[0]), "--held-out-attacks"])
    message = flag_message(result.exception)
    assert message.startswith("--held-out-attacks sorts attacks") and "add --attack (e.g. all" in message


def test_ner_runs_get_the_held_out_bookkeeping_on_span_f1(ner_run, tiny_backbone, tmp_path):
    run = shutil.copytree(ner_run, tmp_path / "ner")  # compare writes the attack into metrics.json
    settings = AttackSettings(max_examples=4, max_change=0.3, min_similarity=0.5)
    result = compare_runs(
        [run], attacks="charswap", held_out_attacks=True, settings=settings, similarity_model=str(tiny_backbone)
    )
    (row,) = result["rows"]
    assert row["training_sources"] == [] and row["held_out_attacks"] == ["charswap"]
    assert row["attack"]["charswap"]["gain"] == 0.0 and row["held_out_gain"] == 0.0 and row["seen_gain"] is None
    assert result["columns"][2] == "trained on" and result["columns"][-3:] == ["held-out gain", "seen gain", "s/step"]
    assert "(held-out)" in to_markdown(result)
