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
    bare = lexicons.parent / "bare"
    bare.mkdir()
    missing = runner.invoke(app, ["predict", str(served_run), TEXT, "--certify", "--lexicons", str(bare)])
    assert isinstance(missing.exception, ConfigError) and "--lexicons" in flag_message(missing.exception)


def _write_texts(path, texts: list[str]):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_scored_file_carries_the_certificates_of_the_texts_path_and_resumes_to_them(
    served_run, lexicons, tmp_path, suffix
):
    texts = [TEXT, *OTHERS, TEXT, "my card now"]
    source = _write_texts(tmp_path / "in.jsonl", texts)
    out = tmp_path / f"preds{suffix}"
    args = ["predict", str(served_run), "--file", str(source), "--out", str(out), "--certify", "--chunk-size", "2"]
    with one_thread():
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        expected = [row.certified for row in caveat.load(served_run).predict(texts, certify=True)]
        got = _certificates(out)
        assert got == expected and got[0] == got[3]  # a text's certificate, whatever its chunk
        _cut_after_first_chunk(out)
        assert runner.invoke(app, args, catch_exceptions=False).exit_code == 0  # resumes after the first chunk
    assert _certificates(out) == expected


def _certificates(out) -> list[dict]:
    if out.suffix == ".jsonl":
        return [json.loads(line)["certified"] for line in out.read_text(encoding="utf-8").splitlines()]
    import pyarrow.parquet as pq

    return [json.loads(row["certified"]) for row in pq.read_table(out).to_pylist()]  # nested values: JSON strings


def _cut_after_first_chunk(out) -> None:
    if out.suffix == ".jsonl":
        out.write_text("".join(out.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), encoding="utf-8")
    else:
        for part in sorted(out.glob("part-*.parquet"))[1:]:
            part.unlink()


def test_the_ray_actors_certify_as_the_stream_does(served_run, lexicons):
    import functools

    import pyarrow as pa

    from caveat.raybatch import RowScorer
    from caveat.robustness.certify import add_certified

    enrich = functools.partial(add_certified, sets=certify_sets(lexicons))
    with one_thread():
        scorer = RowScorer(str(served_run), top_k=2, method="deterministic", samples=3, seed=0, enrich=enrich)
        batch = pa.table({"index": [0, 1], "input": [json.dumps(TEXT), json.dumps(OTHERS[0])]})
        rows = [json.loads(r) for r in scorer(batch)["row"].to_pylist()]
        expected = [row.certified for row in caveat.load(served_run).predict([TEXT, OTHERS[0]], certify=True)]
    assert [row["certified"] for row in rows] == expected


def test_a_file_is_refused_for_a_ner_run_before_the_model_loads(ner_run, lexicons, tmp_path, monkeypatch):
    source = _write_texts(tmp_path / "in.jsonl", [TEXT])
    monkeypatch.setattr("caveat.inference.Predictor.from_run", _no_model)
    result = runner.invoke(app, ["predict", str(ner_run), "--file", str(source), "--certify"])
    assert isinstance(result.exception, ConfigError)
    assert "certify is for text-classification runs" in str(result.exception)
    bare = tmp_path / "bare"
    bare.mkdir()
    served = runner.invoke(app, ["predict", str(ner_run), "--file", str(source), "--lexicons", str(bare)])
    assert isinstance(served.exception, ConfigError) and "--lexicons is read by --certify only" in str(served.exception)


def _no_model(*args, **kwargs):
    raise AssertionError("the model loaded before the refusal")
