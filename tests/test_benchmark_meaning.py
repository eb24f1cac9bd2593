"""benchmarks/meaning.py: after-attack accuracy with only the meaning-kept successes counted, on planted rows."""

from __future__ import annotations

import pytest

from benchmarks.meaning import meaning_figures


def rows(attacked: list[bool], success: list[bool]) -> list[dict]:
    return [{"index": i, "attacked": a, "success": s} for i, (a, s) in enumerate(zip(attacked, success))]


def test_only_meaning_kept_successes_count_as_errors():
    planted = rows([True, True, True, True, False], [True, True, False, True, False])  # 4 right, 3 flipped
    figures = meaning_figures(planted, changed=[0, 3], kept=[1])
    assert figures["after_attack_accuracy"] == pytest.approx(1 / 5)
    assert figures["after_attack_accuracy_meaning_kept"] == pytest.approx(3 / 5)  # sentences 0 and 3 were changed
    assert figures["changed_share"] == pytest.approx(2 / 3) and (figures["changed"], figures["kept"]) == (2, 1)


def test_judgments_of_other_successes_are_refused():
    planted = rows([True, True, True], [True, False, True])
    with pytest.raises(ValueError, match=r"unjudged successes \[2\], judged but not successes \[1\]"):
        meaning_figures(planted, changed=[0], kept=[1])
    with pytest.raises(ValueError, match=r"judged both changed and kept: \[0\]"):
        meaning_figures(planted, changed=[0, 2], kept=[0])
