"""benchmarks/benches.py: one registry names every bench, make bench's default list and the unknown-name error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.benches import BENCHES, WORK, Context, bench, default_names, unknown
from benchmarks.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def test_the_tasks_come_first_and_the_long_benches_are_not_default():
    names = list(BENCHES)
    assert names[: len(TASKS)] == list(TASKS)  # the other benches reuse the task runs
    assert names.index("clinc150") < names.index("uncertainty") < names.index("onnx")
    for long in ("service_fire", "lora_clinc150", "laplace_lora_clinc150", "robust_transfer", "cr_target"):
        assert long in BENCHES and long not in default_names()
    assert default_names() == [n for n in names if BENCHES[n].default]


def test_unknown_names_are_all_reported_with_every_known_one():
    assert unknown(["clinc150", "certify"]) is None
    message = unknown(["clinc150", "nope", "certfy"])
    assert message.startswith("unknown benchmark 'nope', 'certfy'; choose from clinc150, ")
    assert all(name in message for name in BENCHES)


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="benchmark 'certify' is registered twice"):
        bench("certify")(lambda c: {})


def test_context_picks_the_quick_settings_and_folder():
    quick, full = Context(Path("/data"), quick=True), Context(Path("/data"))
    assert (quick.work, full.work) == (WORK / "quick", WORK)
    assert (quick.pick(20, 500), full.pick(20, 500)) == (20, 500)


def test_run_refuses_an_unknown_name_before_running_anything():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--only", "clinc150,nope"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 1 and "unknown benchmark 'nope'; choose from" in out.stderr
    assert out.stdout == ""  # clinc150, named first, did not run
