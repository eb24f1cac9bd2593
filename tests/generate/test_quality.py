"""Summary quality: our ROUGE-L against the rouge-score package itself, measures by name, the embedding path
on a hand-made encoder (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from rouge_score import rouge_scorer

from caveat.errors import ConfigError, DataError
from caveat.generate.quality import QUALITIES, EmbeddingSimilarity, RougeL, get_qualities, rouge_l

PAIRS = [  # (output, reference)
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("the cat sat on the mat", "THE CAT SAT ON THE MAT!!!"),  # case and punctuation do not count
    ("A council approved plans for a water park.", "Plans for an indoor water park have been approved by councillors."),
    ("Police are investigating.", "Scotland's police force could not say how many cases were recorded."),
    ("", "Proposals for a water park have been approved."),  # empty output
    ("...", "Proposals approved."),  # punctuation only: no tokens
    ("Running runners ran; approvals approved.", "The runner runs and approves the approval."),  # stems differ
    ("Wales beat England 23-21 in Cardiff", "England lost 21-23 to Wales in Cardiff on Saturday."),
    ("Café prices rose 5% — again", "Cafe prices rose by 5% again"),  # non-ASCII letters are not tokens
]


@pytest.mark.parametrize(("output", "reference"), PAIRS)
def test_rouge_l_is_the_packages_f_measure(output, reference):
    plain = rouge_scorer.RougeScorer(["rougeL"]).score(reference, output)["rougeL"].fmeasure
    stemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, output)["rougeL"].fmeasure
    assert rouge_l(output, reference, stem=False) == pytest.approx(plain, abs=1e-12)
    assert rouge_l(output, reference) == pytest.approx(stemmed, abs=1e-12)  # stemmed by default, as lm-polygraph


def test_hand_computed_values():
    assert rouge_l("The cat sat on the mat.", "the CAT sat on the mat") == 1.0
    assert rouge_l("", "anything at all") == 0.0
    # LCS of "police are investigating" and "police investigate the case": police, investigat(e) under stemming
    # -> P = 2/3, R = 2/4, F = 4/7; without stemming only "police": P = 1/3, R = 1/4, F = 2/7
    assert rouge_l("Police are investigating", "Police investigate the case") == pytest.approx(4 / 7)
    assert rouge_l("Police are investigating", "Police investigate the case", stem=False) == pytest.approx(2 / 7)


def test_rouge_l_measure_scores_pairs_in_order():
    outputs, references = [o for o, _ in PAIRS], [r for _, r in PAIRS]
    got = RougeL()(outputs, references)
    assert got.shape == (len(PAIRS),) and got.dtype == np.float64
    assert got.tolist() == [rouge_l(o, r) for o, r in PAIRS]
    assert RougeL(stem=False)(outputs, references).tolist() == [rouge_l(o, r, stem=False) for o, r in PAIRS]
    with pytest.raises(DataError, match="got 1 outputs for 2 references"):
        RougeL()(["a"], ["a", "b"])
    with pytest.raises(DataError, match="not one string"):
        RougeL()("a summary", ["a summary"])


class HandEncoder:
    """Unit vectors chosen by hand: a fake of the packaged MiniLM encoder."""

    VECTORS = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [-1.0, 0.0], "": [0.0, 1.0]}

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        return np.array([self.VECTORS[t] for t in texts])


def test_embedding_similarity_is_the_clipped_cosine_and_empty_outputs_score_zero():
    encoder = HandEncoder()
    got = EmbeddingSimilarity(encoder=encoder)(["a", "b", "c", ""], ["a", "a", "a", ""])
    assert got == pytest.approx([1.0, 0.6, 0.0, 0.0])  # "c" is opposite: clipped; "" is no summary
    assert EmbeddingSimilarity(encoder=encoder)([], []).shape == (0,)


def test_qualities_by_name():
    assert QUALITIES.names() == ["embedding", "rougeL"]
    encoder = HandEncoder()
    rouge, emb = get_qualities("rougeL, embedding", encoder=encoder)
    assert isinstance(rouge, RougeL) and rouge.stem and emb.encoder is encoder
    assert [m.name for m in get_qualities(["embedding"], encoder=encoder)] == ["embedding"]
    assert "ROUGE-L F-measure" in rouge.describe()
    with pytest.raises(ConfigError, match="unknown quality measure 'bleu'; choose one of: embedding, rougeL"):
        get_qualities("bleu")
    with pytest.raises(ConfigError, match="name one twice"):
        get_qualities("rougeL,rougeL")
    with pytest.raises(ConfigError, match="name at least one quality measure"):
        get_qualities(" , ")
