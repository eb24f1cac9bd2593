"""Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and Scalable Predictive
Uncertainty Estimation using Deep Ensembles"): N members trained by the same loop with different seeds.

Member 0 is the run directory itself (so everything that reads a run keeps working); members 1..N-1
live in ``RUN/members/<i>`` and are listed in caveat.json under ``ensemble``.
"""

from __future__ import annotations

from pathlib import Path

from caveat.config import RunConfig
from caveat.data.load import split_seed
from caveat.errors import ConfigError
from caveat.io import read_json, write_json_atomic
from caveat.models.rundir import RUN_FILE
from caveat.training.run import is_main_process, run_training

MEMBERS_DIR = "members"


def train_ensemble(config: RunConfig, out: str | Path, members: int, *, progress: bool = True) -> dict:
    """Train ``members`` runs with seeds ``seed + i`` on one data split (``data.split_seed``: member 0's), so no
    member trains on the examples member 0 carved for validation, calibration or test; returns each member's
    summary."""
    if members < 2:
        raise ConfigError(f"an ensemble needs at least 2 members. Got {members}.")
    out = Path(out)
    results = []
    shared = config.data.model_copy(update={"split_seed": split_seed(config)})  # member 0's carve, named
    for i in range(members):  # member 0 keeps its config as given: it is the run directory itself
        cfg = config if i == 0 else config.model_copy(update={"seed": config.seed + i, "data": shared})
        results.append(run_training(cfg, out if i == 0 else out / MEMBERS_DIR / str(i), progress=progress))
    if is_main_process():
        info = read_json(out / RUN_FILE)
        info["ensemble"] = {
            "members": [f"{MEMBERS_DIR}/{i}" for i in range(1, members)],
            "seeds": [config.seed + i for i in range(members)],
        }
        write_json_atomic(out / RUN_FILE, info)
    return {"run": str(out), "ensemble": members, "members": results}
