"""Uncertainty of a generated answer, each estimator registered by name; higher = more uncertain.

Every estimator is a function of one :class:`~caveat.generate.sampling.Generation` (the greedy
answer and K samples with their token statistics, generated once and shared) and a
:class:`Context` that computes the shared extras once per generation: meaning clusters, the samples'
pairwise similarities, and the model itself for the two estimators that ask it a further question
(``p_true`` and ``verbalised``).
Each estimator states what it needs, so an evaluation computes only that.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caveat.errors import ConfigError
from caveat.generate import graph
from caveat.generate.probes import ProbeSet
from caveat.generate.rauq import rauq as rauq_score
from caveat.generate.sampling import Generation
from caveat.generate.semantic import EmbeddingEquivalence, Equivalence, Meanings, meanings, similarities
from caveat.registry import Registry


@dataclass(frozen=True)
class Estimator:
    """An uncertainty estimator: ``fn(generation, context, message) -> float``.

    ``needs`` is a subset of {"samples", "meaning", "similarity", "lm", "hidden_states", "attentions"}: K > 0
    samples, meaning clusters, the samples' pairwise similarities (a graph), further calls to the model, or the
    model's internals kept from the greedy pass (:mod:`caveat.generate.internals`). ``argument`` names what an
    estimator written ``name:ARG`` takes (e.g. ``probe:DIR``); registered with one, ``fn`` is
    ``fn(generation, context, message, arg)`` and :func:`get_estimator` binds the argument.
    """

    name: str
    fn: Callable[..., float]
    needs: frozenset[str]
    summary: str
    argument: str | None = None


ESTIMATORS: Registry[Estimator] = Registry("estimator")
# 2: ``perplexity`` is exp of the mean NLL per token, which is ``mean_nll``; in 1 ``perplexity`` was the mean NLL.
# Scores saved with version 1 (generation policies, generate-eval records) are read with ``version_1_name``.
SCORES_VERSION = 2


def version_1_name(name: str) -> str:
    """The current name of what version-1 files called ``name``: their ``perplexity`` was ``mean_nll``."""
    return "mean_nll" if name == "perplexity" else name


def estimator(name: str, summary: str, needs: Sequence[str] = (), argument: str | None = None):
    """Register ``fn`` as the estimator ``name`` (written ``name:ARG`` when it takes an ``argument``)."""

    def add(fn):
        ESTIMATORS.register(name)(Estimator(name, fn, frozenset(needs), summary, argument))
        return fn

    return add


def get_estimator(spec: str) -> Estimator:
    """The estimator ``spec`` names: a registered name, or ``name:ARG`` for one that takes an argument."""
    name, _, arg = spec.partition(":")
    found = ESTIMATORS.get(name)
    if found.argument is None:
        if arg:
            raise ConfigError(f"estimator {name!r} takes no argument; got {spec!r}. Write {name!r}")
        return found
    if not arg:
        raise ConfigError(f"estimator {name!r} needs {found.argument}: write {name}:{found.argument}")
    return dataclasses.replace(found, name=spec, fn=functools.partial(_bound, found.fn, arg), argument=None)


def _bound(fn, arg: str, g: Generation, ctx: Context, message: str = "") -> float:
    return fn(g, ctx, message, arg)


class Context:
    """What estimators share beyond the generation; computed lazily, once per generation.

    Parameters
    ----------
    lm : the :class:`~caveat.generate.lm.LanguageModel` (for ``p_true`` and ``verbalised``).
    equivalence : how meaning clusters and similarities are built (default: embedding similarity, see
        :mod:`caveat.generate.semantic`).

    Attributes
    ----------
    lm_calls : forward or generate calls made by estimators (besides sampling).
    """

    def __init__(self, *, lm=None, equivalence: Equivalence | None = None) -> None:
        self.lm, self._equivalence = lm, equivalence
        self._meanings: dict[int, Meanings] = {}
        self._similarities: dict[int, np.ndarray] = {}
        self.lm_calls = 0

    @property
    def equivalence(self) -> Equivalence:
        if self._equivalence is None:
            self._equivalence = EmbeddingEquivalence()
        return self._equivalence

    def meanings(self, g: Generation, question: str | None = None) -> Meanings:
        """Meaning clusters of ``g``'s samples (cached per generation)."""
        key = id(g)
        if key not in self._meanings:
            self._meanings[key] = meanings(
                g.greedy.text, [s.text for s in g.samples], self.equivalence, question=question
            )
        return self._meanings[key]

    def similarity(self, g: Generation, question: str | None = None) -> np.ndarray:
        """(K, K) similarity in [0, 1] of ``g``'s samples, 1 on the diagonal (cached per generation)."""
        key = id(g)
        if key not in self._similarities:
            if not callable(getattr(self.equivalence, "similarity", None)):
                raise ConfigError(
                    f"{type(self.equivalence).__name__} has no similarity(texts, question=) method, which the "
                    "graph estimators (eigv, degree, eccentricity) need; give the Context an EmbeddingEquivalence "
                    "or EntailmentEquivalence"
                )
            self._similarities[key] = similarities([s.text for s in g.samples], self.equivalence, question=question)
        return self._similarities[key]

    def need_lm(self, name: str):
        if self.lm is None:
            raise ConfigError(f"estimator {name!r} asks the model a further question; give the Context an lm")
        return self.lm


