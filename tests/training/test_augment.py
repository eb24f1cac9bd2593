"""A2T-style augmentation: each epoch adds exactly the successful attacks on its seeded subset, resumably."""

from __future__ import annotations

import math

import pytest
from safetensors.torch import load_file

from caveat.config import load_config
from caveat.data.load import load_data
from caveat.errors import ConfigError
from caveat.inference import Predictor
from caveat.models.backbone import load_backbone
from caveat.models.classifier import CaveatModel
from caveat.robustness.attacks import AttackSetup, Constraints, Victim, build_attack
from caveat.robustness.similarity import SentenceEncoder
from caveat.training.augment import attack_seed, pick
from caveat.training.loop import Trainer
from caveat.types import Task
from tests.conftest import tiny_overrides


class Interrupt(Exception):
    pass


def augment_overrides(backbone, data, **augment) -> list[str]:
    options = {"enabled": True, "fraction": 0.25, "min_similarity": 0.5, "similarity_model": str(backbone)} | augment
    return tiny_overrides(backbone, data, epochs=3) + [f"train.augment.{k}={v}" for k, v in options.items()]


def train_into_epoch_one(cfg, run_dir) -> dict:
    """Train until the first step of epoch 1, then stop: that epoch's ``augmented`` set and the
    ``history`` so far, as the trainer state held them."""
    seen = {}

    def stop_in_epoch_one(state, stats):
        if state.epoch == 1 and state.step_in_epoch == 1:
            seen.update(augmented=dict(state.augmented), history=list(state.augment_history))
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(cfg, run_dir, progress=False, callbacks=[stop_in_epoch_one]).fit()
    return seen


def attack_setup(cfg, backbone, epoch: int) -> AttackSetup:
    """The setup the augmenter builds in ``epoch`` (character attacks: no word source needed)."""
    aug = cfg.train.augment
    return AttackSetup(
        Constraints(max_change=aug.max_change, min_similarity=aug.min_similarity),
        SentenceEncoder(str(backbone)),
        seed=attack_seed(cfg.seed, epoch),
    )


def attack_directly(run_dir, backbone, cfg, epoch: int) -> list:
    """The attack run by hand on the epoch's subset, with the weights the epoch started from."""
    tokenizer, encoder = load_backbone(str(backbone))
    model = CaveatModel(encoder, 3, task=Task.TEXT_CLASSIFICATION, pooling="mean", head_dropout=0.1)
    model.load_state_dict(load_file(str(run_dir / "checkpoint" / "model.safetensors")))
    victim = Victim(Predictor(model, tokenizer, ["first", "second", "third"], Task.TEXT_CLASSIFICATION))
    aug = cfg.train.augment
    attack = build_attack(aug.attack, attack_setup(cfg, backbone, epoch))
    train = load_data(cfg).train.examples
    subset = [train[i] for i in pick(len(train), aug.fraction, cfg.seed, epoch)]
    clean = victim.probs([ex.text for ex in subset])
    return [attack.attack(victim, ex.text, ex.label, probs=p) for ex, p in zip(subset, clean)]


def test_augmentation_adds_exactly_the_successful_examples_and_resumes(tiny_backbone, text_data, tmp_path):
    cfg = load_config(overrides=augment_overrides(tiny_backbone, text_data))
    seen = train_into_epoch_one(cfg, tmp_path / "run")
    # the checkpoint written at the end of epoch 0 holds the weights epoch 1 was attacked with
    results = attack_directly(tmp_path / "run", tiny_backbone, cfg, epoch=1)
    won = [r for r in results if r.success]
    assert won, "the planted setup should give some successful attacks"
    assert seen["augmented"]["texts"] == [r.adversarial for r in won]
    assert seen["augmented"]["labels"] == [r.label for r in won]
    assert all(r.adversarial != r.original for r in won)
    (entry,) = seen["history"]  # epoch 0 trains clean (start_epoch=1)
    assert entry["epoch"] == 1 and entry["attacked"] == len(results) == 48
    assert entry["successes"] == entry["added"] == len(won)

    summary = Trainer(cfg, tmp_path / "run", progress=False).fit(resume=True)
    first, second = summary["augment"]
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in entry.items() if k != "seconds"}
    assert second["epoch"] == 2 and second["attacked"] == 48
    # each epoch trains on the clean rows plus that epoch's successes only (not accumulated)
    assert summary["steps"] == 12 + math.ceil((192 + first["added"]) / 16) + math.ceil((192 + second["added"]) / 16)


