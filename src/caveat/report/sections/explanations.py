"""Explanations: how faithful, stable and costly each explanation method is on the run, as ``caveat
evaluate --explain-faithfulness`` saved it in metrics.json (read, not recomputed: explaining is slow),
and a few explained inputs drawn with their words shaded."""

from __future__ import annotations

from caveat.explain.render import from_dict, to_html
from caveat.report.context import Context
from caveat.report.schema import Explanation, MeanGroup, MeansFigure, Section, Table
from caveat.report.sections.base import metric, num, saved_metrics

EXAMPLES_PER_METHOD = 3
# (key in the block, column on the page, its standard error's column, True when higher is more faithful)
FIGURES = (
    ("comprehensiveness", "comprehensiveness", "comp. se", True),
    ("sufficiency", "sufficiency", "suff. se", False),
    ("deletion_aopc", "deletion AOPC", "AOPC se", True),
)
READING = (
    "How to read: higher comprehensiveness (the prediction drops when the top-ranked words are deleted), lower "
    "sufficiency (the top-ranked words alone keep it) and higher deletion AOPC mean more faithful. A method is "
    "only useful where it beats `random` (random rankings of the same words)."
)


def _mean_se(figures: dict, key: str) -> tuple:
    value = figures.get(key) or {}
    return num(value.get("mean")), num(value.get("se"))


def _better(m: dict, random: dict) -> str | None:
    """On how many of the three figures ``m``'s mean is more faithful than random's, e.g. '2 of 3'."""
    pairs = [(_mean_se(m, key)[0], _mean_se(random, key)[0], higher) for key, _, _, higher in FIGURES]
    pairs = [(a, b, higher) for a, b, higher in pairs if a is not None and b is not None]
    if not pairs:
        return None
    return f"{sum((a > b) if higher else (a < b) for a, b, higher in pairs)} of {len(pairs)}"


def _options(options: dict) -> str:
    """``{"ig": {"steps": 32}, "occlusion": {}}`` as 'ig steps=32; occlusion defaults'."""
    return "; ".join(f"{m} " + (", ".join(f"{k}={v}" for k, v in o.items()) or "defaults") for m, o in options.items())


def _examples(block: dict) -> tuple[list[Explanation], int]:
    """The saved examples (up to ``EXAMPLES_PER_METHOD`` per method) and how many could not be read."""

    shown, unreadable = [], 0
    for method, examples in (block.get("examples") or {}).items():
        for d in (examples or [])[:EXAMPLES_PER_METHOD]:
            try:
                a = from_dict(d)
                to_html(a)  # what the page will draw: a bad example is left out here, not failing the page later
            except (AttributeError, KeyError, TypeError, ValueError):
                unreadable += 1
                continue
            shown.append(
                Explanation(
                    method=method,
                    text=d.get("text") or " ".join(a.words),
                    attribution={k: v for k, v in d.items() if k != "text"},
                )
            )
    return shown, unreadable


def _share(b: str) -> str:
    """A bin key of the block ('0.05') as the page shows it ('5%')."""
    try:
        return f"{float(b) * 100:g}%"
    except ValueError:
        return str(b)


def _figure(methods: dict, target: str) -> MeansFigure:
    names = list(methods)
    groups = [
        MeanGroup(
            name=label,
            means=[_mean_se(methods[m], key)[0] for m in names],
            errors=[_mean_se(methods[m], key)[1] for m in names],
        )
        for key, label, _, _ in FIGURES[:2]
    ]
    return MeansFigure(
        key="faithfulness",
        title="Faithfulness per method",
        xlabel="method",
        ylabel="drop of the explained probability",
        categories=names,
        groups=groups,
        baseline="random" if "random" in methods else None,
        note=f"Drop of the {target} when the top-ranked words are deleted (comprehensiveness: higher is "
        "better) or are all that is kept (sufficiency: lower is better), averaged over the shares "
        "of words; whiskers: ± one standard error. Hatched: random rankings.",
    )


