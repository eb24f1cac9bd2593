"""``export_run``: a run exported to ONNX as a new run directory (``caveat export``, ``caveat.Model.export``).

The exported run is a run like any other: ``caveat.json`` (the source's config, labels, data and training
record, with ``"architecture": "onnx"`` and ``"exported_from"``) and ``model/`` (``models/onnx.py``). The source
run's calibration is not copied: temperature, conformal quantiles, thresholds and Laplace were fitted on the
source model's outputs, and an int8 graph's outputs differ, so the exported run is calibrated again on its own
calibration split (the config it carries names the same data).
"""

from __future__ import annotations

import time
from pathlib import Path

from caveat.errors import ConfigError
from caveat.io import atomic_dir, write_json_atomic
from caveat.models.onnx import ARCHITECTURE, DEFAULT_OPSET, check_quantize, require_onnx, write_onnx_model
from caveat.models.rundir import MODEL_DIR, RUN_FILE, Run, load_model, open_run, versions

FORMATS = ("onnx",)
EXPORTABLE = ("caveat",)  # source architectures whose model is a CaveatModel
DROPPED = ("calibration", "ensemble", "base")  # fitted on the source model's outputs, or about its PyTorch files


def export_run(
    run_dir: str | Path | Run,
    out: str | Path,
    *,
    format: str = "onnx",
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
) -> dict:
    """Export a text- or token-classification run to ONNX (``quantize="int8"``: dynamic int8 weights) as the new
    run directory ``out``, written atomically; ``out`` must not exist or be empty. A deep ensemble exports member
    0 (the run directory itself) only. Returns a summary with the command that calibrates the exported run."""
    run = run_dir if isinstance(run_dir, Run) else open_run(run_dir)
    out = Path(out)
    _check(run, out, format, quantize)
    tokenizer, model = load_model(run)
    with atomic_dir(out) as tmp:
        export = write_onnx_model(model, tokenizer, tmp / MODEL_DIR, run.task, quantize=quantize, opset=opset)
        info = exported_info(run, export)
        write_json_atomic(tmp / RUN_FILE, info)
    summary = {
        "run": str(out),
        **info["exported_from"],
        "weights_bytes": {
            "source": _bytes(run.path / MODEL_DIR, ".safetensors"),
            "onnx": _bytes(out / MODEL_DIR, ".onnx"),
        },
        "calibrated": False,
        "next": f"caveat calibrate {out}",
    }
    if run.info.get("ensemble"):
        summary["ensemble"] = "member 0 only: an ONNX run is one model (export the other members' run folders apart)"
    return summary


def _check(run: Run, out: Path, format: str, quantize: str | None) -> None:
    """Refuse an unknown format or quantisation, a source that is not a PyTorch caveat run, an ``out`` with files."""
    if format not in FORMATS:
        raise ConfigError(f"{{format}}={format!r}: caveat exports to {', '.join(FORMATS)}", fields=("format",))
    check_quantize(quantize)
    architecture = run.info.get("architecture", "caveat")
    if architecture == ARCHITECTURE:
        source = (run.info.get("exported_from") or {}).get("run")
        raise ConfigError(f"{run.path} is already an ONNX export (of {source}); export the source run instead")
    if architecture not in EXPORTABLE:
        raise ConfigError(
            f"{run.path} has architecture {architecture!r}; caveat exports runs of {', '.join(EXPORTABLE)} only"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{{out}}={str(out)!r} exists and is not empty; choose a new folder (an export never overwrites a run)",
            fields=("out",),
        )
    require_onnx()


def exported_info(run: Run, export: dict) -> dict:
    """The exported run's ``caveat.json``: the source's, less what belongs to the source model (``DROPPED``), with
    ``architecture`` and ``exported_from`` (source path, format, quantisation, opset and the export's checks)."""
    import onnx
    import onnxruntime

    info = {k: v for k, v in run.info.items() if k not in DROPPED}
    info["architecture"] = ARCHITECTURE
    info["exported_from"] = {"run": str(run.path.resolve()), "format": "onnx", **export}
    if run.info.get("ensemble"):
        info["exported_from"]["ensemble_member"] = 0
    info["versions"] = {**versions(), "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    info["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return info


def _bytes(folder: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(f"*{suffix}") if p.is_file())
