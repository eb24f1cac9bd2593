"""``caveat generate``, ``generate-eval`` and ``generate-fit``: uncertainty of generated answers (``generate-calibrate``
and ``generate-tune`` have modules of their own, with the options defined here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caveat.cli.common import emit
from caveat.errors import ConfigError

Lm = Annotated[
    str,
    typer.Option("--lm", help="Causal LM: 'default' (packaged SmolLM2-135M-Instruct), a local folder or a hub name."),
]
GgufFile = Annotated[str | None, typer.Option(help="A GGUF file inside the --lm folder (de-quantised on load).")]
Samples = Annotated[int, typer.Option(help="K sampled answers besides the greedy one, all in one generate call.")]
MaxNew = Annotated[int, typer.Option(help="Longest answer, in tokens.")]
Temperature = Annotated[float, typer.Option(help="Sampling temperature (log-probs are always recorded at 1).")]
TopK = Annotated[int, typer.Option(help="Top-k sampling (0: off).")]
TopP = Annotated[float, typer.Option(help="Nucleus sampling (1: off).")]
Seed = Annotated[int, typer.Option(help="Sampling seed (mixed with a checksum of each prompt).")]
Cache = Annotated[Path | None, typer.Option(help="Folder to keep generations in (JSON), so reruns never re-generate.")]
Template = Annotated[
    str | None,
    typer.Option(help="Prompt template with {question} (and {context}); default: caveat's brief-answer prompts."),
]
Estimators = Annotated[str, typer.Option(help="Comma-separated estimators, or 'all'.")]
Rule = Annotated[str, typer.Option(help="Correctness rule: contains, exact, f1 or f1@<threshold>.")]
Threshold = Annotated[
    float, typer.Option(help="Cosine similarity of sentence embeddings at which two answers mean the same.")
]
Nli = Annotated[
    str | None,
    typer.Option(help="An NLI model folder: meaning clusters by bidirectional entailment instead of embeddings."),
]
Data = Annotated[
    Path, typer.Option(help="Questions: SQuAD-style JSON (passage in the prompt) or NQ-open JSONL (closed book).")
]
MaxExamples = Annotated[int | None, typer.Option(help="Use a seeded random sample of this many questions.")]
DataSeed = Annotated[int, typer.Option(help="Seed of the question sample.")]
HINT = "rank it with --reference EVAL.json (generate-eval --out) or decide with --policy FILE (generate-calibrate)"


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
    app.command("generate-eval")(generate_eval_command)
    app.command("generate-fit")(generate_fit_command)


def _sampling(samples, max_new_tokens, temperature, top_k, top_p, seed):

    from caveat.generate.sampling import SamplingConfig

    return SamplingConfig(
        samples=samples, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed
    )


def _context(lm, meaning_threshold: float, nli_model: str | None):

    from caveat.generate.estimators import Context
    from caveat.generate.semantic import make_equivalence

    return Context(lm=lm, equivalence=make_equivalence(threshold=meaning_threshold, nli_model=nli_model))


def _cache(folder: Path | None):

    from caveat.generate.sampling import SampleCache

    return SampleCache(folder) if folder is not None else None


def generate_command(
    question: Annotated[str, typer.Argument(help="The question.")],
    context: Annotated[str | None, typer.Option(help="A passage to answer from (reading comprehension).")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            help=(
                "A policy from generate-calibrate: answer or abstain with a risk bound. Its model, sampling and "
                "template are used."
            )
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Scores of reference questions: the JSON caveat generate-eval writes with --out (same model and "
            "sampling). The verdict line then gives each estimator's percentile among them."
        ),
    ] = None,
    lm: Lm = "default",
    gguf_file: GgufFile = None,
    samples: Samples = 8,
    max_new_tokens: MaxNew = 32,
    temperature: Temperature = 0.5,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    seed: Seed = 0,
    template: Template = None,
    estimators: Estimators = "all",
    meaning_threshold: Threshold = 0.9,
    nli_model: Nli = None,
) -> None:
    """Answer one question, with its uncertainty under every estimator and, given a policy, the decision.
    A verdict line on stderr (also in the JSON as ``verdict``) says what the scores mean."""
    from caveat.generate.answer import answer_question, ask, estimator_names
    from caveat.generate.lm import load_lm
    from caveat.generate.policy import GenerationPolicy
    from caveat.generate.verdict import ReferenceScores, verdict

    fitted = GenerationPolicy.load(policy) if policy is not None else None
    cfg = fitted.sampling if fitted else _sampling(samples, max_new_tokens, temperature, top_k, top_p, seed)
    names = estimator_names(estimators, samples=cfg.samples, policy=fitted)
    requested = fitted.lm if fitted else (lm if gguf_file is None else f"{lm}:{gguf_file}")
    ref = ReferenceScores.load(reference).check_comparable(requested, cfg) if reference is not None else None
    model = load_lm(fitted.lm if fitted else lm, gguf_file=None if fitted else gguf_file)
    message = ask(question, context, template=fitted.template if fitted else template)
    meaning = fitted.meaning if fitted else {"threshold": meaning_threshold, "nli_model": nli_model}
    ctx = _context(model, meaning["threshold"], meaning["nli_model"])
    result = answer_question(model, cfg, message, names, ctx, fitted)
    line = verdict(result, reference=ref, hint=HINT)
    typer.echo(line, err=True)  # for a person; stdout stays one JSON object
    extra = {"percentiles": ref.percentiles(result["uncertainty"])} if ref is not None else {}
    emit({"question": question, **result, **extra, "verdict": line})


def generate_eval_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Questions: SQuAD-style JSON (passage in the prompt) or NQ-open JSONL (closed book); with "
            "--task summarise, documents: XSum-style JSONL."
        ),
    ],
    task: Annotated[
        str, typer.Option(help="qa: answer questions, judged by --rule; summarise: one-sentence summaries.")
    ] = "qa",
    max_examples: MaxExamples = None,
    data_seed: DataSeed = 0,
    lm: Lm = "default",
    gguf_file: GgufFile = None,
    samples: Samples = 8,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Longest answer, in tokens (default: 32 for qa, 64 for summarise).")
    ] = None,
    temperature: Temperature = 0.5,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    seed: Seed = 0,
    template: Annotated[
        str | None,
        typer.Option(
            help="Prompt template with {question} (and {context}), or {document} for summarise; default: "
            "caveat's prompts."
        ),
    ] = None,
    estimators: Estimators = "all",
    rule: Annotated[
        str | None, typer.Option(help="qa: correctness rule, contains (default), exact, f1 or f1@<threshold>.")
    ] = None,
    quality: Annotated[
        str | None,
        typer.Option(
            help="summarise: quality measures against the reference, first = the one PRR uses: rougeL "
            "(default) and/or embedding (all-MiniLM cosine), e.g. rougeL,embedding."
        ),
    ] = None,
    document_field: Annotated[
        str | None, typer.Option(help="summarise: the JSONL field with the document (default: document).")
    ] = None,
    summary_field: Annotated[
        str | None, typer.Option(help="summarise: the field with the reference summary (default: summary).")
    ] = None,
    id_field: Annotated[str | None, typer.Option(help="summarise: the field with the id (default: id).")] = None,
    meaning_threshold: Threshold = 0.9,
    nli_model: Nli = None,
    cache: Cache = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.")] = 1000,
    out: Annotated[
        Path | None, typer.Option(help="Write the full result (with per-question records) to this JSON file.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML report (and its .json) here.")
    ] = None,
) -> None:
    """How well each estimator detects wrong answers: AUROC, PRR (95% bootstrap), AURC, accuracy at coverage, cost.
    With --task summarise: PRR against the summaries' ROUGE-L (95% bootstrap), quality at coverage, cost."""
    from caveat.generate.estimators import parse_estimators
    from caveat.generate.lm import load_lm
    from caveat.generate.tasks import TASKS
    from caveat.io import write_json_atomic
    from caveat.report.generation import generation_report
    from caveat.report.html import write_report

    if html is not None and out is not None and html.with_suffix(".json").resolve() == out.resolve():
        raise ConfigError(
            f"--html {html} also writes {html.with_suffix('.json')}, which is --out; give them different names"
        )
    spec = TASKS.get(task)
    given = {
        "rule": rule,
        "quality": quality,
        "document_field": document_field,
        "summary_field": summary_field,
        "id_field": id_field,
    }
    given = {k: v for k, v in given.items() if v is not None}
    stray = [k for k in given if k not in spec.options]
    if stray:
        flags = ", ".join("--" + k.replace("_", "-") for k in stray)
        owner = next(t for t in TASKS.names() if stray[0] in TASKS.get(t).options)
        raise ConfigError(f"{flags} does not apply to --task {task}; it belongs to --task {owner}")
    tokens = spec.max_new_tokens if max_new_tokens is None else max_new_tokens
    cfg = _sampling(samples, tokens, temperature, top_k, top_p, seed)
    names = parse_estimators(estimators, samples=cfg.samples)
    reading = {k: v for k, v in given.items() if k in spec.read_options}
    items = spec.read(data, limit=max_examples, seed=data_seed if max_examples else None, **reading)
    model = load_lm(lm, gguf_file=gguf_file)
    result = spec.evaluate(
        items,
        model,
        sampling=cfg,
        estimators=names,
        cache=_cache(cache),
        context=_context(model, meaning_threshold, nli_model),
        template=template,
        n_boot=n_boot,
        **{k: v for k, v in given.items() if k in spec.evaluate_options},
    )
    result["data"] = str(data)
    if out is not None:
        write_json_atomic(out, result)
    if html is not None:
        write_report(generation_report(result, data=str(data)), html)
    curves = ("risk_coverage", "quality_coverage")
    emit(
        {k: v for k, v in result.items() if k != "records"}
        | {"estimators": {n: {k: v for k, v in m.items() if k not in curves} for n, m in result["estimators"].items()}}
    )


