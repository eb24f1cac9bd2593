"""The causal LM behind POST /v1/generate: chosen and checked at start-up, loaded once in the model thread."""

from __future__ import annotations

import logging
from pathlib import Path

from caveat.errors import ConfigError
from caveat.generate.answer import answer_question, ask
from caveat.generate.estimators import Context, get_estimator
from caveat.generate.lm import load_lm, same_lm
from caveat.generate.policy import GenerationPolicy
from caveat.generate.semantic import make_equivalence
from caveat.service.settings import ServiceSettings
from caveat.service.validation import GenerateOptions

log = logging.getLogger(__name__)


class Generator:
    """A language model, its meaning encoder and an optional policy; ``load`` then ``answer``.

    Parameters
    ----------
    lm : what ``caveat.generate.lm.load_lm`` loads (with a policy: the policy's model).
    policy : a fitted ``GenerationPolicy`` (its sampling, template and estimator are used), or None.
    """

    def __init__(self, lm: str, policy: GenerationPolicy | None = None) -> None:
        self.name, self.policy = lm, policy
        self.lm = None
        self.equivalence = None
        self.error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.lm is not None

    def status(self) -> str:
        if self.error:
            return f"the language model failed to load: {self.error}"
        return "ready" if self.loaded else "loading the language model"

    def load(self) -> Generator:
        """Load the model and the sentence encoder of the meaning clusters (the default estimators
        cluster meanings, so the first request does not pay for loading it). Runs in the model thread."""

        lm = load_lm(self.name)
        equivalence = make_equivalence(**(self.policy.meaning if self.policy else {}))  # the policy's clusters
        equivalence.matrix(["warm up", "warm-up"])
        self.lm, self.equivalence = lm, equivalence
        return self

    def answer(self, question: str, context: str | None, options: GenerateOptions) -> dict:
        """``answer_question`` for one request (model thread); ``ConfigError`` when an estimator cannot run."""

        if not self.loaded:
            raise ConfigError("the language model is not loaded: call load() first")
        message = ask(question, context, template=self.policy.template if self.policy else None)
        ctx = Context(lm=self.lm, equivalence=self.equivalence)  # per request: its meaning clusters are per generation
        return answer_question(self.lm, options.sampling, message, list(options.estimators), ctx, self.policy)


def open_generator(settings: ServiceSettings) -> Generator | None:
    """The generator ``settings`` ask for (None: neither ``lm`` nor ``generation_policy``). The policy is
    read and checked here, so a bad file or a model that is not the policy's stops the start-up."""

    if settings.generation_policy is None:
        return None if settings.lm is None else Generator(settings.lm)
    path: Path = settings.generation_policy
    policy = GenerationPolicy.load(path)
    if settings.lm is not None and not same_lm(settings.lm, policy.lm):
        raise ConfigError(
            f"--lm {settings.lm!r} is not the model the generation policy {path} was calibrated with "
            f"({policy.lm!r}), and its threshold holds only for that model: drop --lm (the policy's "
            "model is used), or fit a policy for this model with caveat generate-calibrate --lm"
        )
    try:
        get_estimator(policy.estimator)
        ask("?", "", template=policy.template)
    except ConfigError as err:
        raise ConfigError(f"generation policy {path}: {err}") from None
    return Generator(policy.lm, policy)
