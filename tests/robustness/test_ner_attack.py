"""NER attacks: context words only (entities never edited), constraints, exact query counts, the
minimal edit on a planted rule, span metrics, and ``caveat attack`` end to end on a tiny NER run."""

from __future__ import annotations

import json
import shutil
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from caveat.cli.app import app
from caveat.models.tags import bio_spans
from caveat.robustness.attacks import AttackSetup, Constraints, Words, build_attack
from caveat.robustness.ner import (
    TagVictim,
    attack_ner,
    attack_sentence,
    span_attack_metrics,
    span_scores,
    spans_text,
)
from caveat.types import Predictions, TokenExample
from tests.robustness.conftest import BagOfWords

LABELS = ["B-LOC", "B-PER", "I-PER", "O"]
SYNONYMS = {
    "city": ["town", "place"],
    "walked": ["went", "strolled"],
    "road": ["street", "lane"],
    "capital": ["centre", "seat"],
    "visited": ["toured", "saw"],
    "alice": ["carol"],
    "paris": ["lyon"],
    "smith": ["jones"],
    "rome": ["milan"],
    "bob": ["dave"],
}


class RuleTagger:
    """PER for 'alice'/'bob' (+ 'smith' after them); 'paris'/'rome' are LOC only in context: the LOC
    logit is -1 plus the weights of the context words present ('city' 3, 'capital' 2, 'road' 0.5).
    Changing the entity words themselves would break everything: the attack must not.
    Records every sentence it scores."""

    labels = LABELS
    context: ClassVar[dict[str, float]] = {"city": 3.0, "capital": 2.0, "road": 0.5}

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def predict(self, sentences):
        self.seen += [list(s) for s in sentences]
        width = max(len(s) for s in sentences)
        logits = np.full((len(sentences), width, len(LABELS)), -5.0, dtype=np.float32)
        for n, words in enumerate(sentences):
            low = [w.lower() for w in words]
            loc = -1.0 + sum(self.context.get(w, 0.0) for w in set(low))
            for i, w in enumerate(low):
                if w in ("alice", "bob"):
                    logits[n, i, 1] = 5.0
                elif w == "smith" and i and low[i - 1] in ("alice", "bob"):
                    logits[n, i, 2] = 5.0
                elif w in ("paris", "rome"):
                    logits[n, i, [0, 3]] = loc, 0.0  # LOC against O
                else:
                    logits[n, i, 3] = 5.0
        return Predictions(
            probs=np.exp(logits)[None] / np.exp(logits).sum(-1, keepdims=True)[None],
            logits=logits[None],
            mask=np.ones(logits.shape[:2], dtype=bool),
            labels=LABELS,
        )


def tagged(text: str) -> tuple[list[str], list[str]]:
    """``"alice/B-PER smith/I-PER walked"`` -> words, tags (O by default)."""
    pairs = [(w.partition("/")[0], w.partition("/")[2] or "O") for w in text.split()]
    return [w for w, _ in pairs], [t for _, t in pairs]


SENTENCES = [
    tagged(s)
    for s in [
        "alice/B-PER smith/I-PER walked to the city of paris/B-LOC by the road",
        "bob/B-PER visited the capital rome/B-LOC and the city road today",
        "the road to rome/B-LOC is long says alice/B-PER",  # LOC logit -0.5: wrong, not attacked
        "walked city bob/B-PER paris/B-LOC",  # 4 words: budget 0 under 0.2
        "nothing here but a city road walked",  # no entity: not attacked
        "alice/B-PER smith/I-PER saw paris/B-LOC city capital road near the old walked street",
    ]
]


def setup(**constraints) -> AttackSetup:
    seed = constraints.pop("seed", 0)
    return AttackSetup(
        Constraints(**constraints),
        BagOfWords(),
        word_candidates=lambda: lambda w: list(SYNONYMS.get(w.lower(), [])),
        seed=seed,
    )