def _need_samples(g: Generation, name: str, at_least: int = 1) -> None:
    if len(g.samples) < at_least:
        raise ConfigError(f"estimator {name!r} needs sampled answers; generate with samples >= 2 (e.g. 8)")


# -- from the greedy answer's token statistics ------------------------------------------------------


@estimator(
    "msp",
    "maximum sequence probability, scored as -log P(greedy answer): the whole answer's negative "
    "log-likelihood, so higher = less probable (lm-polygraph's MaximumSequenceProbability; Fadeeva et al. 2023)",
)
def msp(g: Generation, ctx: Context, message: str = "") -> float:
    """Maximum sequence probability (lm-polygraph's name): ``-sum_t log p(y_t | y_<t, x)`` of the greedy
    answer, its stop token included. Not the text classifier's maximum softmax probability (whose score is
    ``least_confidence`` in :mod:`caveat.uncertainty.scores`)."""
    return float(-g.greedy.logprobs.sum())


def _mean_nll(g: Generation) -> float:
    return float(-g.greedy.logprobs.mean()) if len(g.greedy.logprobs) else 0.0


@estimator(
    "mean_nll",
    "mean negative log-likelihood per token of the greedy answer, log(perplexity) (lm-polygraph's Perplexity)",
)
def mean_nll(g: Generation, ctx: Context, message: str = "") -> float:
    """``-(1/T) sum_t log p(y_t | ...)`` in nats, the length-normalised sequence probability (Fomicheva et al.
    2020); lm-polygraph's ``Perplexity`` estimator computes this. 0 for an empty answer."""
    return _mean_nll(g)


@estimator("perplexity", "perplexity of the greedy answer, exp(mean_nll), >= 1 (ranks as mean_nll does)")
def perplexity(g: Generation, ctx: Context, message: str = "") -> float:
    """``exp(-(1/T) sum_t log p(y_t | ...))``: the answer's perplexity, the number of equally likely tokens
    the model was choosing between on average (1 = certain). Monotone in ``mean_nll``, so both rank the answers
    alike (same AUROC and PRR). 1 for an empty answer."""
    nll = _mean_nll(g)
    return math.exp(nll) if nll < 709 else math.inf  # exp overflows a float beyond ~709.78


@estimator("mean_token_entropy", "mean entropy of the next-token distribution along the greedy answer")
def mean_token_entropy(g: Generation, ctx: Context, message: str = "") -> float:
    """``(1/T) sum_t H(p(. | y_<t, x))`` in nats (Fomicheva et al. 2020; Malinin & Gales 2021)."""
    return float(g.greedy.entropies.mean()) if len(g.greedy.entropies) else 0.0


# -- from the samples -------------------------------------------------------------------------------

