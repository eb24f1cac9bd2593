"""Issue 17 figures on SST-2 → CR: calibration for a target domain from its unlabelled texts.

For each of ``splits`` seeded halvings of CR (custrev.all; its 4 label-only lines skipped), a copy of the SST-2 run is
calibrated twice — in-domain only (``caveat calibrate RUN``) and for the target (``caveat calibrate RUN --target
half_A``, the labels of half A never read) — and each is evaluated on the labelled half B with ``caveat evaluate
--shift``: calibrated ECE, the 90% prediction sets' coverage and size, and the abstention policy's realised risk and
coverage at ``target_risk``.

Beside them, on the same logits: the temperature fitted on CR half A's labels (the oracle a single temperature can
reach), and perturbation-based calibration in the manner of Tomani et al. (2021, "Post-hoc calibration of neural
networks under domain shift"): the temperature fitted on the calibration texts together with copies of them corrupted
by random character edits at four strengths, so that it sees predictions under growing shift.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np

STRENGTHS = (0.05, 0.1, 0.2, 0.3)  # share of words with one random character edit (Tomani et al.'s growing shift)


def _perturb(text: str, strength: float, rng: random.Random) -> str:
    """``text`` with a random character edit (swap, drop, insert, replace) in a share ``strength`` of its words."""
    words = text.split()
    for i, w in enumerate(words):
        if len(w) > 1 and rng.random() < strength:
            j = rng.randrange(len(w) - 1)
            kind = rng.randrange(4)
            letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
            words[i] = (
                w[:j] + w[j + 1] + w[j] + w[j + 2 :],
                w[:j] + w[j + 1 :],
                w[:j] + letter + w[j:],
                w[:j] + letter + w[j + 1 :],
            )[kind]
    return " ".join(words)


def _figures(z: np.ndarray, y: np.ndarray) -> dict:
    """ECE and NLL of scaled logits ``z`` (N, C) against labels ``y`` (N,)."""
    from scipy.special import log_softmax, softmax

    from caveat.evaluation.calibration import ece

    return {"ece": float(ece(softmax(z, -1), y)), "nll": float(-log_softmax(z, -1)[np.arange(len(y)), y].mean())}


def _cr(data_root: Path) -> list[tuple[str, str]]:
    """(label, text) of CR's valid lines (label-sentence; the label-only lines skipped, as evaluate --shift does)."""
    out = []
    for line in (data_root / "cr" / "custrev.all").read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition(" ")
        if text.strip():
            out.append((label, text))
    return out


