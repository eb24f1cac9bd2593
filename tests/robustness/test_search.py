"""Every registered attack on planted sentences: constraints hold, queries are exact, seeds repeat,
and the keyword classifier falls to the minimal edit."""

from __future__ import annotations

import pytest

from caveat.errors import ConfigError
from caveat.robustness.attacks import ATTACKS, Constraints, Victim, Words, build_attack, parse_attacks
from tests.robustness.conftest import SENTENCES, BagOfWords, KeywordModel


def changed_tokens(result) -> list[int]:
    before, after = Words.of(result.original).tokens, Words.of(result.adversarial).tokens
    assert len(before) == len(after)  # substitutions only: no token appears or disappears
    return [i for i, (a, b) in enumerate(zip(before, after)) if a != b]


@pytest.mark.parametrize("name", ATTACKS.names())
@pytest.mark.parametrize(
    "max_change,min_similarity,protected", [(0.2, 0.8, ()), (0.3, 0.85, ("good",)), (1.0, 0.0, ("great", "movie"))]
)
def test_constraints_hold(name, max_change, min_similarity, protected, make_setup):
    setup = make_setup(max_change=max_change, min_similarity=min_similarity, protected=frozenset(protected))
    attack, victim, encoder = build_attack(name, setup), Victim(KeywordModel()), BagOfWords()
    stop = setup.constraints.stop_words
    results = [attack.attack(victim, text, label) for text, label in SENTENCES]
    assert any(r.changed for r in results) or name == "char_adjacent"  # not vacuous ("good" has no inner swap)
    for (text, label), r in zip(SENTENCES, results):
        edited = changed_tokens(r)
        words = Words.of(text)
        assert r.attacked and r.changed == len(edited) <= setup.constraints.budget(words.n_words)
        assert r.changed_fraction <= max_change
        for i in edited:
            core = words.core(i).lower()
            assert core not in stop and core not in {p.lower() for p in protected}
            new = Words.of(r.adversarial).core(i)
            assert new is None or new.lower() not in {p.lower() for p in protected}  # nor introduced
        if edited:
            similarity = float(encoder.encode([r.adversarial])[0] @ encoder.encode([text])[0])
            assert similarity >= min_similarity and r.similarity == pytest.approx(similarity)
        else:
            assert r.adversarial == text and r.similarity == 1.0
        assert r.success == (r.adversarial_label != label)
    assert victim.queries > 0


@pytest.mark.parametrize("name", ATTACKS.names())
def test_no_attack_edits_a_word_of_a_marked_entity(name, make_setup):
    # the keyword model reads "good" and "great": inside the entities they would be the words to edit
    text = "the <e1>old good movie</e1> had a <e2>lead great cast</e2> and good fun"
    attack = build_attack(name, make_setup(max_change=1.0, min_similarity=0.0))
    r = attack.attack(Victim(KeywordModel()), text, "positive")
    entity = Words.of(text).fixed
    assert entity and not set(changed_tokens(r)) & entity, r.adversarial


def test_greedy_flips_the_keyword_classifier_with_one_word(make_setup):
    attack, victim = build_attack("greedy", make_setup()), Victim(KeywordModel())
    r = attack.attack(victim, "the movie was good and the cast was great fun", "positive")
    assert r.success and r.changed == 1 and r.adversarial == "the movie was fine and the cast was great fun"
    assert (r.original_label, r.adversarial_label) == ("positive", "negative")
    assert r.original_prob == pytest.approx(1 / (1 + 2.718281828**-2)) and r.adversarial_prob > 0.5
    # hand count: the original, 5 deletions (movie good cast great fun; the/was/and are stop words),
    # then both synonyms of "good", the most important word; the first of them flips the label
    assert r.queries == 1 + 5 + 2 == victim.queries


def test_char_attack_flips_the_keyword_with_one_typo(make_setup):
    r = build_attack("charswap", make_setup()).attack(
        Victim(KeywordModel()), "the movie was good and the cast was great fun", "positive"
    )
    assert r.success and r.changed == 1 and changed_tokens(r) == [3]
    typo = Words.of(r.adversarial).tokens[3]
    assert typo[0] == "g" and typo[-1] == "d" and typo != "good"