def generate_fit_command(
    data: Data,
    out: Annotated[Path, typer.Option(help="Folder to write the probes to (probes.json + safetensors).")],
    max_examples: MaxExamples = None,
    data_seed: DataSeed = 0,
    lm: Lm = "default",
    gguf_file: GgufFile = None,
    samples: Annotated[
        int,
        typer.Option(help="K samples per question to fit the semantic-entropy probe on (0: skip that probe)."),
    ] = 8,
    max_new_tokens: MaxNew = 32,
    temperature: Temperature = 0.5,
    top_k: TopK = 0,
    top_p: TopP = 1.0,
    seed: Seed = 0,
    template: Template = None,
    rule: Rule = "contains",
    meaning_threshold: Threshold = 0.9,
    nli_model: Nli = None,
    cache: Cache = None,
    folds: Annotated[int, typer.Option(help="Folds to choose each probe's layer and position on.")] = 5,
) -> None:
    """Fit single-pass scorers on hidden states: a correctness probe, the probe stacked with the answer's token
    statistics, a semantic-entropy probe, a Mahalanobis density and a robust one (RDE); use them as
    --estimators probe:DIR,stacked:DIR,sep:DIR,mahalanobis:DIR,rde:DIR."""
    from caveat.generate.data import read_questions
    from caveat.generate.fit import fit_probes
    from caveat.generate.lm import load_lm

    cfg = _sampling(samples, max_new_tokens, temperature, top_k, top_p, seed)
    questions = read_questions(data, limit=max_examples, seed=data_seed if max_examples else None)
    model = load_lm(lm, gguf_file=gguf_file)
    probes, summary = fit_probes(
        questions,
        model,
        sampling=cfg,
        rule=rule,
        context=_context(model, meaning_threshold, nli_model),
        template=template,
        cache=_cache(cache),
        folds=folds,
        seed=data_seed,
    )
    probes.save(out)
    emit({"probes": str(out), "data": str(data), "model": model.name, **summary})