@pytest.mark.parametrize("name", ["charswap", "greedy", "wordsub"])
@pytest.mark.parametrize(
    "max_change,min_similarity,protected", [(0.2, 0.8, ()), (0.3, 0.85, ("city",)), (1.0, 0.0, ("road",))]
)
def test_context_only_and_constraints_hold(name, max_change, min_similarity, protected):
    s = setup(max_change=max_change, min_similarity=min_similarity, protected=frozenset(protected))
    attack, model, encoder = build_attack(name, s), RuleTagger(), BagOfWords()
    victim = TagVictim(model)
    results = [attack_sentence(attack, victim, words, tags) for words, tags in SENTENCES]
    assert sum(r.changed for r in results) > 0  # not vacuous
    for (words, tags), r in zip(SENTENCES, results):
        after = r.adversarial.split()
        assert len(after) == len(words)  # substitutions only
        edited = [i for i, (a, b) in enumerate(zip(words, after)) if a != b]
        assert all(tags[i] == "O" for i in edited)  # entity words never edited
        assert r.changed == len(edited) <= s.constraints.budget(Words.of(r.original).n_words)
        for i in edited:
            assert words[i].lower() not in s.constraints.stop_words and words[i].lower() not in protected
            assert after[i].lower() not in protected
        if edited:
            sim = float(encoder.encode([r.adversarial])[0] @ encoder.encode([r.original])[0])
            assert sim >= min_similarity and r.similarity == pytest.approx(sim)
        else:
            assert r.adversarial == r.original and r.similarity == 1.0
        assert r.label == spans_text(bio_spans(tags)) and r.success == (r.attacked and r.adversarial_label != r.label)
    # which sentences are attacked: right spans and at least one entity
    assert [r.attacked for r in results] == [True, True, False, True, False, True]
    assert results[3].changed == 0 or max_change >= 0.25  # 4 words: a budget of 0 under 0.2
    # every sentence the model scored keeps the entity words of one of the sentences, in order
    entity_words = {w for words, tags in SENTENCES for w, t in zip(words, tags) if t != "O"}
    entities = {tuple(w for w, t in zip(words, tags) if t != "O") for words, tags in SENTENCES}
    assert all(tuple(w for w in seen if w in entity_words) in entities for seen in model.seen)
    assert not any({"carol", "lyon", "jones", "milan", "dave"} & set(seen) for seen in model.seen)  # never tried


def test_greedy_breaks_the_planted_rule_with_one_word():
    model = RuleTagger()
    victim = TagVictim(model)
    words, tags = SENTENCES[0]
    r = attack_sentence(build_attack("greedy", setup()), victim, words, tags)
    assert r.attacked and r.success and r.changed == 1
    assert (
        r.adversarial == "alice smith walked to the town of paris by the road"
    )  # 'city' ranked first; most similar = first
    assert (r.label, r.original_label, r.adversarial_label) == ("PER:0-2 LOC:7-8", "PER:0-2 LOC:7-8", "PER:0-2")
    assert r.adversarial_prob < r.original_prob
    # hand count: the original, 3 deletions (walked city road; to/the/of/by are stop words, entities never),
    # then both synonyms of 'city', which both break the LOC span
    assert r.queries == 1 + 3 + 2 == victim.queries == len(model.seen)
    assert [len(s) for s in model.seen[1:4]] == [10, 10, 10]  # the deletions
    m = span_attack_metrics([r], 1.0)
    assert m["clean_span_errors"] == 0 and m["after_attack_span_errors"] == 1 == m["after_attack_missed_spans"]
    assert (
        m["clean_span_f1"] == 1.0 and m["after_attack_span_recall"] == 0.5 and m["after_attack_span_precision"] == 1.0
    )
    assert m["clean_accuracy"] == 1.0 and m["after_attack_accuracy"] == 0.0 and m["success_rate"] == 1.0
    assert m["examples"][0]["adversarial_label"] == "PER:0-2" and "gold_spans" not in m["examples"][0]
    # char edits: one typo in 'city' does it too
    r = attack_sentence(build_attack("charswap", setup()), TagVictim(RuleTagger()), words, tags)
    assert r.success and r.changed == 1 and r.adversarial.split()[5] != "city"


def test_queries_counted_exactly():
    # a similarity floor no substitution meets: only the original and the deletions are scored
    model = RuleTagger()
    victim = TagVictim(model)
    words, tags = SENTENCES[0]
    r = attack_sentence(build_attack("greedy", setup(min_similarity=0.95)), victim, words, tags)
    assert not r.success and r.changed == 0 and r.queries == 1 + 3 == len(model.seen)
    # one victim, the clean pass scored by the caller in one batch: the per-sentence counts add up
    examples = [TokenExample(tuple(w), tuple(t)) for w, t in SENTENCES]
    attack = build_attack("greedy", setup(max_change=0.5))
    model = RuleTagger()
    victim = TagVictim(model)
    clean = victim.score([e.tokens for e in examples])
    results = [attack_sentence(attack, victim, e.tokens, e.tags, scored=s) for e, s in zip(examples, clean)]
    assert sum(r.queries for r in results) == victim.queries == len(model.seen)
    assert [r.queries for r in results if not r.attacked] == [1, 1]
    # attack_ner: the clean pass is shared by the attacks, and counted in each attack's figures
    model = RuleTagger()
    attacks = [build_attack(name, setup(max_change=0.5)) for name in ("greedy", "wordsub")]
    out = attack_ner(model, examples, attacks)
    unattacked = len(examples) - out["greedy"]["attacked"]  # 1 query each, not in mean_queries
    assert unattacked == 2
    totals = [out[a.name]["mean_queries"] * out[a.name]["attacked"] + unattacked for a in attacks]
    assert sum(totals) - len(examples) == pytest.approx(len(model.seen))