def bench_shift(run_dir: Path, data_root: Path, work: Path, *, splits: int = 5, target_risk: float = 0.1) -> dict:
    from scipy.special import softmax

    from caveat.calibration.run import calibrate_run
    from caveat.data.load import load_data
    from caveat.evaluation.calibration import ece
    from caveat.evaluation.run import evaluate_run
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run
    from caveat.uncertainty.methods.temperature import TemperatureScaling

    copy = work / "sst2-shift"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("calibration*", "logs"))
    run = open_run(copy)
    files = work / "sst2-shift-data"
    files.mkdir(parents=True, exist_ok=True)

    cr = _cr(data_root)
    predictor = Predictor.from_run(run, calibrated=False)
    z_cr = predictor.predict([t for _, t in cr]).logits[0]  # (N, C) raw
    y_cr = np.array([run.labels.index(lab) for lab, _ in cr])
    calibration = load_data(run.config).calibration.examples
    y_cal = np.array([run.labels.index(ex.label) for ex in calibration])
    rng = random.Random(0)
    z_cal = predictor.predict([ex.text for ex in calibration]).logits[0]
    perturbed = [_perturb(ex.text, s, rng) for s in STRENGTHS for ex in calibration]
    z_perturbed = np.concatenate([z_cal, predictor.predict(perturbed).logits[0]])
    tomani = TemperatureScaling().fit(z_perturbed, np.tile(y_cal, len(STRENGTHS) + 1)).temperature

    plain_summary = calibrate_run(copy, target_risk=target_risk)
    rows = []
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(cr))
        half_a, half_b = order[: len(cr) // 2], order[len(cr) // 2 :]
        a_file, b_file = files / f"cr_a{seed}.txt", files / f"cr_b{seed}.txt"
        a_file.write_text("".join(cr[i][1] + "\n" for i in half_a), encoding="utf-8")  # texts only: no labels
        b_file.write_text("".join(f"{cr[i][0]} {cr[i][1]}\n" for i in half_b), encoding="utf-8")

        def scored(summary: dict, b_file: Path = b_file) -> dict:
            b = evaluate_run(copy, "test", shift=[f"cr={b_file}"], write=False)["shift"]["cr"]
            return {
                "temperature": summary["temperature"],
                "ece": b["calibrated"]["ece"],
                "nll": b["calibrated"]["nll"],
                "set_coverage": b["conformal"]["coverage"],
                "set_size": b["conformal"]["set_size"],
                "risk": b["abstention"]["risk"],
                "coverage": b["abstention"]["coverage"],
                "advice": summary["risk"].get("advice"),  # when target_risk cannot be certified: what can
            }

        if seed:  # the in-domain calibration is the same for every split; its scoring is per half B
            calibrate_run(copy, target_risk=target_risk)
        plain = scored(plain_summary)
        target_summary = calibrate_run(copy, target=[str(a_file)], target_risk=target_risk)
        target = scored(target_summary)
        shift = target_summary["shift"]
        oracle = TemperatureScaling().fit(z_cr[half_a], y_cr[half_a]).temperature
        zb, yb = z_cr[half_b], y_cr[half_b]
        rows.append(
            {
                "seed": seed,
                "n_target": shift["n_target"],
                "n_evaluated": int(len(half_b)),
                "raw_ece": float(ece(softmax(zb, -1), yb)),
                "in_domain": plain,
                "target": target
                | {
                    "kept": shift["temperature"]["kept"],
                    "effective_sample_size": shift["effective_sample_size"],
                    "risk_sample": shift["risk_sample"],
                    "domain_auroc": shift["domain_auroc"],
                    "ood_stopped_target": shift["ood_stopped_target"],
                },
                "oracle_temperature": {"temperature": oracle, **_figures(zb / oracle, yb)},
                "perturbation_tomani2021": {"temperature": tomani, **_figures(zb / tomani, yb)},
            }
        )

    def median(path: tuple[str, ...]) -> float:
        values = []
        for r in rows:
            v = r
            for k in path:
                v = v[k]
            if v is not None:
                values.append(v)
        return float(np.median(values)) if values else None  # None: nothing answered (no threshold certified)

    keys = ("ece", "nll", "set_coverage", "set_size", "risk", "coverage")
    return {
        "run": str(run_dir),
        "splits": splits,
        "target_risk": target_risk,
        "alpha": 0.1,
        "rows": rows,
        "median": {
            "raw_ece": median(("raw_ece",)),
            "in_domain": {k: median(("in_domain", k)) for k in keys},
            "target": {k: median(("target", k)) for k in (*keys, "effective_sample_size")},
            "target_advice": rows[0]["target"]["advice"],
            "oracle_temperature_ece": median(("oracle_temperature", "ece")),
            "perturbation_ece": median(("perturbation_tomani2021", "ece")),
            "oracle_temperature_nll": median(("oracle_temperature", "nll")),
            "perturbation_nll": median(("perturbation_tomani2021", "nll")),
        },
    }


def bench_spans_shift(run_dir: Path, work: Path, *, splits: int = 3, target_risk: float = 0.05) -> dict:
    """CoNLL-2003: the kept-span bound at ``target_risk``, calibrated in-domain (the calibration split carved from
    testa) and for testb from half of its sentences (unlabelled, as an input log), realised on the other half. The
    target weights read each span's confidence, length, type and familiarity (calibration/fit_spans.py)."""
    import json

    from caveat.calibration.run import calibrate_run
    from caveat.data.load import load_data
    from caveat.evaluation.run import evaluate_run
    from caveat.models.rundir import open_run

    copy = work / "conll2003-shift"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("calibration*", "logs"))
    files = work / "conll2003-shift-data"
    files.mkdir(parents=True, exist_ok=True)
    testb = load_data(open_run(copy).config).test.examples
    rows = []
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(testb))
        half_a, half_b = order[: len(testb) // 2], order[len(testb) // 2 :]
        a_file, b_file = files / f"testb_a{seed}.jsonl", files / f"testb_b{seed}.conll"
        a_file.write_text(
            "".join(json.dumps({"time": "-", "text": " ".join(testb[i].tokens)}) + "\n" for i in half_a),
            encoding="utf-8",
        )
        b_file.write_text(
            "".join("".join(f"{w} {t}\n" for w, t in zip(testb[i].tokens, testb[i].tags)) + "\n" for i in half_b),
            encoding="utf-8",
        )

        def kept(b_file: Path = b_file) -> dict:
            a = evaluate_run(copy, str(b_file), write=False)["abstention"]
            return {"risk": a["risk"], "coverage": a["coverage"]}

        plain = calibrate_run(copy, target_risk=target_risk)
        in_domain = kept() | {"threshold": plain["risk"]["threshold"]}
        shifted = calibrate_run(copy, target=[str(a_file)], target_risk=target_risk)
        target = kept() | {
            "threshold": shifted["risk"]["threshold"],
            "effective_sample_size": shifted["shift"]["effective_sample_size"],
            "risk_sample": shifted["shift"]["risk_sample"],
            "domain_auroc": shifted["shift"]["domain_auroc"],
        }
        labelled = _labelled_target(copy, [testb[i] for i in half_a], [testb[i] for i in half_b], target_risk, seed)
        rows.append(
            {
                "seed": seed,
                "n_target": len(half_a),
                "n_evaluated": len(half_b),
                "in_domain": in_domain,
                "target": target,
                "labelled_target": labelled,
            }
        )
    med = {
        side: {k: float(np.median([r[side][k] for r in rows])) for k in ("risk", "coverage")}
        for side in ("in_domain", "target")
    }
    return {
        "run": str(run_dir),
        "splits": splits,
        "target_risk": target_risk,
        "rows": rows,
        "median": med,
        "worst_target_risk": max(r["target"]["risk"] for r in rows),
        "labelled_target": {
            n: {
                "risk_median": float(np.median([r["labelled_target"][n]["risk"] or 0.0 for r in rows])),
                "risk_worst": max(r["labelled_target"][n]["risk"] or 0.0 for r in rows),
                "coverage_median": float(np.median([r["labelled_target"][n]["coverage"] for r in rows])),
            }
            for n in map(str, LABELLED)
        },
    }


LABELLED = (300, 600, 1200)  # labelled target sentences drawn from half A


def _labelled_target(run_dir: Path, half_a: list, half_b: list, target_risk: float, seed: int) -> dict:
    """What labels buy, beside the weights: the span threshold chosen (same test, delta 0.05, 4 starts) on
    ``LABELLED`` labelled sentences of half A, each realised on half B (the model's spans, the run's temperature)."""
    from caveat.calibration.spans import sentence_logits, span_scores
    from caveat.decide.risk import RiskControlled
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run

    run = open_run(run_dir)
    predictor = Predictor.from_run(run, calibrated=False)
    temperature = run.info["calibration"]["temperature"]

    def spans(examples: list) -> tuple[np.ndarray, np.ndarray]:
        preds = predictor.predict([ex.tokens for ex in examples])
        logits = sentence_logits(preds, [len(ex.tokens) for ex in examples])
        _, conf, right = span_scores(logits, temperature, run.labels, "product", gold=[ex.tags for ex in examples])
        return conf, right

    conf_b, right_b = spans(half_b)
    out = {}
    order = np.random.default_rng(seed).permutation(len(half_a))
    for n in LABELLED:
        conf_a, right_a = spans([half_a[i] for i in order[:n]])
        risk = RiskControlled(target_risk, 0.05, allow_empty=True, starts=4).calibrate(1 - conf_a, ~right_a)
        kept = (1 - conf_b) <= (risk.threshold if risk.threshold is not None else -np.inf)
        out[str(n)] = {
            "risk": float((~right_b[kept]).mean()) if kept.any() else None,
            "coverage": float(kept.mean()),
        }
    return out


DAC_K = 50  # neighbours (Tomani et al. 2023 use k = 50)
DAC_REFERENCE = 5000  # training sentences the neighbours are drawn from (seeded subsample: CPU time)


def bench_shift_density(run_dir: Path, data_root: Path, *, splits: int = 5) -> dict:
    """Density-aware calibration (Tomani et al. 2023, "Beyond in-domain scenarios: robust density-aware
    calibration") against the SST-2 run's plain temperature, on the same CR halves as ``bench_shift``.

    DAC scales each input's logits by its own temperature T(x) = softplus(w0 + w1 log d_f(x) + w2 log d_z(x)),
    where d_f and d_z are the distances to the ``DAC_K``-th nearest training input in the normalised pooled features
    and in the logits (the layers our ``Predictions`` expose); the weights are fitted by NLL on the calibration
    split, once on clean texts (as the paper) and once with the perturbed copies of ``bench_shift`` (Tomani et
    al. 2021's growing shift) added. Judged by ECE and NLL on CR half B (no CR text is read to fit it)."""
    import torch
    from scipy.special import softmax

    from caveat.data.load import load_data
    from caveat.evaluation.calibration import ece
    from caveat.inference import Predictor
    from caveat.models.rundir import open_run
    from caveat.uncertainty.methods.temperature import TemperatureScaling

    run = open_run(run_dir)
    data = load_data(run.config)
    predictor = Predictor.from_run(run, calibrated=False)
    rng = np.random.default_rng(0)
    train = data.train.examples
    reference = predictor.predict([train[i].text for i in rng.permutation(len(train))[:DAC_REFERENCE]])

    def normed(f: np.ndarray) -> np.ndarray:
        return f / np.linalg.norm(f, axis=1, keepdims=True)

    ref_f, ref_z = torch.tensor(normed(reference.features)), torch.tensor(reference.logits[0])

    def log_distances(p) -> np.ndarray:
        """(N, 2): log distance to the k-th nearest reference input in features and in logits."""
        out = []
        for query, ref in ((torch.tensor(normed(p.features)), ref_f), (torch.tensor(p.logits[0]), ref_z)):
            d = torch.cdist(query, ref).kthvalue(DAC_K, dim=1).values
            out.append(torch.log(d.clamp_min(1e-8)).numpy())
        return np.stack(out, axis=1)

    def fit(z: np.ndarray, d: np.ndarray, y: np.ndarray) -> np.ndarray:
        zt, dt, yt = torch.tensor(z, dtype=torch.float64), torch.tensor(d, dtype=torch.float64), torch.tensor(y)
        w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        with torch.no_grad():  # start at the plain temperature
            w[0] = float(np.log(np.expm1(TemperatureScaling().fit(z, y).temperature)))
        opt = torch.optim.LBFGS([w], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            t = torch.nn.functional.softplus(w[0] + dt @ w[1:]) + 1e-3
            loss = torch.nn.functional.cross_entropy(zt / t[:, None], yt)
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach().numpy()

    def scaled(w: np.ndarray, z: np.ndarray, d: np.ndarray) -> np.ndarray:
        return z / (np.logaddexp(0.0, w[0] + d @ w[1:]) + 1e-3)[:, None]

    calibration = data.calibration.examples
    y_cal = np.array([run.labels.index(ex.label) for ex in calibration])
    p_cal = predictor.predict([ex.text for ex in calibration])
    perturb_rng = random.Random(0)
    p_pert = predictor.predict([_perturb(ex.text, s, perturb_rng) for s in STRENGTHS for ex in calibration])
    d_cal, d_pert = log_distances(p_cal), log_distances(p_pert)
    z_cal = p_cal.logits[0]
    w_clean = fit(z_cal, d_cal, y_cal)
    w_pert = fit(
        np.concatenate([z_cal, p_pert.logits[0]]),
        np.concatenate([d_cal, d_pert]),
        np.tile(y_cal, len(STRENGTHS) + 1),
    )
    plain_t = TemperatureScaling().fit(z_cal, y_cal).temperature

    cr = _cr(data_root)
    p_cr = predictor.predict([t for _, t in cr])
    z_cr, d_cr = p_cr.logits[0], log_distances(p_cr)
    y_cr = np.array([run.labels.index(lab) for lab, _ in cr])
    rows = []
    for seed in range(splits):
        half_b = np.random.default_rng(seed).permutation(len(cr))[len(cr) // 2 :]  # bench_shift's half B
        zb, db, yb = z_cr[half_b], d_cr[half_b], y_cr[half_b]
        rows.append(
            {
                "seed": seed,
                "raw_ece": float(ece(softmax(zb, -1), yb)),
                "temperature": _figures(zb / plain_t, yb),
                "dac": _figures(scaled(w_clean, zb, db), yb),
                "dac_perturbed": _figures(scaled(w_pert, zb, db), yb),
            }
        )
    in_domain = {"temperature": _figures(z_cal / plain_t, y_cal), "dac": _figures(scaled(w_clean, z_cal, d_cal), y_cal)}
    return {
        "run": str(run_dir),
        "splits": splits,
        "k": DAC_K,
        "reference": DAC_REFERENCE,
        "weights": {"dac": w_clean.tolist(), "dac_perturbed": w_pert.tolist()},
        "calibration_split": in_domain,
        "rows": rows,
        "median": {
            side: {k: float(np.median([r[side][k] for r in rows])) for k in ("ece", "nll")}
            for side in ("temperature", "dac", "dac_perturbed")
        },
    }
