"""ONNX export of a ``CaveatModel`` and ``OnnxClassifier``, its ONNX Runtime twin behind the same engine contract.

An exported run stores ``model/``: the tokenizer files, ``head.safetensors`` (the float32 classification head,
which last-layer Laplace reads) and ``model.onnx`` (written last), a graph with inputs ``input_ids`` and
``attention_mask`` (B, T) and outputs ``logits`` (B, C) / (B, T, C) and ``features`` (B, D) pooled / (B, T, D) per
token, dynamic in B and T. ``models.rundir`` registers ``load_onnx`` for ``"architecture": "onnx"``; this module
never imports ``rundir``.

What an ONNX run cannot do: there is no dropout in the graph (it is exported in eval mode) and no gradient, so
``train(True)`` (MC dropout, training) raises, and ``encoder`` (read by integrated gradients, by the input-embedding
neighbours of word-substitution attacks and by efficient MC dropout) raises ``NotExportedError``; both name the
source run, where these work. Deterministic prediction, calibration (temperature, conformal, Mahalanobis, Laplace,
risk control), decisions, evaluation, perturbation explainers and character-level attacks work as on any run.

onnx and onnxruntime are optional (``pip install 'caveat[onnx]'``) and imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from caveat.errors import ConfigError
from caveat.models.classifier import ModelOutput
from caveat.types import Task

ARCHITECTURE = "onnx"  # caveat.json "architecture" of an exported run
ONNX_FILE = "model.onnx"  # in model/, written last: its presence means the export is complete
MODEL_DIR, HEAD_FILE = "model", "head.safetensors"  # the run-directory names of models.rundir (tested equal)
DEFAULT_OPSET = 17  # LayerNormalization is an ONNX op from opset 17 on
QUANTIZE = ("int8",)
INPUTS, OUTPUTS = ("input_ids", "attention_mask"), ("logits", "features")
PARITY_ATOL = 1e-4  # largest |ONNX - PyTorch| of a float32 logit or feature that export accepts
INSTALL = "pip install 'caveat[onnx]'"


class NotExportedError(ConfigError, AttributeError):
    """An ONNX run lacks a part of the PyTorch model: a ConfigError (the faces show it as a request to change, e.g. the
    service's 422), and an AttributeError, so that ``hasattr`` probes stay False."""


def _require(name: str):
    """Import onnx / onnxruntime, or say how to install them."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"ONNX export and ONNX runs need the package {name}; install it: {INSTALL}") from None


def require_onnx() -> None:
    """Fail early, with the install command, when onnx or onnxruntime is missing."""
    _require("onnx")
    _require("onnxruntime")


def check_quantize(quantize: str | None) -> None:
    """``quantize`` is None (float32) or one of ``QUANTIZE``."""
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"{{quantize}}={quantize!r}: use {', '.join(QUANTIZE)} or leave it out", fields=("quantize",))


class _Forward(nn.Module):
    """The model's deterministic forward as a tuple ``(logits, features)``: what the graph computes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.logits, out.features


def sample_batch(vocab_size: int, lengths: list[int], *, pad_id: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids right-padded to the longest of ``lengths``, as the ``Collator`` pads: (B, T) tensors."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(0, vocab_size, (len(lengths), width), generator=generator)  # (B, T)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()  # (B, T)
    return {"input_ids": torch.where(mask.bool(), ids, torch.full_like(ids, pad_id)), "attention_mask": mask}


def _dynamic_axes(task: Task) -> dict[str, dict[int, str]]:
    per_token = {0: "batch", 1: "sequence"}
    pooled = per_token if Task(task) is Task.TOKEN_CLASSIFICATION else {0: "batch"}
    return {"input_ids": per_token, "attention_mask": per_token, "logits": pooled, "features": pooled}


def export_onnx(
    model: nn.Module, tokenizer, path: str | Path, task: Task, *, opset: int = DEFAULT_OPSET, atol: float = PARITY_ATOL
) -> dict:
    """Export ``model``'s deterministic forward to the ONNX file ``path`` and check it.

    The graph takes ``input_ids`` and ``attention_mask`` (B, T), int64, and returns ``logits`` and ``features``
    (pooled (B, D) for sequence tasks, (B, T, D) for token tasks), with dynamic batch and sequence axes. It is
    traced by the TorchScript exporter (``dynamo=False``: no onnxscript needed) on a padded batch, in eval mode.
    Tracing records one path through the code, so the graph is then checked twice: ``onnx.checker``, and a padded
    batch of another shape run by ONNX Runtime and by PyTorch, whose logits and features must agree within ``atol``
    (else ConfigError: the backbone has a shape-dependent branch the tracer froze). Returns
    ``{"opset", "parity_max_abs"}``.
    """
    onnx = _require("onnx")
    path = Path(path)
    vocab = model.encoder.get_input_embeddings().num_embeddings
    pad = tokenizer.pad_token_id or 0
    traced = _Forward(model).eval()  # eval: the exporter would otherwise trace dropout into the graph
    example = sample_batch(vocab, [9, 6], pad_id=pad, seed=0)
    with warnings.catch_warnings():
        # the legacy exporter's deprecation notice and the tracer's warnings about shape-dependent Python values;
        # what they warn of is checked below by running the graph on another shape
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                traced,
                (example["input_ids"], example["attention_mask"]),
                str(path),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_axes=_dynamic_axes(task),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    onnx.checker.check_model(str(path))
    check = sample_batch(vocab, [13, 4, 11, 1], pad_id=pad, seed=1)
    diff = compare_outputs(traced, open_session(path, threads=1), check)
    if diff > atol:
        raise ConfigError(
            f"the exported graph differs from PyTorch by {diff:.3g} (> {atol:g}) on a padded batch of another shape: "
            "the backbone has a shape-dependent branch that tracing froze; this backbone cannot be exported yet"
        )
    return {"opset": opset, "parity_max_abs": diff}


@torch.no_grad()
def compare_outputs(traced: nn.Module, session, batch: dict[str, torch.Tensor]) -> float:
    """Largest |ONNX Runtime - PyTorch| over the logits and features of ``batch``."""
    expected = [t.float().numpy() for t in traced(batch["input_ids"], batch["attention_mask"])]
    got = session.run(list(OUTPUTS), {k: batch[k].numpy().astype(np.int64) for k in INPUTS})
    return float(max(np.abs(a - b).max() for a, b in zip(expected, got)))


def head_nodes(graph) -> list[str]:
    """Names of the nodes of the classification head: the one that outputs ``logits`` and, when the Linear was
    exported as MatMul + Add (token tasks), the MatMul before it. A sequence task's head is one Gemm, which
    ``quantize_dynamic`` rewrites as MatMul + Add named after it: those names are listed too."""
    producer = {out: node for node in graph.node for out in node.output}
    last = producer["logits"]
    names = [last.name]
    if last.op_type == "Gemm":
        names += [f"{last.name}_MatMul", f"{last.name}_Add"]
    if last.op_type == "Add":
        names += [producer[i].name for i in last.input if i in producer and producer[i].op_type == "MatMul"]
    return names


def quantize_int8(src: str | Path, dst: str | Path) -> None:
    """Dynamic int8 quantisation of the graph ``src`` into ``dst`` (ONNX Runtime's ``quantize_dynamic``).

    Quantised: the weights of every ``MatMul`` (attention projections and feed-forward layers: QInt8 with one
    scale per output channel; they run as ``MatMulInteger`` on activations quantised to uint8 per batch at run
    time) and the word-embedding table read by ``Gather`` (stored int8, dequantised on lookup). Left in float32:
    LayerNorm, Softmax, GELU, the pooling and the classification head, so that the exported ``head.safetensors``
    (read by last-layer Laplace) is exactly the head the graph applies to its features. The graph is first
    pre-processed (ONNX shape inference and ONNX Runtime's basic optimisations; the symbolic shape pass is
    skipped: it cannot follow the dynamic sequence axis through the position-embedding slice).
    """
    onnx = _require("onnx")
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    prepared = dst.with_name(f".{dst.name}.pre.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # the quantiser logs a line per tensor at INFO, on the root logger
    try:
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        head = head_nodes(onnx.load(str(prepared), load_external_data=False).graph)
        quantize_dynamic(
            str(prepared),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gather"],
            per_channel=True,  # MiniLM sentence features: cosine 0.99 to float32 (0.96 with one scale per tensor)
            nodes_to_exclude=head,
        )
    finally:
        root.setLevel(level)
        prepared.unlink(missing_ok=True)
    onnx.checker.check_model(str(dst))


def open_session(path: str | Path, *, threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimisation on and ``threads`` intra-op threads (default
    ``torch.get_num_threads()``, so ``caveat serve --inference-threads`` and ``torch.set_num_threads`` apply to
    ONNX runs too). Idle threads do not spin: on a shared machine (and beside the service's event loop) spinning
    threads take the CPU others need."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """An exported graph served by ONNX Runtime, called like a ``CaveatModel`` in eval mode.

    Parameters
    ----------
    session : an ``onnxruntime.InferenceSession`` of a graph written by ``export_onnx``.
    head : the float32 ``Linear(D, C)`` the graph ends with (``head.safetensors``), for last-layer Laplace.
    task : sequence or token classification.
    source : the run it was exported from, named in the errors of what only that run can do.
    """

    training = False  # no dropout in the graph: always the deterministic model

    def __init__(self, session, head: nn.Linear, *, task: Task, source: str | None = None) -> None:
        self.session, self.head, self.task, self.source = session, head.eval(), Task(task), source

    def __repr__(self) -> str:
        return f"OnnxClassifier(task={self.task.value}, exported_from={self.source!r})"

    def _use_source(self) -> str:
        return f"use the source run ({self.source})" if self.source else "use the run it was exported from"

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **options) -> ModelOutput:
        """``input_ids``, ``attention_mask`` (B, T) -> ``ModelOutput`` with logits (B, C) or (B, T, C) and features
        (B, D) or (B, T, D), torch tensors on the CPU. Training options (``delta``, ``mixup``, ``keep_embeddings``)
        are refused: the graph has neither gradients nor the word embeddings."""
        asked = sorted(k for k, v in options.items() if v is not None and v is not False)
        if asked:
            raise ConfigError(
                f"an ONNX run predicts only; {', '.join(asked)} need the PyTorch model: {self._use_source()}"
            )
        feeds = {
            "input_ids": np.ascontiguousarray(input_ids.cpu().numpy(), dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask.cpu().numpy(), dtype=np.int64),
        }
        logits, features = self.session.run(list(OUTPUTS), feeds)
        return ModelOutput(logits=torch.from_numpy(logits), features=torch.from_numpy(features))

    forward = __call__

    def eval(self) -> OnnxClassifier:
        """A no-op: the graph is always in eval mode."""
        return self

    def train(self, mode: bool = True) -> OnnxClassifier:
        """``train(False)`` is a no-op; ``train(True)`` raises: MC dropout and training need dropout and gradients,
        and the graph was exported in eval mode without them."""
        if mode:
            raise ConfigError(
                "MC dropout and training need the PyTorch model (the ONNX graph has no dropout and no gradients): "
                f"predict deterministically here (samples=1, method=deterministic), or {self._use_source()}"
            )
        return self

    @property
    def encoder(self):
        """Not exported: raises ``NotExportedError`` naming what needs it and the source run."""
        raise NotExportedError(
            "an ONNX run has no PyTorch encoder: integrated gradients, the embedding neighbours of word-substitution "
            f"attacks and efficient MC dropout need it; {self._use_source()} for those (occlusion, shap and lime "
            "explanations and character-level attacks work on the ONNX run)"
        )


def write_onnx_model(
    model: nn.Module,
    tokenizer,
    model_dir: str | Path,
    task: Task,
    *,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
) -> dict:
    """Write an exported ``model/`` folder: tokenizer files, ``head.safetensors`` and ``model.onnx`` (last; int8
    with ``quantize="int8"``). Returns what ``export_onnx`` returns plus, when quantised, the int8 graph's largest
    logit difference from PyTorch and its argmax agreement on a random padded batch (a smoke check; judge the
    accuracy change on real data after calibrating)."""
    from safetensors.torch import save_file

    check_quantize(quantize)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(model_dir)
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in model.head.state_dict().items()},
        str(model_dir / HEAD_FILE),
    )
    final = model_dir / ONNX_FILE
    if quantize is None:
        return {"quantize": None, **export_onnx(model, tokenizer, final, task, opset=opset)}
    fp32 = model_dir / f".{ONNX_FILE}.fp32"
    try:
        summary = export_onnx(model, tokenizer, fp32, task, opset=opset)
        quantize_int8(fp32, final)
    finally:
        fp32.unlink(missing_ok=True)
    return {"quantize": quantize, **summary, **_int8_check(model, tokenizer, final)}


@torch.no_grad()
def _int8_check(model: nn.Module, tokenizer, path: Path) -> dict:
    """The int8 graph against the float32 PyTorch model on a random padded batch: largest logit difference and
    argmax agreement (over rows, or over every token position for token tasks)."""
    vocab = model.encoder.get_input_embeddings().num_embeddings
    check = sample_batch(vocab, [13, 4, 11, 1, 8, 8, 2, 13], pad_id=tokenizer.pad_token_id or 0, seed=2)
    expected = model.eval()(**check).logits.float().numpy()
    got = open_session(path, threads=1).run(["logits"], {k: check[k].numpy() for k in INPUTS})[0]
    return {
        "int8_max_abs_logit": float(np.abs(got - expected).max()),
        "int8_argmax_agreement": float((got.argmax(-1) == expected.argmax(-1)).mean()),
    }


def load_head(path: str | Path) -> nn.Linear:
    """The float32 ``Linear(D, C)`` stored in ``head.safetensors``."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    out_features, in_features = state["weight"].shape
    head = nn.Linear(in_features, out_features)
    head.load_state_dict(state)
    return head.eval()


def load_onnx(run, *, threads: int | None = None) -> tuple:
    """``(tokenizer, OnnxClassifier)`` of an exported run (a ``models.rundir.Run``: ``path``, ``task``, ``info``)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model_dir = Path(run.path) / MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    source = (run.info.get("exported_from") or {}).get("run")
    session = open_session(model_dir / ONNX_FILE, threads=threads)
    return tokenizer, OnnxClassifier(session, load_head(model_dir / HEAD_FILE), task=run.task, source=source)