_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 (Lin 2004) of two texts over lower-cased alphanumeric tokens (no stemming).

    The tokenisation is that of the ``rouge-score`` package's default tokenizer, which lm-polygraph's
    lexical similarity uses; two empty texts score 0, as there.
    """
    x, y = _ROUGE_TOKEN.findall(a.lower()), _ROUGE_TOKEN.findall(b.lower())
    if not x or not y:
        return 0.0
    prev = [0] * (len(y) + 1)
    for tx in x:  # longest common subsequence, one row at a time
        row = [0]
        for j, ty in enumerate(y):
            row.append(prev[j] + 1 if tx == ty else max(prev[j + 1], row[j]))
        prev = row
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(x), lcs / len(y)
    return 2 * p * r / (p + r)


@estimator(
    "lexical_similarity", "1 - mean pairwise ROUGE-L between the samples (Fomicheva et al. 2020)", needs=("samples",)
)
def lexical_similarity(g: Generation, ctx: Context, message: str = "") -> float:
    """One minus the mean ROUGE-L F1 over all ordered pairs of distinct samples."""
    _need_samples(g, "lexical_similarity")
    texts = [s.text for s in g.samples]
    sims = [rouge_l(a, b) for i, a in enumerate(texts) for j, b in enumerate(texts) if i != j]
    return 1.0 - float(np.mean(sims)) if sims else 0.0


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@estimator(
    "semantic_entropy",
    "entropy over meaning clusters, weighted by sample probability (Kuhn et al. 2023)",
    needs=("samples", "meaning"),
)
def semantic_entropy(g: Generation, ctx: Context, message: str = "") -> float:
    """Entropy of the meaning distribution ``p(c) ∝ sum_{s in c} P(s | x)``.

    Kuhn, Gal & Farquhar (2023). ``P(s | x)`` is each sample's length-normalised probability
    ``exp(mean_t log p)``, as in their implementation, so long answers are not penalised for length.
    """
    _need_samples(g, "semantic_entropy")
    labels = ctx.meanings(g, message).sample_labels
    logp = np.array([s.logprobs.mean() if len(s.logprobs) else 0.0 for s in g.samples])
    w = np.exp(logp - logp.max())
    mass = np.bincount(labels, weights=w)
    return _entropy(mass / mass.sum())


@estimator(
    "discrete_semantic_entropy",
    "entropy of the share of samples in each meaning cluster (Farquhar et al. 2024)",
    needs=("samples", "meaning"),
)
def discrete_semantic_entropy(g: Generation, ctx: Context, message: str = "") -> float:
    """Entropy of the cluster frequencies, for models whose probabilities are not available or trusted."""
    _need_samples(g, "discrete_semantic_entropy")
    counts = np.bincount(ctx.meanings(g, message).sample_labels).astype(float)
    return _entropy(counts / counts.sum())


@estimator(
    "num_semantic_sets", "number of meaning clusters among the samples (Lin et al. 2023)", needs=("samples", "meaning")
)
def num_semantic_sets(g: Generation, ctx: Context, message: str = "") -> float:
    """Lin, Trivedi & Sun (2023), "Generating with Confidence": more distinct meanings, less certain."""
    _need_samples(g, "num_semantic_sets")
    return float(ctx.meanings(g, message).n_clusters)


@estimator(
    "self_consistency",
    "1 - share of samples that mean the same as the greedy answer (Wang et al. 2023)",
    needs=("samples", "meaning"),
)
def self_consistency(g: Generation, ctx: Context, message: str = "") -> float:
    """One minus the agreement of the samples with the greedy answer (Wang et al. 2023; Xiong et al. 2024)."""
    _need_samples(g, "self_consistency")
    m = ctx.meanings(g, message)
    return 1.0 - float(np.mean(m.sample_labels == m.greedy_label)) if m.greedy_label >= 0 else 1.0


# -- from the graph of the samples' similarities (Lin, Trivedi & Sun 2024) ---------------------------


def _graph(g: Generation, ctx: Context, message: str, name: str) -> np.ndarray:
    _need_samples(g, name, at_least=2)  # one answer makes a graph with nothing to compare
    return ctx.similarity(g, message)


@estimator(
    "eigv",
    "sum of max(0, 1 - eigenvalue) of the samples' similarity-graph Laplacian: a soft count of meanings "
    "(Lin et al. 2024)",
    needs=("samples", "similarity"),
)
def eigv(g: Generation, ctx: Context, message: str = "") -> float:
    """U_EigV of Lin, Trivedi & Sun (2024) on the samples' similarities (:func:`caveat.generate.graph.eigv`)."""
    return graph.eigv(_graph(g, ctx, message, "eigv"))