def test_random_mode_adds_each_chosen_examples_seeded_edit_without_querying(tiny_backbone, text_data, tmp_path):
    import random

    cfg = load_config(overrides=augment_overrides(tiny_backbone, text_data, mode="random", attack="charswap"))
    seen = train_into_epoch_one(cfg, tmp_path / "run")
    aug = cfg.train.augment
    setup = attack_setup(cfg, tiny_backbone, 1)
    attack = build_attack(aug.attack, setup)
    train = load_data(cfg).train.examples
    by_hand = [
        (attack.perturb(train[i].text, random.Random(f"{setup.seed}:{i}")), train[i].label)
        for i in pick(len(train), aug.fraction, cfg.seed, 1)
    ]
    edited = [(text, label) for (text, changed, _), label in by_hand if changed]
    assert edited, "the planted setup should give some edits"
    assert list(zip(seen["augmented"]["texts"], seen["augmented"]["labels"])) == edited
    (entry,) = seen["history"]
    assert entry["attacked"] == 48 and entry["successes"] == entry["added"] == len(edited)
    assert entry["queries"] == 0  # the model was never asked


def test_off_by_default(tiny_backbone, text_data, tmp_path):
    cfg = load_config(overrides=tiny_overrides(tiny_backbone, text_data, max_steps=3))
    assert cfg.train.augment.enabled is False
    summary = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert "augment" not in summary and summary["steps"] == 3
    assert not any("attacked" in row for row in summary["history"])


def test_subset_is_seeded_by_seed_and_epoch():
    assert (pick(100, 0.2, 13, 1) == pick(100, 0.2, 13, 1)).all() and len(pick(100, 0.2, 13, 1)) == 20
    assert (pick(100, 0.2, 13, 1) != pick(100, 0.2, 13, 2)).any()
    assert len(pick(3, 0.01, 0, 0)) == 1 and len(pick(3, 1.0, 0, 0)) == 3


def test_ner_runs_are_refused(tiny_backbone, ner_data):
    with pytest.raises(ConfigError, match="train.augment is for text- and relation-classification runs"):
        load_config(
            overrides=tiny_overrides(tiny_backbone, ner_data, "token-classification") + ["train.augment.enabled=true"]
        )


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.augment.fraction=0", r"train\.augment\.fraction=0: Input should be greater than 0"),
        ("train.augment.fraction=1.5", r"train\.augment\.fraction=1\.5: Input should be less than or equal to 1"),
        ("train.augment.attack=nope", r"unknown attack 'nope'; choose one of: .*charswap"),
        ("train.augment.start_epoch=-1", r"train\.augment\.start_epoch=-1"),
        ("train.augment.mode=smart", r"train\.augment\.mode='smart': Input should be 'attack' or 'random'"),
    ],
)
def test_config_is_validated(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=[override])


# --- the lexicons and mixtures (issue 19): no model is trained; an untrained tiny model is attacked ------------