def test_query_counts_are_exact(make_setup):
    # a similarity floor no single substitution meets: only the original and the deletions are scored
    victim = Victim(KeywordModel())
    r = build_attack("greedy", make_setup(min_similarity=0.95)).attack(
        victim, "the movie was good and the cast was great fun", "positive"
    )
    assert not r.success and r.changed == 0 and r.queries == 1 + 5 == victim.queries
    # random order: no deletions; every visited word's candidates (all pass 0.8) until the flip
    model = KeywordModel()
    victim = Victim(model)
    r = build_attack("wordsub", make_setup(seed=3)).attack(
        victim, "the movie was good and the cast was great fun", "positive"
    )
    assert r.queries == victim.queries == sum(model.calls)
    assert r.success and model.calls[0] == 1 and len(model.calls) >= 2
    # over many examples, with the originals scored by the caller in one batch: the counter adds up
    model = KeywordModel()
    victim = Victim(model)
    clean = victim.probs([t for t, _ in SENTENCES])
    attack = build_attack("greedy", make_setup())
    results = [attack.attack(victim, t, y, probs=p) for (t, y), p in zip(SENTENCES, clean)]
    assert sum(r.queries for r in results) == victim.queries == sum(model.calls)
    assert results[2].queries == 1  # "good movie": no budget, only the clean query
    assert model.calls[0] == len(SENTENCES) and max(model.calls[1:]) <= 9  # one call per step: at most 9 deletions


def test_misclassified_examples_are_not_attacked(make_setup):
    victim = Victim(KeywordModel())
    r = build_attack("greedy", make_setup()).attack(victim, "the movie was good", "negative")
    assert not r.attacked and not r.success and r.queries == 1 and r.adversarial == r.original


@pytest.mark.parametrize("name", ["charswap", "wordsub", "greedy"])
def test_same_seed_same_result(name, make_setup):
    def run(seed):
        attack, victim = (
            build_attack(name, make_setup(seed=seed, max_change=0.5)),
            Victim(KeywordModel({"good": 3.0, "great": 1.0, "fun": 1.0}, bias=-4.5)),
        )
        return [attack.attack(victim, t, y).as_dict() for t, y in SENTENCES]

    assert run(0) == run(0)
    if name != "greedy":  # greedy has nothing random
        assert any(run(0) != run(s) for s in range(1, 6))


def test_bad_input_is_refused(make_setup):
    with pytest.raises(ConfigError, match="unknown attack 'bogus'; choose one of: "):
        parse_attacks("greedy,bogus")
    with pytest.raises(ConfigError, match="no attack given"):
        parse_attacks(" , ")
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ConfigError, match=r"max_change must be in \(0, 1\]"):
            Constraints(max_change=bad)
    with pytest.raises(ConfigError, match=r"min_similarity must be in \[0, 1\]"):
        Constraints(min_similarity=1.2)
    with pytest.raises(ConfigError, match="word-substitution attacks need a source of substitutes"):
        build_attack("greedy", make_setup().__class__(Constraints(), BagOfWords()))
    assert parse_attacks("greedy, charswap,greedy") == ["greedy", "charswap"]