@estimator(
    "degree",
    "1 - mean pairwise similarity of the samples, 1 - trace(D)/K^2 (Lin et al. 2024)",
    needs=("samples", "similarity"),
)
def degree(g: Generation, ctx: Context, message: str = "") -> float:
    """U_Deg of Lin, Trivedi & Sun (2024) on the samples' similarities (:func:`caveat.generate.graph.degree`)."""
    return graph.degree(_graph(g, ctx, message, "degree"))


@estimator(
    "eccentricity",
    "spread of the samples' spectral embeddings around their centre (Lin et al. 2024)",
    needs=("samples", "similarity"),
)
def eccentricity(g: Generation, ctx: Context, message: str = "") -> float:
    """U_Ecc of Lin, Trivedi & Sun (2024): eigenvectors with eigenvalue below 0.9
    (:func:`caveat.generate.graph.eccentricity`)."""
    return graph.eccentricity(_graph(g, ctx, message, "eccentricity"))


# -- from the model's internals in the greedy pass (no samples) --------------------------------------


@estimator(
    "rauq",
    "recurrent attention to the previous token times token probability, max over middle layers "
    "(Vazhentsev et al. 2025)",
    needs=("attentions",),
)
def rauq(g: Generation, ctx: Context, message: str = "") -> float:
    """RAUQ (Vazhentsev et al. 2025): alpha 0.2, max over the middle third of layers (:mod:`caveat.generate.rauq`)."""
    if "prev_attention" not in g.extra:
        raise ConfigError("estimator 'rauq' needs the greedy pass's attentions; sample with internals={'attentions'}")
    return rauq_score(g.greedy.logprobs, g.extra["prev_attention"])


@functools.lru_cache(maxsize=8)
def _probes(folder: str) -> ProbeSet:
    return ProbeSet.load(folder)


def _probe_set(folder: str) -> ProbeSet:
    """The probes saved in ``folder``, loaded once per resolved path."""
    return _probes(str(Path(folder).expanduser().resolve()))


def _probe_score(kind: str, g: Generation, folder: str) -> float:
    return _probe_set(folder).score(kind, g.extra)


@estimator(
    "probe",
    "P(wrong) from a logistic probe on one layer's hidden state (Azaria & Mitchell 2023); fit with generate-fit",
    needs=("hidden_states",),
    argument="DIR",
)
def probe(g: Generation, ctx: Context, message: str, folder: str) -> float:
    """The correctness probe saved in ``folder`` (:class:`~caveat.generate.probes.ProbeSet`)."""
    return _probe_score("correctness", g, folder)


@estimator(
    "stacked",
    "P(wrong) from a logistic combination of the correctness probe with msp, mean NLL and mean token entropy "
    "(stacked generalisation, Wolpert 1992); fit with generate-fit",
    needs=("hidden_states",),
    argument="DIR",
)
def stacked(g: Generation, ctx: Context, message: str, folder: str) -> float:
    """The stacked probe saved in ``folder``: its inputs are computed from this generation's greedy answer."""
    probes = _probe_set(folder)
    names = probes.specs.get("stacked", {}).get("inputs", ())
    inputs = {n: ESTIMATORS.get(n).fn(g, ctx, message) for n in names}
    return probes.score("stacked", g.extra, inputs)


@estimator(
    "sep",
    "P(high semantic entropy) from a logistic probe on hidden states (Kossen et al. 2024); fit with generate-fit",
    needs=("hidden_states",),
    argument="DIR",
)
def sep(g: Generation, ctx: Context, message: str, folder: str) -> float:
    """The semantic-entropy probe saved in ``folder``: trained on K samples once, one greedy pass to use."""
    return _probe_score("semantic_entropy", g, folder)


@estimator(
    "mahalanobis",
    "squared Mahalanobis distance of the hidden state to the fitting generations' (Vazhentsev et al. 2022)",
    needs=("hidden_states",),
    argument="DIR",
)
def mahalanobis(g: Generation, ctx: Context, message: str, folder: str) -> float:
    """The density saved in ``folder`` by generate-fit (same layer and position as its correctness probe)."""
    return _probe_score("mahalanobis", g, folder)


