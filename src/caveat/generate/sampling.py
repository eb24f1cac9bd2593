"""One greedy answer and K sampled answers per prompt, from one batched ``generate`` call.

Row 0 of the batch is forced to the arg-max token at every step (a logits processor masks every other
token), rows 1..K sample, so a single ``generate`` call yields both. The prompt is run through the
model once and its key/value cache copied to the K+1 rows, so the prompt's cost is paid once, not
K+1 times. Every answer keeps, per generated token, its log-probability and the entropy of the full
next-token distribution, both under the model's own distribution (temperature 1, before any
sampling warpers): the statistics the estimators in :mod:`caveat.generate.estimators` read.

A :class:`SampleCache` stores generations as JSON files keyed by model, prompt and settings, so that
estimators share samples within a run and a second evaluation never re-generates.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from caveat.errors import ConfigError, DataError
from caveat.generate.internals import INTERNALS, eager_attention, greedy_internals, has_internals
from caveat.io import write_json_atomic


@dataclass(frozen=True)
class SamplingConfig:
    """How answers are generated.

    Parameters
    ----------
    samples : K sampled answers besides the greedy one (0: greedy only).
    max_new_tokens : longest answer, in tokens.
    temperature, top_k, top_p : the sampling distribution (top_k 0 and top_p 1 switch those off).
        The default temperature 0.5 is the one Kuhn et al. (2023) found best for semantic entropy; at 1
        a 135M model's samples are mostly unrelated sentences. The recorded log-probabilities are
        always the model's own (temperature 1).
    seed : the sampling seed; each prompt draws from ``seed`` mixed with a checksum of the prompt, so
        an answer does not depend on which other prompts were generated before it.
    """

    samples: int = 8
    max_new_tokens: int = 32
    temperature: float = 0.5
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ConfigError(f"samples must be >= 0; got {self.samples}. E.g. 8 sampled answers")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1; got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ConfigError(
                f"temperature must be > 0; got {self.temperature}. Use 1.0 for the model's own distribution"
            )
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 switches it off); got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must lie in (0, 1] (1 switches it off); got {self.top_p}")


@dataclass
class Answer:
    """One generated answer.

    Attributes
    ----------
    text : decoded answer without special tokens, stripped.
    tokens : generated token ids, up to and including the stop token when there is one.
    logprobs : (T,) log-probability of each token in ``tokens``.
    entropies : (T,) entropy (nats) of the next-token distribution at each step.
    finished : whether the answer ended with a stop token (False: cut at ``max_new_tokens``).
    """

    text: str
    tokens: list[int]
    logprobs: np.ndarray
    entropies: np.ndarray
    finished: bool

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "logprobs": self.logprobs.tolist(),
            "entropies": self.entropies.tolist(),
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Answer:
        return cls(
            str(d["text"]),
            [int(t) for t in d["tokens"]],
            np.asarray(d["logprobs"], dtype=np.float64),
            np.asarray(d["entropies"], dtype=np.float64),
            bool(d["finished"]),
        )


@dataclass
class Generation:
    """The greedy answer and K samples for one prompt, with what they cost.

    ``seconds`` is the wall time of the one ``generate`` call (0 when read from the cache;
    ``cached`` says so).
    """

    prompt: str
    greedy: Answer
    samples: list[Answer]
    seconds: float
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "greedy": self.greedy.to_dict(),
            "samples": [s.to_dict() for s in self.samples],
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Generation:
        return cls(
            str(d["prompt"]),
            Answer.from_dict(d["greedy"]),
            [Answer.from_dict(s) for s in d["samples"]],
            float(d["seconds"]),
        )


class SampleCache:
    """Generations on disk, one JSON file per (model, prompt, settings); writes are atomic.

    Files are JSON, never pickles, so a cache folder from elsewhere cannot run code.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(model: str, prompt: str, config: SamplingConfig) -> str:
        blob = json.dumps({"model": model, "prompt": prompt, "config": asdict(config)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Generation | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            generation = Generation.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"sample cache file {path} is unreadable ({e}); delete it to regenerate") from None
        generation.cached = True
        return generation

    def put(self, key: str, generation: Generation) -> None:
        write_json_atomic(self._path(key), generation.to_dict())


def _greedy_rows_processor(rows: int):
    """A logits processor forcing the first ``rows`` rows onto their arg-max token."""
    import torch
    from transformers import LogitsProcessor

    class GreedyRows(LogitsProcessor):
        def __call__(self, input_ids, scores):
            scores = scores.clone()  # the raw logits kept for the statistics must stay untouched
            head = scores[:rows]  # (rows, V)
            forced = torch.full_like(head, float("-inf"))
            forced.scatter_(-1, head.argmax(-1, keepdim=True), 0.0)
            scores[:rows] = forced
            return scores

    return GreedyRows()


class Sampler:
    """Generate the greedy answer and K samples of prompts, once each.

    Parameters
    ----------
    lm : a :class:`~caveat.generate.lm.LanguageModel`.
    config : a :class:`SamplingConfig`.
    cache : a :class:`SampleCache`, or None to keep generations only in memory for this sampler.
    internals : model internals to keep for the greedy answer, a subset of ``{"hidden_states", "attentions"}``
        (see :mod:`caveat.generate.internals`); returned by the same ``generate`` call, in ``Generation.extra``.
        The cache holds no internals: a cached generation is generated again (same seed, same answers) when
        they are asked for.

    Attributes
    ----------
    generate_calls : how many times ``model.generate`` ran (cache hits do not count).
    """

    def __init__(
        self,
        lm,
        config: SamplingConfig | None = None,
        *,
        cache: SampleCache | None = None,
        internals: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.lm, self.config, self.cache = lm, config or SamplingConfig(), cache
        self._memory: dict[str, Generation] = {}
        self.generate_calls = 0
        self.internals = frozenset()
        self.require(internals)

    def require(self, internals) -> Sampler:
        """Keep ``internals`` as well from now on; returns self."""
        unknown = set(internals) - set(INTERNALS)
        if unknown:
            raise ConfigError(f"unknown model internals {sorted(unknown)}; choose from {list(INTERNALS)}")
        self.internals = self.internals | frozenset(internals)
        return self

    def __call__(self, prompt: str) -> Generation:
        """The generation for one formatted prompt (see ``LanguageModel.prompt``)."""
        key = SampleCache.key(self.lm.name, prompt, self.config)
        generation = self._memory.get(key)
        if generation is None and self.cache is not None:
            generation = self.cache.get(key)
        if generation is not None and has_internals(generation.extra, self.internals):
            self._memory[key] = generation
            return generation
        generation = self._generate(prompt)  # new, or cached without the internals asked for
        if self.cache is not None:
            self.cache.put(key, generation)
        self._memory[key] = generation
        return generation

    def _generate(self, prompt: str) -> Generation:
        import torch

        cfg, lm = self.config, self.lm
        ids = lm.encode(prompt)
        if not ids:
            raise DataError("the prompt is empty after tokenisation; give the model some text")
        rows = 1 + cfg.samples
        prompt_ids = torch.tensor([ids])  # (1, L)
        start = time.perf_counter()
        internals = self.internals
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed((cfg.seed * 1_000_003 + zlib.crc32(prompt.encode())) % 2**63)
            kwargs: dict[str, Any] = {}
            if len(ids) > 1:  # run the prompt (all but its last token) once, then copy its cache to every row
                out = lm.model(prompt_ids[:, :-1], use_cache=True)  # fused attention: no weights are read here
                cache = out.past_key_values
                cache.batch_repeat_interleave(rows)
                kwargs[lm.cache_kwarg] = cache
            batch = prompt_ids.expand(rows, -1)  # (rows, L)
            with eager_attention(lm.model, "attentions" in internals):  # the answer's steps return their weights
                out = lm.model.generate(
                    batch,
                    attention_mask=torch.ones_like(batch),
                    do_sample=True,
                    temperature=cfg.temperature,
                    top_k=cfg.top_k,
                    top_p=cfg.top_p,
                    max_new_tokens=cfg.max_new_tokens,
                    logits_processor=[_greedy_rows_processor(1)],
                    output_logits=True,
                    output_hidden_states="hidden_states" in internals,
                    output_attentions="attentions" in internals,
                    return_dict_in_generate=True,
                    pad_token_id=lm.tokenizer.pad_token_id,
                    **kwargs,
                )
        self.generate_calls += 1
        seconds = time.perf_counter() - start
        new = out.sequences[:, len(ids) :]  # (rows, S)
        logp = torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1)  # (rows, S, V)
        chosen = logp.gather(-1, new[..., None])[..., 0]  # (rows, S)
        entropy = torch.special.entr(logp.exp()).sum(-1)  # (rows, S)
        answers = [self._answer(new[r].tolist(), chosen[r].numpy(), entropy[r].numpy()) for r in range(rows)]
        extra = greedy_internals(out, internals, len(answers[0].tokens)) if internals else {}
        return Generation(prompt, answers[0], answers[1:], seconds, extra=extra)

    def _answer(self, tokens: list[int], logprobs: np.ndarray, entropies: np.ndarray) -> Answer:
        stops = self.lm.stop_ids
        end = next((i + 1 for i, t in enumerate(tokens) if t in stops), None)
        n = end if end is not None else len(tokens)
        text = self.lm.tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
        return Answer(
            text, tokens[:n], logprobs[:n].astype(np.float64), entropies[:n].astype(np.float64), end is not None
        )