@pytest.mark.parametrize("name", ATTACKS.names())
@pytest.mark.parametrize(
    "max_change,min_similarity,protected", [(0.2, 0.8, ()), (0.3, 0.85, ("good",)), (1.0, 0.0, ("great", "movie"))]
)
def test_random_edits_keep_the_constraints_and_use_only_candidates(
    name, max_change, min_similarity, protected, make_setup
):
    import random

    setup = make_setup(max_change=max_change, min_similarity=min_similarity, protected=frozenset(protected))
    attack, encoder = build_attack(name, setup), BagOfWords()
    edited_any = False
    for text, _ in SENTENCES:
        out, changed, similarity = attack.perturb(text, random.Random(f"7:{text}"))
        assert (out, changed, similarity) == attack.perturb(text, random.Random(f"7:{text}"))  # seeded
        words, after = Words.of(text), Words.of(out)
        edited = [i for i, (a, b) in enumerate(zip(words.tokens, after.tokens)) if a != b]
        assert len(after.tokens) == len(words.tokens) and changed == len(edited)
        assert changed <= setup.constraints.budget(words.n_words)
        for i in edited:
            assert setup.constraints.editable(words.core(i))
            assert after.core(i) in attack.options(words.core(i))  # a candidate, never a protected word
        if changed:
            edited_any = True
            assert similarity == pytest.approx(float(encoder.encode([out])[0] @ encoder.encode([text])[0]))
            assert similarity >= min_similarity
        else:
            assert out == text and similarity == 1.0
    assert edited_any or name == "char_adjacent"  # not vacuous ("good" has no inner swap)


def test_random_edit_keeps_the_longest_run_above_the_similarity_floor():
    import random

    from caveat.robustness.attacks import Attack

    # 10 distinct words (no hash clash), budget 3 under 0.3
    text = "alpha bravo charlie delta echo foxtrot golf kilo india juliet"
    # bag of words: k of 10 distinct words replaced -> cosine (10 - k) / 10, so a 0.8 floor keeps 2 of the 3 edits
    attack = Attack("x", lambda w: [w + "x"], Constraints(max_change=0.3, min_similarity=0.8), BagOfWords())
    out, changed, similarity = attack.perturb(text, random.Random(0))
    assert changed == 2 and similarity == pytest.approx(0.8)
    assert sum(w.endswith("x") for w in out.split()) == 2
    loose = Attack("x", lambda w: [w + "x"], Constraints(max_change=0.3, min_similarity=0.5), BagOfWords())
    assert loose.perturb(text, random.Random(0))[1] == 3  # the whole budget
    strict = Attack("x", lambda w: [w + "x"], Constraints(max_change=0.3, min_similarity=0.95), BagOfWords())
    assert strict.perturb(text, random.Random(0)) == (text, 0, 1.0)
    assert len({loose.perturb(text, random.Random(s))[0] for s in range(10)}) > 1  # the words are random


def test_random_edits_of_many_texts_match_one_at_a_time(make_setup):
    import random

    attack = build_attack("greedy", make_setup(max_change=0.3, min_similarity=0.75))
    texts = [text for text, _ in SENTENCES]
    one_by_one = [attack.perturb(t, random.Random(k)) for k, t in enumerate(texts)]
    encoder_calls = len(attack.encoder.calls)
    together = attack.perturb_all(texts, [random.Random(k) for k in range(len(texts))])
    assert [t[:2] for t in together] == [t[:2] for t in one_by_one]
    assert [t[2] for t in together] == pytest.approx([t[2] for t in one_by_one])
    assert any(changed for _, changed, _ in together)
    assert len(attack.encoder.calls) == encoder_calls + 1  # one batched call


def test_all_and_the_spellings_of_a_word_attacks_sources():
    from caveat.robustness.attacks import attack_sources

    assert parse_attacks("all") == ["charswap", "wordsub", "greedy", "pwws"]
    assert parse_attacks("greedy,all") == ["greedy", "charswap", "wordsub", "pwws"]
    # a word attack's default source named, or its sources in another order: the registered name
    assert parse_attacks("pwws@ppdb, greedy@embedding, wordsub@ppdb+embedding") == [
        "pwws",
        "greedy",
        "wordsub@embedding+ppdb",
    ]
    assert attack_sources("charswap") == attack_sources("char_insert") == ("char",)
    assert attack_sources("greedy") == ("embedding",) and attack_sources("pwws@ppdb") == ("ppdb",)
    assert attack_sources("pwws@embedding+ppdb") == ("embedding", "ppdb")
    with pytest.raises(ConfigError, match="unknown attack 'greedy@bogus'"):
        parse_attacks("greedy@bogus")