def explanations(ctx: Context) -> Section | None:
    """Shown when metrics.json holds ``<data>.explanations``: faithfulness per method against random,
    agreement between methods, stability across seeds, the uncertainty check, and example inputs."""
    saved = saved_metrics(ctx.run).get(ctx.data) or {}
    block = saved.get("explanations") or {}
    methods = block.get("methods") or {}
    if not methods:
        return None
    run, target = ctx.run.path, block.get("target", "explained quantity")
    random = methods.get("random") or {}
    notes = [
        f"From `{run}/metrics.json`, as `caveat evaluate {run} --data {ctx.data} --explain-faithfulness` wrote it; run "
        f"that again to update these figures. Every method explains the {target} of the same {block.get('n')} inputs "
        f"of {block.get('data', ctx.data)} (seed {block.get('seed')}); options: "
        f"{_options(block.get('options') or {})}.",
        READING,
    ]
    now = ctx.metrics.get("accuracy")
    if saved.get("accuracy") is not None and now is not None and abs(saved["accuracy"] - now) > 1e-9:
        notes.insert(
            1,
            f"The accuracy saved with these figures ({saved['accuracy']:.4f}) differs from this report's "
            f"({now:.4f}): the run changed since; evaluate it again.",
        )
    section = Section(
        key="explanations",
        title="Explanations",
        notes=notes,
        metrics=[
            metric("explanations.n", "inputs explained", block.get("n")),
            metric("explanations.target", "explained quantity", target),
            metric(
                "explanations.random_draws",
                "random rankings per input",
                block.get("random_draws"),
                "averaged into the random baseline",
            ),
        ],
    )

    rows = []
    for name, m in methods.items():
        seconds = m.get("seconds") or {}
        rows.append(
            [
                name,
                *(c for key, _, _, _ in FIGURES for c in _mean_se(m, key)),
                None if name == "random" else _better(m, random),
                _mean_se(m, "evaluations")[0],
                num(seconds.get("median")),
            ]
        )
    section.tables.append(
        Table(
            key="faithfulness",
            title="Faithfulness and cost per method",
            rows=rows,
            columns=[
                "method",
                *(c for _, label, se, _ in FIGURES for c in (label, se)),
                "beats random",
                "model evaluations",
                "median seconds",
            ],
            note=f"Means over the {block.get('n')} inputs; se: their standard error. Beats random: on how many of the "
            "three figures the method's mean is more faithful than random's (a gap under about two se may be noise). "
            "Model evaluations and seconds: per explanation, all methods timed in the same process.",
        )
    )
    bins = list(
        dict.fromkeys(
            b
            for m in methods.values()
            for key in ("comprehensiveness_at", "sufficiency_at")
            for b in (m.get(key) or {})
        )
    )
    if bins:
        by_bin = [
            [name, label, *(num(((m.get(f"{key}_at") or {}).get(b) or {}).get("mean")) for b in bins)]
            for name, m in methods.items()
            for key, label, _, _ in FIGURES[:2]
        ]
        section.tables.append(
            Table(
                key="by_share",
                title="By share of words deleted or kept",
                rows=by_bin,
                columns=["method", "figure", *(_share(b) for b in bins)],
                note=(
                    "Mean at each share of the words (top k = max(1, ceil(share × words))); the table above averages "
                    "them."
                ),
            )
        )
    if any(key in m for m in methods.values() for key, _, _, _ in FIGURES[:2]):
        section.figures.append(_figure(methods, target))

    uncertainty = block.get("uncertainty") or {}
    k = uncertainty.get("k", 3)
    agreement = block.get("agreement") or {}
    if agreement:
        section.tables.append(
            Table(
                key="agreement",
                title="Agreement between methods",
                columns=["methods", "Spearman", "Kendall", "top-k overlap"],
                rows=[
                    [
                        pair.replace("~", " vs "),
                        num(a.get("spearman")),
                        num(a.get("kendall")),
                        num(a.get("top_k_overlap")),
                    ]
                    for pair, a in agreement.items()
                ],
                note="Rank correlation of two methods' attributions of the same words, averaged over the inputs (1: "
                f"same ranking, 0: unrelated); top-k overlap: share of the top {k} words both rank in their top {k}.",
            )
        )
    stability = block.get("stability") or {}
    if stability:
        section.tables.append(
            Table(
                key="stability",
                title="Stability across seeds",
                columns=["method", "seeds", "inputs", "Spearman", "Kendall", "top-k overlap"],
                rows=[
                    [
                        m,
                        " and ".join(str(s) for s in st.get("seeds", [])),
                        num(st.get("n")),
                        num(st.get("spearman")),
                        num(st.get("kendall")),
                        num(st.get("top_k_overlap")),
                    ]
                    for m, st in stability.items()
                ],
                note="The same input explained twice with different seeds (sampling methods only); top-k overlap: "
                f"share of the top {k} words that stay in the top {k}. Low values: one run of the method is not to be "
                "trusted.",
            )
        )
    if uncertainty.get("methods"):
        n, score = uncertainty.get("n"), uncertainty.get("score", "entropy")
        selected = uncertainty.get("selected_by", "")
        section.tables.append(
            Table(
                key="uncertainty",
                title=f"Uncertainty check: deleting the top {k} words",
                columns=["method", "inputs", "lower than random", f"top-{k} drop", "random drop"],
                rows=[
                    [m, num(n), num(u.get("lower_than_random")), num(u.get("top_drop")), num(u.get("random_drop"))]
                    for m, u in uncertainty["methods"].items()
                ],
                note=(
                    f"{n} of the {block.get('n')} explained inputs ({uncertainty.get('selected', n)} selected, the "
                    f"first {n} checked), selected as follows: {selected}. Each method explains their {score}. Lower "
                    f"than random: the share of them where deleting the method's top {k} words lowers {score} more "
                    f"than deleting {k} random words; drops: mean decrease of {score}."
                )
                if n
                else f"No explained input was selected ({selected}), so there is nothing to check.",
            )
        )

    section.explanations, unreadable = _examples(block)
    if section.explanations:
        section.notes.append(
            f"Examples: up to {EXAMPLES_PER_METHOD} explained inputs per method. Red words raise the "
            f"{target}, blue words lower it; the stronger the shade, the larger the attribution (hover "
            "a word for its value)."
        )
    if unreadable:
        section.notes.append(f"{unreadable} saved example(s) could not be read and are left out.")
    return section
