"""``caveat attack`` with the lexicons, end to end on a tiny trained run: pwws beside charswap and greedy in one
table, every attack's sources and antonym filter reported, and a machine without the lexicons told so."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from caveat.cli.app import app, flag_message
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.robustness.run import attack_run, lexicons_folder
from caveat.training.loop import Trainer
from tests.conftest import one_thread, tiny_overrides

runner = CliRunner()
KEYWORDS = ("alpha", "beta", "gamma")  # each decides the label: swapping one for another changes the meaning


@pytest.fixture(scope="module")
def text_run(tiny_backbone, text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("attack-lexicons") / "run"
    with one_thread():
        Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=4)), out, progress=False).fit()
    return out


@pytest.fixture
def lexicons(tmp_path):
    """The keywords are each other's antonyms (as "best"/"worst" are); synonyms among the filler words, and the
    keywords as "synonyms" too, as noisy PPDB pairs are."""
    folder = tmp_path / "lexicons"
    folder.mkdir()
    (folder / "wordnet_antonyms.txt").write_text("alpha beta \nbeta gamma \n", encoding="utf-8")
    (folder / "ppdb_antonyms.txt").write_text("GAMMA alpha\nalpha beta\n", encoding="utf-8")
    pairs = ["card account", "money parcel", "phone help", "cat dog", "tree road", "store house", "city time"]
    pairs += ["order card", "house city", "alpha beta", "beta gamma", "alpha gamma", "dog parcel", "road store"]
    (folder / "ppdb_synonyms.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    return folder


def keyword_swapped(example: dict) -> bool:
    return any(
        a != b and a in KEYWORDS and b in KEYWORDS
        for a, b in zip(example["original"].split(), example["adversarial"].split())
    )


def test_pwws_charswap_greedy_in_one_table_with_the_antonym_filter(text_run, tiny_backbone, lexicons):
    args = ["attack", str(text_run), "--max-examples", "12", "--similarity-model", str(tiny_backbone)]
    args += ["--max-change", "0.3", "--min-similarity", "0.5", "--lexicons", str(lexicons)]
    with one_thread():
        result = runner.invoke(app, [*args, "--attack", "pwws,charswap,greedy"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out["attacks"]) == ["pwws", "charswap", "greedy"]
    assert out["lexicons"]["folder"] == str(lexicons.absolute())
    assert out["lexicons"]["files"] == ["wordnet_antonyms.txt", "ppdb_antonyms.txt", "ppdb_synonyms.txt"]
    sources = {name: a["sources"] for name, a in out["attacks"].items()}
    assert sources == {"pwws": ["ppdb"], "charswap": ["char"], "greedy": ["embedding"]}
    for a in out["attacks"].values():
        assert a["antonym_filter"] is True and "antonym_filter_note" not in a
        assert a["antonyms_filtered"] == len(a["antonym_examples"]) or a["antonyms_filtered"] > 10
        assert all(
            pair.split(" -> ")[0] in KEYWORDS and pair.split(" -> ")[1] in KEYWORDS for pair in a["antonym_examples"]
        )
        assert a["attacked"] > 0 and a["mean_queries"] >= 1
        for ex in a["examples"]:
            assert not keyword_swapped(ex) and ex["changed_fraction"] <= 0.3 and ex["similarity"] >= 0.5
    # the ppdb lexicon offers keyword for keyword; the filter took them out
    assert out["attacks"]["pwws"]["antonyms_filtered"] > 0
    saved = json.loads((text_run / "metrics.json").read_text())["attack"]["test"]
    assert saved["pwws"]["sources"] == ["ppdb"] and saved["pwws"]["antonym_filter"] is True

    with one_thread():
        table = runner.invoke(app, [*args, "--attack", "pwws,greedy", "--format", "table"], catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "candidate sources" in table.stdout and "ppdb" in table.stdout and "embedding" in table.stdout
    assert "antonyms withheld" in table.stdout and "antonym filter off" not in table.stdout


def test_without_the_lexicons_attacks_run_and_say_so(text_run, tiny_backbone, tmp_path, monkeypatch):
    empty = tmp_path / "no-lexicons"
    empty.mkdir()
    monkeypatch.setenv("CAVEAT_LEXICONS", str(empty))
    assert lexicons_folder() == empty and lexicons_folder(tmp_path) == tmp_path
    with one_thread():
        out = attack_run(
            text_run, attacks="greedy,charswap", max_examples=6, similarity_model=str(tiny_backbone), write=False
        )
    for a in out["attacks"].values():
        assert a["antonym_filter"] is False and "antonyms_filtered" not in a
        note = a["antonym_filter_note"]
        assert note.startswith(f"no antonym lexicon at {empty.absolute()}") and "CAVEAT_LEXICONS" in note
    assert out["lexicons"] == {"folder": str(empty.absolute()), "files": []}

    with pytest.raises(ConfigError, match="the ppdb candidate source needs the PPDB synonym lexicon") as err:
        attack_run(text_run, attacks="pwws", max_examples=6, similarity_model=str(tiny_backbone), write=False)
    assert "point --lexicons" in flag_message(err.value)
    with pytest.raises(ConfigError, match=r"lexicons .*nowhere is not a folder"):
        attack_run(text_run, attacks="greedy", lexicons=tmp_path / "nowhere", write=False)

    monkeypatch.delenv("CAVEAT_LEXICONS")
    monkeypatch.setenv("CAVEAT_DATA", str(tmp_path / "data"))
    assert lexicons_folder() == tmp_path / "data" / "lexicons"  # the data root's lexicons by default


def test_compare_reuses_a_saved_attack_only_if_it_was_filtered_as_strictly_as_now():
    from caveat.robustness.attacks import Constraints
    from caveat.robustness.compare import AttackSettings

    settings = AttackSettings(max_examples=8)
    saved = {"constraints": Constraints().as_dict(), "max_candidates": 20, "seed": 0, "n": 8}
    filtered = {**saved, "sources": ["embedding"], "antonym_filter": True}
    unfiltered = {**saved, "sources": ["embedding"], "antonym_filter": False}
    assert settings.matches(saved, 10)  # the filter state not asked about
    assert not settings.matches(saved, 10, antonym_filter=False)  # saved before sources were recorded: stale
    assert settings.matches(filtered, 10, antonym_filter=True) and settings.matches(filtered, 10, antonym_filter=False)
    assert settings.matches(unfiltered, 10, antonym_filter=False)
    assert not settings.matches(unfiltered, 10, antonym_filter=True)  # the lexicons are there now: attack again