@estimator(
    "rde",
    "robust density: MCD Mahalanobis distance on kernel principal components of the hidden state (Yoo et al. 2022)",
    needs=("hidden_states",),
    argument="DIR",
)
def rde(g: Generation, ctx: Context, message: str, folder: str) -> float:
    """The robust density saved in ``folder`` by generate-fit (same layer and position as its correctness probe;
    :class:`~caveat.uncertainty.methods.rde.RobustDensity`)."""
    return _probe_score("rde", g, folder)


# -- asking the model again -------------------------------------------------------------------------

P_TRUE_QUESTION = "Is your answer true or false? Reply with one word: True or False."


def _follow_up(lm, message: str, answer: str, question: str):
    """(1, L) token ids of the conversation continued after ``answer`` with a further ``question``."""
    import torch

    turns = [
        {"role": "user", "content": message},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": question},
    ]
    if lm.chat:
        prompt = lm.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    else:
        prompt = f"{message}\n{answer}\n{question}\n"
    return torch.tensor([lm.encode(prompt)])


def _first_token(lm, word: str) -> int:
    return lm.tokenizer(word, add_special_tokens=False)["input_ids"][0]


@estimator("p_true", "-log P(True) when the model judges its own answer (Kadavath et al. 2022)", needs=("lm",))
def p_true(g: Generation, ctx: Context, message: str = "") -> float:
    """Kadavath et al. (2022), "Language Models (Mostly) Know What They Know".

    The conversation continues after the greedy answer with a question whether it is true; the
    probability of "True" against "False" as the first word of the reply (one forward pass, the two
    words' first tokens renormalised) gives ``-log P(True)``.
    """
    import torch

    lm = ctx.need_lm("p_true")
    yes, no = _first_token(lm, "True"), _first_token(lm, "False")
    if yes == no:
        raise ConfigError(
            f"the tokenizer of {lm.name} cannot tell 'True' from 'False' by their first token; "
            "p_true does not work with this model: choose other estimators"
        )
    ids = _follow_up(lm, message, g.greedy.text, P_TRUE_QUESTION)
    with torch.no_grad():
        logits = lm.model(ids).logits[0, -1].float()  # (V,)
    ctx.lm_calls += 1
    pair = torch.log_softmax(logits[[yes, no]], dim=0)
    return float(-pair[0])


VERBAL_QUESTION = "How confident are you that your answer is correct? Reply with a number from 0 to 100 only."
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@estimator("verbalised", "1 - the confidence the model states for its answer, 0-100 (Tian et al. 2023)", needs=("lm",))
def verbalised(g: Generation, ctx: Context, message: str = "") -> float:
    """Tian et al. (2023), "Just Ask for Calibration": the stated confidence, read from a greedy reply.

    A reply without a number in [0, 100] counts as no confidence (uncertainty 1).
    """
    import torch

    lm = ctx.need_lm("verbalised")
    ids = _follow_up(lm, message, g.greedy.text, VERBAL_QUESTION)
    with torch.no_grad():
        out = lm.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=8,
            pad_token_id=lm.tokenizer.pad_token_id,
        )
    ctx.lm_calls += 1
    reply = lm.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    number = _NUMBER.search(reply)
    value = float(number.group()) if number else math.nan
    return 1.0 - value / 100 if 0 <= value <= 100 else 1.0


def parse_estimators(spec: str | Sequence[str] | None, *, samples: int) -> list[str]:
    """Estimator names from ``"a,b"`` or a list; ``None``/``"all"`` = every estimator the settings allow
    (those that take an argument, such as ``probe:DIR``, only when named)."""
    if spec is None or spec == "all" or spec == ["all"]:
        return [
            n
            for n, e in ((n, ESTIMATORS.get(n)) for n in ESTIMATORS.names())
            if e.argument is None and (samples >= 2 or "samples" not in e.needs)
        ]
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise ConfigError("no estimator named in {estimators}; e.g. msp,semantic_entropy", fields=("estimators",))
    for n in names:
        if "samples" in get_estimator(n).needs and samples < 2:
            raise ConfigError(f"estimator {n!r} needs sampled answers; set samples >= 2 (got {samples})")
    return names
