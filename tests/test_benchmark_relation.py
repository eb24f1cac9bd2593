"""benchmarks/relation.py's pure pieces: stripping the entity markers, and the check that an attack edited no
entity word (planted attack results, one of which edits an entity word)."""

from __future__ import annotations

import pytest

from benchmarks.relation import edit_check, entity_word_edits, strip_markers


@pytest.mark.parametrize(
    ("marked", "plain", "e1", "e2"),
    [
        (
            "The <e1>author</e1> of a keygen uses a <e2>disassembler</e2>.",
            "The author of a keygen uses a disassembler.",
            "author",
            "disassembler",
        ),
        # <e2> first, multi-word entities, an entity at the very start
        (
            "<e2>red wine</e2> came from the old <e1>cellar door</e1>",
            "red wine came from the old cellar door",
            "cellar door",
            "red wine",
        ),
        ("a<e1>b</e1><e2>c</e2>d", "abcd", "b", "c"),  # adjacent entities, markers inside a word
    ],
)
def test_strip_markers_keeps_text_and_spans(marked, plain, e1, e2):
    text, head, tail = strip_markers(marked)
    assert text == plain
    assert text[head[0] : head[1]] == e1 and text[tail[0] : tail[1]] == e2


def test_strip_markers_refuses_unmarked_text():
    with pytest.raises(ValueError, match="not a marked relation example"):
        strip_markers("The <e1>author</e1> of a keygen.")


def test_entity_word_edits_count_only_entity_words():
    original = "The <e1>big red dog</e1> chased the <e2>cat</e2> across the yard."
    assert entity_word_edits(original, original) == 0
    assert entity_word_edits(original, original.replace("chased", "pursued")) == 0  # a context word
    assert entity_word_edits(original, original.replace("red", "crimson")) == 1  # inside <e1>…</e1>
    assert entity_word_edits(original, original.replace("<e2>cat</e2>", "<e2>kitty</e2>")) == 1
    assert entity_word_edits(original, original.replace("<e2>cat</e2>", "cat")) == 1  # markers gone: whole entity


def test_edit_check_counts_the_planted_entity_edit():
    original = "The <e1>big red dog</e1> chased the <e2>cat</e2> across the yard."
    planted = [
        {"original": original, "adversarial": original.replace("chased", "pursued")},  # context only: fine
        {"original": original, "adversarial": original.replace("red", "crimson")},  # an entity word: a violation
        {"original": original, "adversarial": original},  # unchanged
    ]
    out = edit_check(planted)
    assert out["checked"] == 3 and out["changed"] == 2
    assert out["violations"] == 1 and out["entity_words_edited"] == 1
    assert out["violation_examples"][0]["adversarial"].startswith("The <e1>big crimson dog</e1>")


def test_recorded_greedy_attack_on_a_tiny_relation_run_edits_no_entity_word(tiny_backbone, tmp_path):
    from benchmarks.relation import recording_attacks
    from caveat.config import load_config
    from caveat.robustness.run import attack_run
    from caveat.training.loop import Trainer
    from tests.conftest import one_thread, tiny_overrides
    from tests.fakes import planted_relations, write_jsonl

    for name, n, seed in (("train", 120, 1), ("validation", 30, 2), ("test", 30, 3)):
        write_jsonl(tmp_path / f"{name}.jsonl", planted_relations(n, seed))
    overrides = tiny_overrides(tiny_backbone, tmp_path, epochs=10, max_length=64, head_lr=1e-2)
    overrides = [o for o in overrides if not o.startswith("task=")] + ["task=relation-classification"]
    with one_thread():
        Trainer(load_config(overrides=overrides), tmp_path / "run", progress=False).fit()
        with recording_attacks() as recorded:
            out = attack_run(
                tmp_path / "run",
                "test",
                "greedy",
                max_examples=12,
                min_similarity=0.0,
                similarity_model=str(tiny_backbone),
                write=False,
            )
    results = recorded["greedy"]
    assert len(results) == out["attacks"]["greedy"]["n"] == 12  # every example, not only the kept few
    assert edit_check(results)["violations"] == 0  # single-word entities: the attack never reaches them