def make_augmenter(backbone, data, tmp_path, *, lexicons=None, **augment):
    """An ``Augmenter`` over the planted training set, around an untrained tiny model (random edits need none).
    ``lexicons``: loaded ``Lexicons``, or a folder given as ``train.augment.lexicons``."""
    from caveat.config import AugmentConfig
    from caveat.data.labels import LabelMap
    from caveat.training.augment import Augmenter

    options = {"enabled": True, "fraction": 1.0, "start_epoch": 0, "mode": "random", "min_similarity": 0.5}
    if isinstance(lexicons, str):
        augment, lexicons = {**augment, "lexicons": lexicons}, None
    cfg = AugmentConfig(**(options | {"similarity_model": str(backbone)} | augment))
    tokenizer, encoder = load_backbone(str(backbone))
    model = CaveatModel(encoder, 3, task=Task.TEXT_CLASSIFICATION, pooling="mean", head_dropout=0.1)
    examples = load_data(load_config(overrides=tiny_overrides(backbone, data))).train.examples
    augmenter = Augmenter(
        cfg,
        seed=0,
        tokenizer=tokenizer,
        label_map=LabelMap(["first", "second", "third"]),
        examples=examples,
        train_rows=[],
        max_length=32,
        batch_size=64,
        encoder=SentenceEncoder(str(backbone)),
        lexicons=lexicons,
    )
    return augmenter, model


def substitutions(augmenter, index, results) -> list[tuple[str, str]]:
    """The (original word, substitute) pairs of the random edits (a substitution keeps the words in place)."""
    pairs = []
    for i, r in zip(index, results):
        before, after = augmenter.examples[i].text.split(), r.adversarial.split()
        assert len(before) == len(after)
        pairs += [(a, b) for a, b in zip(before, after) if a != b]
    return pairs


def write_lexicons(folder, *, antonyms=(), synonyms=()):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wordnet_antonyms.txt").write_text("".join(f"{a} {b}\n" for a, b in antonyms))
    if synonyms:
        (folder / "ppdb_synonyms.txt").write_text("".join(f"{a} {b}\n" for a, b in synonyms))
    return folder


def test_augmentation_never_proposes_an_antonym_of_the_lexicon(tiny_backbone, text_data, tmp_path):
    from caveat.robustness.attacks import Lexicons

    # without an antonym lexicon: the embedding neighbours the edits use
    plain, model = make_augmenter(tiny_backbone, text_data, tmp_path, attack="wordsub", lexicons=Lexicons.of())
    index, drawn, results, withheld = plain.generate(model, 0)
    seen = sorted(set(substitutions(plain, index, results)))
    assert len(seen) > 4 and not withheld and set(drawn) == {"wordsub"}
    # half of them are antonyms now (the reverse direction too: the lexicon is symmetric)
    banned = seen[::2]
    folder = write_lexicons(tmp_path / "lex", antonyms=banned)
    filtered, model = make_augmenter(tiny_backbone, text_data, tmp_path, attack="wordsub", lexicons=str(folder))
    assert filtered.lexicons.folder == str(folder.resolve())  # train.augment.lexicons is read
    index, _, results, withheld = filtered.generate(model, 0)
    pairs = substitutions(filtered, index, results)
    symmetric = set(banned) | {(b, a) for a, b in banned}
    assert pairs and not set(pairs) & symmetric  # edits still happen, never with an antonym
    assert withheld and withheld <= symmetric
    stats = filtered.build(model, 0).stats()
    assert stats["antonym_filter"] is True and stats["antonyms_filtered"] == len(withheld)
    assert stats["by_attack"] == {"wordsub": {"attacked": 192, "added": stats["added"]}}


