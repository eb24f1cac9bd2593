"""attack_metrics on planted results: exact figures."""

from __future__ import annotations

import pytest

from caveat.robustness.attacks import AttackResult
from caveat.robustness.metrics import attack_metrics


def result(attacked, success, queries, changed=0, words=10, similarity=1.0) -> AttackResult:
    return AttackResult(
        original="a",
        adversarial="b" if success else "a",
        label="pos",
        original_label="pos" if attacked else "neg",
        original_prob=0.9,
        adversarial_prob=0.6,
        adversarial_label="neg" if success else "pos",
        attacked=attacked,
        success=success,
        queries=queries,
        words=words,
        changed=changed,
        similarity=similarity,
    )


def test_figures():
    results = [
        result(False, False, 1),
        result(True, False, 30),
        result(True, True, 10, changed=1, similarity=0.9),
        result(True, True, 20, changed=2, similarity=0.8),
    ]
    m = attack_metrics(results, seconds=2.0, n_examples=1)
    assert m["n"] == 4 and m["attacked"] == 3 and m["successes"] == 2
    assert m["clean_accuracy"] == 0.75 and m["after_attack_accuracy"] == 0.25
    assert m["success_rate"] == pytest.approx(2 / 3) and m["mean_queries"] == 20.0
    assert m["mean_changed_fraction"] == pytest.approx(0.15) and m["mean_similarity"] == pytest.approx(0.85)
    assert m["examples_per_s"] == 1.5 and len(m["examples"]) == 1 and m["examples"][0]["changed_fraction"] == 0.1
    empty = attack_metrics([result(False, False, 1)], seconds=0.0)
    assert empty["success_rate"] is None and empty["mean_queries"] is None and empty["examples"] == []


def test_word_edits_name_each_changed_run_in_text_order():
    from caveat.robustness.metrics import word_edits

    assert word_edits("the best film , really", "the worst film , really") == ["best -> worst"]
    assert word_edits("a good fun movie", "a nice fun film") == ["good -> nice", "movie -> film"]
    assert word_edits("so very good", "so good") == ["very ->"]  # deleted
    assert word_edits("so good", "so very good") == ["-> very"]  # inserted
    assert word_edits("one two three", "one 2 3") == ["two three -> 2 3"]  # one run, not two
    assert word_edits("the   same text", "the same text") == []  # spacing is not an edit


def test_example_rows_keep_every_example_with_its_index():
    from caveat.robustness.metrics import example_rows

    results = [result(False, False, 1), result(True, True, 10, changed=1), result(True, False, 30)]
    rows = example_rows("greedy", results)
    assert [r["index"] for r in rows] == [0, 1, 2] and {r["attack"] for r in rows} == {"greedy"}
    assert [r["success"] for r in rows] == [False, True, False] and rows[1]["edits"] == ["a -> b"]
    assert rows[0]["edits"] == [] and rows[1]["queries"] == 10 and rows[1]["changed_fraction"] == 0.1
