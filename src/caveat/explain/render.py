"""A self-contained, escaped HTML snippet of one ``Attribution``: each word shaded by its attribution."""

from __future__ import annotations

import numpy as np
from markupsafe import Markup

from caveat.explain.base import Attribution

RAISES, LOWERS = (220, 60, 45), (40, 110, 200)  # red: raises the explained quantity; blue: lowers it


def word_colour(value: float, scale: float) -> str:
    """CSS background for one attribution: red (positive) or blue (negative), opacity |value| / scale."""
    if scale <= 0 or not np.isfinite(value):
        return "transparent"
    r, g, b = RAISES if value > 0 else LOWERS
    return f"rgba({r},{g},{b},{min(1.0, abs(value) / scale):.3f})"


def to_html(a: Attribution) -> Markup:
    """``<div class="caveat-explanation">`` with one ``<span>`` per word (the attribution in its title)
    and a caption naming the method, the explained quantity and its value. Words that were held fixed
    (a span's own words) are underlined and not shaded. Every user string is escaped."""
    feats = a.word_attributions[a.features]
    scale = float(np.abs(feats).max()) if len(feats) else 0.0
    words = []
    for w, v, f in zip(a.words, a.word_attributions, a.features):
        if not f:
            words.append(
                Markup('<span style="text-decoration:underline;font-weight:600" title="held fixed">{}</span>').format(w)
            )
        else:
            words.append(
                Markup('<span style="background:{};padding:0 2px;border-radius:3px" title="{:+.4f}">{}</span>').format(
                    word_colour(float(v), scale), float(v), w
                )
            )
    value = "n/a" if not np.isfinite(a.value) else f"{a.value:.3f}"
    caption = Markup(
        '<div style="font-size:smaller;color:#555">{} · {} = {} · {} model evaluations · {:.2f} s</div>'
    ).format(a.method, a.target.get("name", a.target.get("kind", "")), value, a.evaluations, a.seconds)
    return Markup('<div class="caveat-explanation" style="line-height:1.9">{}{}</div>').format(
        Markup(" ").join(words), caption
    )


def from_dict(d: dict) -> Attribution:
    """The ``Attribution`` of ``Attribution.to_dict()`` (for rendering stored examples)."""
    words = d["words"]
    return Attribution(
        method=d["method"],
        words=[w["word"] for w in words],
        word_attributions=np.array([w["attribution"] for w in words], dtype=float),
        features=np.array([w.get("feature", True) for w in words], dtype=bool),
        target=d["target"],
        value=float("nan") if d["value"] is None else float(d["value"]),
        evaluations=int(d["evaluations"]),
        seconds=float(d["seconds"]),
        details=d.get("details", {}),
    )