def test_a_mixture_draws_each_example_from_one_of_its_sources(tiny_backbone, text_data, tmp_path):
    from tests.fakes import FILLER

    synonyms = [(w, f"{w}x") for w in (*FILLER, "alpha", "beta", "gamma")]  # ppdb: a made-up synonym per word
    folder = write_lexicons(tmp_path / "lex", synonyms=synonyms)
    augmenter, model = make_augmenter(
        tiny_backbone, text_data, tmp_path, attack="wordsub,charswap,pwws@ppdb", lexicons=str(folder)
    )
    assert augmenter.names == ["wordsub", "charswap", "pwws"]  # pwws@ppdb is pwws
    index, drawn, results, _ = augmenter.generate(model, 0)
    vocabulary = set((tiny_backbone / "vocab.txt").read_text().split())
    made_up = {s for _, s in synonyms}
    by_source = {}
    for i, name, r in zip(index, drawn, results):
        by_source.setdefault(name, []).extend(substitutions(augmenter, [i], [r]))
    assert set(by_source) == {"wordsub", "charswap", "pwws"}
    assert all(len(pairs) > 5 for pairs in by_source.values())
    assert all(b in vocabulary and b not in made_up for _, b in by_source["wordsub"])  # embedding neighbours
    assert all(b in made_up for _, b in by_source["pwws"])  # the lexicon's synonyms only
    assert all(b not in made_up and b not in vocabulary for _, b in by_source["charswap"])  # misspellings
    # seeded: the same draw again, and a different one in another epoch; the shards' draws are the whole's
    assert augmenter.generate(model, 0)[1] == drawn and augmenter.generate(model, 1)[1] != drawn
    shards = [augmenter.generate(model, 0, rank=r, world=2) for r in (0, 1)]
    assert sorted(zip(shards[0][0] + shards[1][0], shards[0][1] + shards[1][1])) == sorted(zip(index, drawn))
    stats = augmenter.build(model, 0).stats()
    assert sum(s["attacked"] for s in stats["by_attack"].values()) == stats["attacked"] == 192
    assert all(s["added"] > 0 for s in stats["by_attack"].values())


def test_an_attack_drawing_from_ppdb_needs_the_synonym_lexicon_before_training(tiny_backbone, text_data, tmp_path):
    folder = write_lexicons(tmp_path / "lex", antonyms=[("good", "bad")])  # no ppdb_synonyms.txt
    with pytest.raises(ConfigError, match=r"ppdb candidate source needs the PPDB synonym lexicon.*ppdb_synonyms"):
        make_augmenter(tiny_backbone, text_data, tmp_path, attack="charswap,greedy@ppdb", lexicons=str(folder))
    with pytest.raises(ConfigError, match="lexicons .*nowhere is not a folder"):
        make_augmenter(tiny_backbone, text_data, tmp_path, attack="charswap", lexicons=str(tmp_path / "nowhere"))


def test_the_attack_may_be_a_mixture():
    cfg = load_config(overrides=["train.augment.attack=greedy, charswap,pwws@ppdb,greedy@ppdb+embedding"])
    assert cfg.train.augment.attack == "greedy,charswap,pwws,greedy@embedding+ppdb"
    assert load_config(overrides=["train.augment.attack=all"]).train.augment.attack == "charswap,wordsub,greedy,pwws"
    with pytest.raises(ConfigError, match=r"unknown attack 'nope'"):
        load_config(overrides=["train.augment.attack=greedy,nope"])


def test_relation_runs_are_augmented_without_touching_an_entity_word(tiny_backbone, tmp_path):
    import re

    from tests.fakes import planted_relations, write_jsonl

    for name, n, seed in (("train", 48, 1), ("validation", 24, 2), ("test", 24, 3)):  # multi-word entities
        rows = planted_relations(n, seed)
        for row in rows:
            row["text"] = row["text"].replace("<e1>", "<e1>big older ").replace("<e2>", "<e2>small grey ")
        write_jsonl(tmp_path / f"{name}.jsonl", rows)
    overrides = augment_overrides(tiny_backbone, tmp_path, mode="random", attack="charswap", fraction=1.0)
    overrides = [o for o in overrides if not o.startswith("task=")] + ["task=relation-classification"]
    cfg = load_config(overrides=overrides + ["train.max_length=64"])
    seen = train_into_epoch_one(cfg, tmp_path / "run")
    texts, index = seen["augmented"]["texts"], seen["augmented"]["index"]
    train = load_data(cfg).train.examples
    assert len(texts) > 10  # most examples got an edit, and training read the marked rows
    entities = lambda t: re.findall(r"<(e[12])>(.*?)</\1>", t)  # noqa: E731
    for text, i in zip(texts, index):
        assert text != train[i].text and entities(text) == entities(train[i].text), (train[i].text, text)
