"""A certified prediction: ``Model.predict(certify=True)`` and ``caveat predict --certify`` add SAFER's certificate
to each row, computed as ``certify`` computes it for the row's text and label, the same whatever other texts share
the call; NER runs and a lexicon folder without synonyms are refused before any model pass."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import caveat
from caveat.cli.app import app, flag_message
from caveat.errors import ConfigError
from caveat.robustness.certify import CERTIFY, certify, certify_seed
from caveat.robustness.certify_run import certify_sets
from tests.conftest import one_thread

runner = CliRunner()
TEXT = "the alpha card"  # the keyword's synonyms are the other keywords: the draws disagree, p_a_lower is mid-way
OTHERS = ["my beta parcel now", "please gamma money"]
KEYS = {"certified", "prediction", "p_a_lower", "tv_bound", "changed", "words", "samples", "delta"}


@pytest.fixture
def lexicons(tmp_path, monkeypatch):
    """Synonyms among the planted keywords (each swap may change the label) and among filler words; the default
    folder (CAVEAT_LEXICONS) for Model.predict and the CLI."""
    folder = tmp_path / "lexicons"
    folder.mkdir()
    pairs = ["alpha beta", "beta gamma", "card account", "money parcel", "phone help"]
    (folder / "ppdb_synonyms.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    monkeypatch.setenv("CAVEAT_LEXICONS", str(folder))
    return folder


def _expected(predictor, text: str, label: str, lexicons) -> dict:
    """What ``certify`` says of one text with the row's label, in a row's keys."""
    sets = certify_sets(lexicons)
    one = certify(predictor, [text], [label], sets=sets, seed=certify_seed(text), **CERTIFY).examples[0]
    return {k: getattr(one, k) for k in KEYS - {"samples", "delta"}} | {"samples": 100, "delta": 0.05}


def test_rows_carry_what_certify_says_of_their_prediction(served_run, lexicons):
    assert CERTIFY == {"samples": 100, "selection": 10, "delta": 0.05, "budget": 0.2}
    model = caveat.load(served_run)
    with one_thread():
        out = model.predict([TEXT, *OTHERS], certify=True)
        for row in out:
            assert set(row.certified) == KEYS
            assert row.certified == _expected(model.predictor, row.text, row.label, lexicons)
        plain = model.predict([TEXT])
    assert out[0].certified["words"] == 3 and 0 < out[0].certified["p_a_lower"] < 0.9  # the draws disagree
    assert "certified" not in plain[0] and "certified" in out.to_records()[0]


def test_a_rows_certificate_does_not_depend_on_the_other_texts(served_run, lexicons):
    model = caveat.load(served_run)
    with one_thread():
        alone = model.predict([TEXT], certify=True)[0].certified
        among = model.predict([*OTHERS, TEXT, TEXT], certify=True)
        # one certify() call over the batch seeds each text by its position: this text would draw otherwise
        labels = [r.label for r in among][:3]
        seed = certify_seed(TEXT)
        batched = certify(model.predictor, [*OTHERS, TEXT], labels, sets=model.certify_sets, seed=seed, **CERTIFY)
    assert among[2].certified == alone and among[3].certified == alone
    assert batched.examples[2].p_a_lower != alone["p_a_lower"]
    # the three texts have the same slots (a keyword, a filler word): one shared seed would draw them alike
    assert len({row.certified["p_a_lower"] for row in among[:3]}) > 1


def test_refusals_come_before_any_model_pass(served_run, ner_run, lexicons, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="certify is for text-classification runs; this run is token-classification"):
        caveat.load(ner_run).predict([["alice", "went", "home"]], certify=True)
    with pytest.raises(ConfigError, match="certify must be True or False"):
        caveat.load(served_run).predict([TEXT], certify="yes")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("CAVEAT_LEXICONS", str(empty))
    model = caveat.load(served_run)
    with pytest.raises(ConfigError, match="ppdb_synonyms.txt"):
        model.predict([TEXT], certify=True)
    assert model._predictor is None  # refused before the model loaded


def test_cli_certify_prints_the_rows_of_the_python_api(served_run, lexicons):
    with one_thread():
        result = runner.invoke(app, ["predict", str(served_run), TEXT, "--certify"], catch_exceptions=False)
        expected = caveat.load(served_run).predict([TEXT], certify=True)[0].certified
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["certified"] == expected

    plain = runner.invoke(app, ["predict", str(served_run), TEXT], catch_exceptions=False)
    assert "certified" not in json.loads(plain.stdout)
    refused = runner.invoke(app, ["predict", str(served_run), "--file", str(lexicons / "x.txt"), "--certify"])
    assert isinstance(refused.exception, ConfigError) and "--certify is for texts" in str(refused.exception)
    bare = lexicons.parent / "bare"
    bare.mkdir()
    missing = runner.invoke(app, ["predict", str(served_run), TEXT, "--certify", "--lexicons", str(bare)])
    assert isinstance(missing.exception, ConfigError) and "--lexicons" in flag_message(missing.exception)
