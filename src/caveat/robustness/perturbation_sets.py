"""The word sets of SAFER's certificate (Ye, Gong & Liu 2020, "SAFER: A Structure-free Approach for Certified
Robustness to Adversarial Word Substitutions", ACL): what an attacker may swap a word for, what the smoothing
draws it from, and how far the two drawings move when the attacker swaps.

For each word ``w`` there are two sets (the paper's ``S_w`` and ``T_w``):

- ``substitutes(w)``, the paper's perturbation set ``S_w`` minus ``w``: the words an attacker may put in ``w``'s
  place (its synonyms). The certificate covers every text built this way, up to a number of changed words.
- ``randomization(w)``, the paper's random perturbation set ``T_w`` (``w`` first): the smoothed classifier reads
  ``w`` as a uniform draw from it. As in SAFER, ``T_w`` is the whole connected component of ``w`` in the synonym
  graph when that has at most ``size`` (the paper's K) words, else the ``size`` words of the component nearest to
  ``w``. Words of a small component then share one ``T``, so swapping one for another moves nothing; in a large
  one, neighbours' sets overlap mostly.

``overlap(w)`` is the paper's ``q_w = min over w' in S_w of |T_w ∩ T_w'| / |T_w|`` (Theorem 1): one minus the
total-variation distance between the uniform draws from ``T_w`` and from the worst ``T_w'``.

Simplifications, said here once:

- "Nearest" is by hops in the synonym graph (breadth first, neighbours in lexicon order); SAFER orders a large
  component's words by counter-fitted embedding similarity. The structure is the same: whole small components,
  a ball of K words in a large one.
- The denominator is ``max(|T_w|, |T_w'|)``, not ``|T_w|``: the paper assumes every ``T`` of a component has the
  same size (true here for an undirected graph, so the two agree); with a directed mapping they may not, and
  ``1 - |T_w ∩ T_w'| / max(|T_w|, |T_w'|)`` is then the exact total-variation distance between the two uniform
  draws, so the bound stays sound.
- Only a word's run of letters is edited (``Words``), and a substitute must be letters only, so that a swapped
  word is again one editable word with its own sets. Words are keyed in lower case and written back in the case
  of the word they replace.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from caveat.errors import ConfigError
from caveat.robustness.attacks.lexicon import SYNONYM_FILE, Lexicons

DEFAULT_SIZE = 100  # K: SAFER's default cap on a random perturbation set (perturbation_constraint)
_LETTERS = re.compile(r"[a-z]+")


class PerturbationSets:
    """SAFER's per-word sets over a synonym graph.

    Parameters
    ----------
    synonyms : word -> its substitutes (any case; read as lower case). Entries that are not letters only, or
        are the word itself, are dropped. Read as given: a lexicon's pairs are symmetric (``Lexicons.synonyms``),
        a hand-written mapping need not be.
    size : K, the largest random perturbation set (>= 1): a word's whole component when it is no larger, else
        the K words nearest to it.
    source : where the synonyms came from, for reports (``"ppdb"``).
    """

    def __init__(self, synonyms: Mapping[str, Iterable[str]], *, size: int = DEFAULT_SIZE, source: str = "custom"):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(
                f"{{set_size}} must be an integer >= 1 (the largest random perturbation set). Got {size!r}.",
                fields=("set_size",),
            )
        self.size, self.source = size, source
        graph: dict[str, tuple[str, ...]] = {}
        for word, subs in synonyms.items():
            key = word.lower()
            kept = dict.fromkeys(s.lower() for s in subs if _LETTERS.fullmatch(s.lower()) and s.lower() != key)
            graph[key] = tuple(dict.fromkeys((*graph.get(key, ()), *kept)))
        self.graph = graph
        self._balls: dict[str, tuple[str, ...]] = {}
        self._overlaps: dict[str, float] = {}

    @classmethod
    def from_lexicons(
        cls, lexicons: Lexicons, *, size: int = DEFAULT_SIZE, exclude: frozenset[str] = ENGLISH_STOP_WORDS
    ) -> PerturbationSets:
        """SAFER's sets over the PPDB synonym lexicon: a word's substitutes are its synonyms there, without stop
        words (never edited, never proposed: as the attacks' ``Constraints``) and without its antonyms (the
        attacks' ``AntonymFilter``; PPDB's pairs are noisy)."""
        if lexicons.synonyms is None:
            where = f"at {lexicons.folder}/{SYNONYM_FILE}" if lexicons.folder else "given"
            raise ConfigError(
                f"certification draws substitutes from the PPDB synonym lexicon, and none is {where}: point "
                f"{{lexicons}} (or CAVEAT_LEXICONS) at the folder holding {SYNONYM_FILE}",
                fields=("lexicons",),
            )
        graph = {
            word: [s for s in subs if s not in exclude and s not in lexicons.antonyms_of(word)]
            for word, subs in lexicons.synonyms.items()
            if word not in exclude
        }
        return cls(graph, size=size, source="ppdb")

    def substitutes(self, word: str) -> tuple[str, ...]:
        """What an attacker may put in place of ``word`` (any case): ``S_w`` minus ``w``, lower case."""
        return self.graph.get(word.lower(), ())

    def randomization(self, word: str) -> tuple[str, ...]:
        """``T_w``: ``word`` (lower case) first, then the nearest words of its component, at most ``size``."""
        key = word.lower()
        if key not in self._balls:
            ball = {key: None}
            queue = deque([key])
            while queue and len(ball) < self.size:
                for nxt in self.graph.get(queue.popleft(), ()):
                    if nxt not in ball and len(ball) < self.size:
                        ball[nxt] = None
                        queue.append(nxt)
            self._balls[key] = tuple(ball)
        return self._balls[key]

    def overlap(self, word: str) -> float:
        """``q_w``: the smallest share of ``T_w`` that the set of a substitute keeps (1.0 without substitutes)."""
        key = word.lower()
        if key not in self._overlaps:
            own = set(self.randomization(key))
            worst = 1.0
            for sub in self.substitutes(key):
                other = set(self.randomization(sub))
                worst = min(worst, len(own & other) / max(len(own), len(other)))
            self._overlaps[key] = worst
        return self._overlaps[key]

    def describe(self) -> dict:
        """What the report says of these sets."""
        return {"source": self.source, "set_size": self.size, "words": len(self.graph)}


def tv_bound(overlaps: Sequence[float], changed: int) -> float:
    """Δ, SAFER's bound on the total-variation distance between the smoothing of a text and of any text with at
    most ``changed`` of its words swapped within their sets: ``1 - prod of the `changed` smallest overlaps``.

    The draws are independent per word, so coupling each word's two draws at its own overlap keeps all words
    equal with probability the product of the overlaps; the attacker does worst by swapping the words of least
    overlap (each factor is at most 1, so swapping more never helps the bound)."""
    if changed <= 0:
        return 0.0
    smallest = sorted(overlaps)[:changed]
    product = 1.0
    for q in smallest:
        product *= q
    return 1.0 - product