def test_span_scores():
    gold = [[(0, 2, "PER"), (5, 6, "LOC")], [(1, 2, "LOC")], []]
    pred = [[(0, 2, "PER"), (5, 6, "PER")], [], [(0, 1, "PER")]]
    s = span_scores(gold, pred)
    assert (s["missed"], s["spurious"], s["span_errors"]) == (2, 2, 4)  # mislabelled = one of each
    assert (
        s["precision"] == pytest.approx(1 / 3)
        and s["recall"] == pytest.approx(1 / 3)
        and s["f1"] == pytest.approx(1 / 3)
    )
    assert spans_text(gold[0]) == "PER:0-2 LOC:5-6" and spans_text([]) == ""


def test_attack_ner_run_end_to_end(ner_run, tiny_backbone, tmp_path):
    from caveat.inference import Predictor
    from caveat.models.tags import decode_tags
    from tests.fakes import planted_ner, write_conll

    run = tmp_path / "run"
    shutil.copytree(ner_run, run)
    sentences = planted_ner(16, seed=11)
    for _words, tags in sentences[:4]:  # mislabel a filler word as PER: these the model gets wrong
        tags[tags.index("O")] = "B-PER"
    data = write_conll(tmp_path / "mixed.conll", sentences)

    predictor = Predictor.from_run(run)
    logits = predictor.predict([w for w, _ in sentences]).logits[0]
    pred = decode_tags([logits[i, : len(w)] for i, (w, _) in enumerate(sentences)], predictor.labels)
    right = [bio_spans(p) == bio_spans(t) for p, (_, t) in zip(pred, sentences)]
    assert sum(right[:4]) == 0 and sum(right) >= 8  # the tiny model has learnt the planted entities

    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "attack",
            str(run),
            "--data",
            str(data),
            "--attack",
            "charswap,greedy",
            "--max-change",
            "0.3",
            "--min-similarity",
            "0.5",
            "--similarity-model",
            str(tiny_backbone),
            "--examples-out",
            str(tmp_path / "examples.jsonl"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    rows = [json.loads(line) for line in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 32 and [r["index"] for r in rows if r["attack"] == "greedy"] == list(range(16))
    for name, m in out["attacks"].items():  # every sentence kept, its span labels as the figures render them
        mine = [r for r in rows if r["attack"] == name]
        assert sum(r["success"] for r in mine) == m["successes"] and sum(r["attacked"] for r in mine) == m["attacked"]
        for r in mine:
            gold = bio_spans(sentences[r["index"]][1])
            assert r["label"] == " ".join(f"{typ}:{start}-{end}" for start, end, typ in gold)
    assert out["task"] == "token-classification" and out["n"] == 16 and list(out["attacks"]) == ["charswap", "greedy"]
    assert out["clean_accuracy"] == pytest.approx(sum(right) / 16)
    for m in out["attacks"].values():
        assert m["attacked"] == sum(right) and m["gold_spans"] == sum(len(bio_spans(t)) for _, t in sentences)
        assert m["after_attack_accuracy"] == pytest.approx((m["attacked"] - m["successes"]) / 16)
        assert m["after_attack_span_errors"] >= m["clean_span_errors"] + m["successes"]
        assert m["after_attack_span_f1"] <= m["clean_span_f1"] < 1.0
        assert m["constraints"] == {"max_change": 0.3, "min_similarity": 0.5, "protected": []}
        for ex in m["examples"]:
            assert ex["success"] and ex["label"] == ex["original_label"] != ex["adversarial_label"]
            before, after = ex["original"].split(), ex["adversarial"].split()
            gold = next(t for w, t in sentences if w == before)
            assert len(after) == len(before) and all(a == b for a, b, t in zip(before, after, gold) if t != "O")
    saved = json.loads((run / "metrics.json").read_text())["attack"][str(data)]
    assert saved == json.loads(json.dumps(out["attacks"]))
