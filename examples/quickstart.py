"""Quickstart: train, calibrate, predict with decisions, evaluate, explain and report, in Python.

    python examples/quickstart.py                       # the shipped intents sample, the default backbone
    python examples/quickstart.py --out runs/quick --set train.epochs=1

Every call here has a command-line twin (caveat train / calibrate / predict / evaluate / explain / report)
that runs the same library function; the rows printed below are the ones ``caveat predict`` prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import caveat

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> caveat.Model:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/quickstart", help="run directory to write")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    args = parser.parse_args(argv)

    # 1. fine-tune (and score validation and test), as `caveat train examples/intents.yaml`
    model = caveat.train(
        HERE / "intents.yaml", out=args.out, overrides=[f"data.root={HERE / 'data'}", *args.overrides], progress=False
    )
    # 2. calibrate on the calibration split: temperature, conformal sets, a risk-bounded abstention threshold that
    #    also covers 10% out-of-scope traffic (the oos_validation set)
    model.calibrate(ood=["oos_validation"], ood_rate=0.1, target_risk=0.05)
    # 3. predict: every row carries its caveats
    out = model.predict(["where is my parcel, it was due yesterday", "what's the weather on mars"])
    for row in out:
        print(f"{row.text!r}: {row.label} ({row.probability:.2f}) -> {row.decision}: {row.reason}")
    print("arrays one attribute away:", out.probs.shape)  # (M, N, C)
    print(json.dumps(out.to_records()[0], indent=2)[:400])  # exactly what `caveat predict` prints
    # 4. evaluate with out-of-scope inputs; 5. explain what made the model unsure; 6. the HTML report
    metrics = model.evaluate("test", ood=["oos"])
    print(f"accuracy {metrics['accuracy']:.3f}, ECE {metrics['ece']:.3f} -> {metrics['calibrated']['ece']:.3f}")
    attribution = model.explain("where is my parcel, it was due yesterday", method="occlusion", target="uncertainty")
    print(
        "words behind the uncertainty:",
        [(w["word"], round(w["attribution"], 3)) for w in attribution.to_dict()["words"]],
    )
    print("report:", model.report("test", ood=["oos"]))
    return model


if __name__ == "__main__":
    main()
