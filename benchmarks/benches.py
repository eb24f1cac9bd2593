"""Every benchmark by name: what ``python -m benchmarks.run --only NAME`` runs, whether ``make bench`` runs it, and
what it needs. One registry, so the default list, the accepted names and the error for an unknown one cannot drift
apart (they were three hand-kept lists, and the error's had lost four names).

Each entry is a function of a ``Context`` (the data root, ``--quick``, ``--no-reuse``, ``--robust``) returning the
results record. Entries run in registration order, so a bench that needs another's run is registered after it.
Modules that import heavy stacks (generation, ONNX, the service) are imported inside their entry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"


@dataclass(frozen=True)
class Context:
    """What every bench is run with: ``work`` is where runs live (``benchmarks/work``, or its ``quick/`` folder)."""

    data_root: Path
    quick: bool = False
    reuse: bool = True
    robust: bool = False

    @property
    def work(self) -> Path:
        return WORK / "quick" if self.quick else WORK

    def pick(self, quick, full):
        """``quick`` under ``--quick`` (a harness check), else ``full`` (the figures)."""
        return quick if self.quick else full


@dataclass(frozen=True)
class Bench:
    run: Callable[[Context], dict]
    default: bool  # part of ``make bench``
    about: str  # what it needs, how long it takes


BENCHES: dict[str, Bench] = {}


def bench(name: str, *, default: bool = True, about: str = "") -> Callable:
    """Register the decorated ``f(context) -> record`` as the bench ``name``."""

    def register(run: Callable[[Context], dict]) -> Callable[[Context], dict]:
        if name in BENCHES:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHES[name] = Bench(run, default, about)
        return run

    return register


def default_names() -> list[str]:
    return [name for name, b in BENCHES.items() if b.default]


def unknown(names: list[str]) -> str | None:
    """The error for names no bench has, else None."""
    bad = [n for n in names if n not in BENCHES]
    if not bad:
        return None
    return f"unknown benchmark {', '.join(map(repr, bad))}; choose from {', '.join(BENCHES)}"


def _register_tasks() -> None:
    from benchmarks.tasks import TASKS, bench_task

    for task in TASKS:  # first: the other benches reuse these runs
        bench(task, about="trains the task's run unless an identical one is in benchmarks/work")(
            lambda c, task=task: bench_task(task, c.data_root, c.work, quick=c.quick, reuse=c.reuse)
        )


_register_tasks()


@bench("step_cost")
def _step_cost(c: Context) -> dict:
    from benchmarks.step_cost import bench_step_cost

    return bench_step_cost(c.data_root, WORK, quick=c.quick)


@bench("uncertainty", about="needs the clinc150 run")
def _uncertainty(c: Context) -> dict:
    from benchmarks.uncertainty import bench_uncertainty

    return bench_uncertainty(c.work / "clinc150", c.data_root)


@bench("spans", about="needs the conll2003 run")
def _spans(c: Context) -> dict:
    from benchmarks.uncertainty import bench_spans

    return bench_spans(c.work / "conll2003")


@bench("ensemble", about="needs the sst2-ens run (caveat train examples/sst2.yaml --ensemble 3)")
def _ensemble(c: Context) -> dict:
    from benchmarks.uncertainty import bench_ensemble

    return bench_ensemble(WORK / "sst2-ens")


@bench("distill", about="trains sst2-ens and its distilled student when missing (benchmarks/distill.py)")
def _distill(c: Context) -> dict:
    from benchmarks.distill import bench_distill

    return bench_distill(c.data_root, c.work, quick=c.quick, reuse=c.reuse)


@bench("service", about="the calibrated clinc150 run behind a real server (benchmarks/service.py)")
def _service(c: Context) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.service", str(c.work / "clinc150"), "--seconds", c.pick("3", "30")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode not in (0, 1):
        raise SystemExit(f"service benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


@bench("robustness", about="needs the sst2 run")
def _robustness(c: Context) -> dict:
    from benchmarks.uncertainty import bench_robustness

    return bench_robustness(c.work / "sst2", c.data_root, max_examples=c.pick(20, 500))


@bench("explain", about="needs the sst2 run")
def _explain(c: Context) -> dict:
    from benchmarks.explain import bench_explain

    return bench_explain(c.work / "sst2", c.work, max_examples=c.pick(10, 200), lime_default_examples=c.pick(2, 20))


@bench("robust_compare", about="trains the sst2 runs benchmarks/robust.py names when missing")
def _robust_compare(c: Context) -> dict:
    from benchmarks.robust import bench_robust_compare

    return bench_robust_compare(c.work, c.data_root, max_examples=c.pick(20, 500), quick=c.quick)


@bench("ner_attack", about="needs the conll2003 run")
def _ner_attack(c: Context) -> dict:
    from benchmarks.robust import bench_ner_attack

    return bench_ner_attack(c.work / "conll2003", max_examples=c.pick(20, 200))


@bench("ner_compare", about="trains the CoNLL-2003 runs benchmarks/robust.py names when missing")
def _ner_compare(c: Context) -> dict:
    from benchmarks.robust import bench_ner_compare

    return bench_ner_compare(c.work, c.data_root, max_examples=c.pick(20, 200), quick=c.quick)


@bench("generate", about="SmolLM2 on XQuAD and NQ-open (benchmarks/generate.py)")
def _generate(c: Context) -> dict:
    from benchmarks.generate import bench_generate

    return bench_generate(
        c.data_root,
        c.work,
        n=c.pick({"xquad": 6, "nq_open": 4}, None),
        throughput_n=c.pick(2, 10),
        n_boot=c.pick(50, 1000),
    )


@bench("generate_single", about="probes, density and RAUQ from one greedy pass (benchmarks/generate_single.py)")
def _generate_single(c: Context) -> dict:
    from benchmarks.generate_single import bench_generate_single

    return bench_generate_single(
        c.data_root,
        c.work,
        held_out=c.pick({"xquad": 12, "nq_open": 12}, None),
        n_fit=c.pick({"xquad": 16, "nq_open": 16}, None),
        cost_n=c.pick(2, 20),
        splits=c.pick(2, 20),
        n_boot=c.pick(50, 1000),
        reuse=c.reuse,
    )


@bench("generate_summaries", about="XSum summaries, PRR against ROUGE-L (benchmarks/generate_summaries.py)")
def _generate_summaries(c: Context) -> dict:
    from benchmarks.generate_summaries import bench_generate_summaries

    return bench_generate_summaries(c.data_root, c.work, n=c.pick(4, 300), n_boot=c.pick(50, 1000))


@bench("generate_tune", about="temperature and meaning threshold tuned (benchmarks/generate_tune.py)")
def _generate_tune(c: Context) -> dict:
    from benchmarks.generate_tune import bench_generate_tune

    return bench_generate_tune(c.data_root, c.work, n=c.pick(24, 100), samples=c.pick(2, 5), n_boot=c.pick(50, 1000))


@bench("onnx", about="needs the clinc150 run: exports it (fp32, int8) into work, times and re-calibrates")
def _onnx(c: Context) -> dict:
    from benchmarks.onnx_export import bench_onnx

    return bench_onnx(c.work / "clinc150", c.work, repeats=c.pick(2, 5), n_texts=c.pick(128, 1000))


@bench("risk_bounds", about="needs the clinc150 run (benchmarks/risk_bounds.py)")
def _risk_bounds(c: Context) -> dict:
    from benchmarks.risk_bounds import bench_risk_bounds

    return bench_risk_bounds(c.work / "clinc150", c.data_root)


@bench("shift", about="needs the sst2 run; calibrates copies of it (benchmarks/shift.py)")
def _shift(c: Context) -> dict:
    from benchmarks.shift import bench_shift

    return bench_shift(c.work / "sst2", c.data_root, c.work, splits=c.pick(1, 5))


@bench("shift_density", about="needs the sst2 run; density-aware calibration beside TS (benchmarks/shift.py)")
def _shift_density(c: Context) -> dict:
    from benchmarks.shift import bench_shift_density

    return bench_shift_density(c.work / "sst2", c.data_root, splits=c.pick(1, 5))


@bench("spans_shift", about="needs the conll2003 run; calibrates copies of it (benchmarks/shift.py)")
def _spans_shift(c: Context) -> dict:
    from benchmarks.shift import bench_spans_shift

    return bench_spans_shift(c.work / "conll2003", c.work, splits=c.pick(1, 3))


@bench("attack_caught", about="trains sst2-rsub-ls when missing; calibrates copies (benchmarks/robust.py)")
def _attack_caught(c: Context) -> dict:
    from benchmarks.robust import bench_attack_caught

    return bench_attack_caught(c.work, c.data_root, max_examples=c.pick(20, 500))


# not part of make bench: each is long on 2 cores, or needs what the default ones do not train


@bench("service_fire", default=False, about="caveat serve under fire (benchmarks/service_fire.py); ~25 min")
def _service_fire(c: Context) -> dict:
    from benchmarks.fire.common import Options
    from benchmarks.service_fire import QUICK, bench_service_fire

    return bench_service_fire(c.work / "clinc150", c.pick(QUICK, Options()))


@bench("risk_feasibility", about="generate-calibrate's coverage target against the AUROC it needs, planted; ~1 min")
def _risk_feasibility(c: Context) -> dict:
    from benchmarks.risk_feasibility import bench_risk_feasibility

    return bench_risk_feasibility(quick=c.quick)


@bench("lora_sst2", default=False, about="SmolLM2-135M + LoRA on SST-2 (benchmarks/llm.py); trains ~30 min")
def _lora_sst2(c: Context) -> dict:
    from benchmarks.llm import bench_lora_sst2

    return bench_lora_sst2(c.data_root, c.work, quick=c.quick)


@bench("lora_clinc150", default=False, about="SmolLM2 + LoRA on CLINC150, a 4-adapter ensemble; ~90 min")
def _lora_clinc150(c: Context) -> dict:
    from benchmarks.llm import bench_lora_clinc150

    return bench_lora_clinc150(c.data_root, c.work, quick=c.quick)


@bench("laplace_lora_clinc150", default=False, about="one CLINC150 LoRA adapter and Laplace-LoRA; ~80 min")
def _laplace_lora_clinc150(c: Context) -> dict:
    from benchmarks.llm import bench_laplace_lora_clinc150

    return bench_laplace_lora_clinc150(c.data_root, c.work, quick=c.quick)


@bench("semeval_caveats", default=False, about="reuses/trains the semeval run; calibrates, attacks; ~20 min")
def _semeval_caveats(c: Context) -> dict:
    from benchmarks.relation import bench_semeval_caveats

    return bench_semeval_caveats(c.data_root, c.work, quick=c.quick, robust=c.robust)


@bench("laplace_lora", default=False, about="needs the sst2-lora run (lora_sst2)")
def _laplace_lora(c: Context) -> dict:
    from benchmarks.llm import bench_laplace_lora

    return bench_laplace_lora(c.work / "sst2-lora")


@bench("robust_transfer", default=False, about="issue 19: held-out attacks on a mixture defence; ~45 min")
def _robust_transfer(c: Context) -> dict:
    from benchmarks.robust_transfer import bench_robust_transfer

    return bench_robust_transfer(
        c.work, c.data_root, max_examples=c.pick(20, 500), bae_examples=c.pick(4, 200), quick=c.quick
    )


@bench("cr_target", default=False, about="issue 19: CR calibration in-domain vs for the target; robust_transfer's runs")
def _cr_target(c: Context) -> dict:
    from benchmarks.robust_transfer import bench_cr_target

    return bench_cr_target(c.work, c.data_root, quick=c.quick)


@bench("certify", default=False, about="issue 19: SAFER on ERM and a run trained on its noise; ~20 min")
def _certify(c: Context) -> dict:
    from benchmarks.robust_transfer import bench_certify

    return bench_certify(c.work, c.data_root, max_examples=c.pick(8, 300), quick=c.quick)
