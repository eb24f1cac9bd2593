"""What a run is, from its ``caveat.json`` alone (``caveat info RUN``, ``Model.info()``): task, labels, backbone,
data, training, calibration and versions, as one JSON-ready dict. Nothing is loaded but the JSON."""

from __future__ import annotations

from pathlib import Path

from caveat.decide.risk import RiskControlled
from caveat.models.backbone import backbone_name
from caveat.models.rundir import ARCHITECTURE, Run, open_run
from caveat.training.validation_metric import stored_metric
from caveat.types import Task
from caveat.uncertainty.scores import resolve_score_name

FIRST_LABELS = 10  # labels listed by name; the count says how many there are


def describe_run(run: str | Path | Run) -> dict:
    """The run at a glance, as JSON-ready data.

    Keys: ``run``, ``task``, ``labels`` (``count`` and the ``first`` ten), ``backbone`` (``name``: ``default``
    resolved to the packaged model it stands for), ``data`` (each split's ``source``, ``n``, ``skipped``; the
    out-of-scope sets), ``training`` (objective, epochs, seconds, best validation figure; None for an imported
    checkpoint), ``calibration`` (None when not calibrated), ``versions``, ``created``.
    """
    run = run if isinstance(run, Run) else open_run(run)
    info = run.info
    return {
        "run": str(run.path),
        "task": run.task.value,
        "labels": {"count": len(run.labels), "first": run.labels[:FIRST_LABELS]},
        "backbone": _backbone(run),
        "data": {
            "format": run.config.data.format,
            "splits": info.get("data", {}).get("splits", {}),
            "ood": dict(run.config.data.ood),
        },
        "training": _training(run),
        "calibration": _calibration(info["calibration"]) if info.get("calibration") else None,
        "versions": info.get("versions", {}),
        "created": info.get("created"),
    }


def _backbone(run: Run) -> dict:
    model = run.config.model
    out = {"name": backbone_name(model.name_or_path), "name_or_path": model.name_or_path}
    architecture = run.info.get("architecture", ARCHITECTURE)
    if architecture != ARCHITECTURE:
        out["architecture"] = architecture
    if "imported" in run.info:  # an imported Hugging Face classifier: its checkpoint is the model
        imported = run.info["imported"]
        out.update(name=imported.get("from", out["name"]), model_type=imported.get("model_type"))
    if model.peft.method != "none":
        out["peft"] = {"method": model.peft.method, "r": model.peft.r}
    if run.info.get("ensemble"):
        out["ensemble_members"] = 1 + len(run.info["ensemble"].get("members", []))
    return out


def _training(run: Run) -> dict | None:
    training = run.info.get("training") or {}
    if not training:
        return None
    return {
        "objective": run.config.train.objective,
        "epochs": training.get("epochs"),
        "steps": training.get("steps"),
        "seconds": training.get("seconds"),
        "best_validation": {
            "metric": stored_metric(training, run.task),
            "value": training.get("best_validation"),
            "step": training.get("best_step"),
        },
        "stopped_early": training.get("stopped_early"),
    }


def _calibration(cal: dict) -> dict:
    """The fitted figures and each check's threshold, with the abstention guarantee in words."""
    out: dict = {"fitted_on": cal.get("fitted_on"), "n": cal.get("n"), "temperature": cal.get("temperature")}
    if "ece_before" in cal:
        out["ece"] = {"before": cal["ece_before"], "after": cal.get("ece_after")}
    if cal.get("ensemble"):  # a deep ensemble's own temperature, fitted on its pooled prediction
        ens = cal["ensemble"]
        out["ensemble"] = {
            "members": ens["members"],
            "temperature": ens["temperature"],
            "ece": {"before": ens["ece_before"], "after": ens["ece_after"]},
        }
    if cal.get("task") == Task.TOKEN_CLASSIFICATION.value:
        out["spans"] = {
            "aggregate": cal.get("aggregate"),
            "precision": cal.get("span_precision"),
            "ece": {"before": cal.get("span_ece_before"), "after": cal.get("span_ece_after")},
        }
    if cal.get("conformal"):
        conformal = cal["conformal"]
        level = conformal["level"] if "level" in conformal else 1 - conformal["alpha"]
        out["sets"] = {
            "method": conformal.get("method"),
            "level": level,
            "class_conditional": conformal.get("class_conditional"),
        }
    if cal.get("ood"):
        ood = cal["ood"]
        out["ood"] = {"method": ood.get("method"), "threshold": ood.get("threshold"), "keeps": ood.get("tpr")}
    if cal.get("risk"):
        out["abstention"] = _abstention(cal["risk"], cal.get("risk_ood_calibration"))
    if cal.get("shift"):
        shift = cal["shift"]
        out["shift"] = {
            "target": shift.get("target"),
            "n_target": shift.get("n_target"),
            "effective_sample_size": shift.get("effective_sample_size"),
            "summary": shift.get("summary"),
        }
    return out


def _abstention(risk: dict, ood_calibration: dict | None) -> dict:
    # runs calibrated before the summary was stored get it rebuilt from the same state
    summary = risk.get("summary") or RiskControlled.from_state(risk).summary
    out = {
        "score": resolve_score_name(risk.get("score")),  # "msp" in runs calibrated before the rename
        "threshold": risk.get("threshold"),
        "target_risk": risk.get("target_risk"),
        "delta": risk.get("delta"),
        "coverage": risk.get("coverage_calibration"),
        "guarantee": summary,
    }
    if ood_calibration:
        out["ood_sets"] = {"sets": ood_calibration.get("sets"), "rate": risk.get("ood_rate")}
    return out
