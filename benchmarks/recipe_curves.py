"""The README's figure: test error against training minutes of the recipes' runs, beside the paper's numbers.

Reads the ``test_curve.json`` that ``python train.py curve RUN`` wrote into each shipped run of ``results/`` and
draws them, one panel per task, into ``results/recipe_curves.png`` (a report over committed files: it measures
nothing itself):

    python benchmarks/recipe_curves.py
    python benchmarks/recipe_curves.py --out /tmp/curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envs.tasks import PAPER_ERRORS  # noqa: E402
from ram import checkpoint  # noqa: E402
from ram.plots import recipe_curves_figure  # noqa: E402

# Panel title -> ((task, glimpses) of the paper's number, {label: run folder under results/ with a test_curve.json}).
PANELS = {
    "cluttered60, 6 glimpses": (("cluttered60", 6), {"10M images, seed 0": "cluttered60-6g-s0",
                                                     "10M images, seed 1": "cluttered60-6g-s1",
                                                     "--no-policy-core, seed 0": "archive/cluttered60-6g-recipe-s0",
                                                     "--no-policy-core, seed 1": "archive/cluttered60-6g-recipe-s1"}),
    "cluttered100, 8 glimpses": (("cluttered100", 8), {
        "recipe, seed 0": "cluttered100-8g-s0",
        "--no-policy-core, seed 0": "archive/cluttered100-8g-recipe-s0",
        "LSTM chain (2 runs)": "archive/cluttered100-8g-lstm-center-restart"}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"), help="the folder of the shipped runs")
    parser.add_argument("--out", default=str(ROOT / "results" / "recipe_curves.png"), help="the figure to write")
    opts = parser.parse_args(argv)
    panels = {}
    for title, (key, runs) in PANELS.items():
        curves = {}
        for label, name in runs.items():
            path = Path(opts.results) / name / "test_curve.json"
            if path.exists():
                curves[label] = json.loads(path.read_text())["points"]
            else:
                print(f"skipped {path}: missing", file=sys.stderr)
        if curves:
            panels[title] = (curves, PAPER_ERRORS[key])
    if not panels:
        print(f"recipe_curves.py: no test_curve.json under {opts.results}", file=sys.stderr)
        return 1
    checkpoint.write_figure(recipe_curves_figure(panels), Path(opts.out))
    print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
