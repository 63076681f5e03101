"""benchmarks/val_test_gap.py: its report on a tiny trained agent adds up, and bad input is one line."""

import json
import re
import sys
from pathlib import Path

import numpy as np

import train

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import val_test_gap  # noqa: E402

TINY = ["--task", "translated60", "--canvas-size", "24", "--glimpse-size", "6", "--scales", "2", "--glimpses", "2",
        "--samples", "128", "--batch-size", "64", "--eval-every", "128", "--eval-batch", "8", "--mc-samples", "2",
        "--threads", "1", "--no-progress", "--start", "center"]


def test_the_report_reproduces_the_fixed_sets_errors_and_splits_the_test_errors(tmp_path, capsys):
    rng = np.random.default_rng(0)  # 400 noisy 12-pixel images: small fixed sets, so a quick report
    np.savez(tmp_path / "tiny.npz", images=(rng.random((400, 12, 12)) * 255).astype(np.uint8),
             labels=np.arange(400) % 4)
    run = tmp_path / "run"
    assert train.main([*TINY, "--dataset", str(tmp_path / "tiny.npz"), "--run-dir", str(run)]) == 0
    expected = json.loads((run / "results.json").read_text())
    capsys.readouterr()
    assert val_test_gap.main([str(run), "--sets", "2"]) == 0
    out = capsys.readouterr().out
    val, test = map(float, re.search(r"validation set ([\d.]+)%, fixed test set ([\d.]+)%", out).groups())
    # the same greedy errors as the run's own evaluation (through the env)
    assert abs(val - expected["val_error"]) < 0.006 and abs(test - expected["test"]["greedy_error"]) < 0.006
    n, found, never = map(int, re.search(r"test errors: (\d+); .* misread: (\d+) \(.*never found: (\d+)", out).groups())
    assert n == found + never > 0
    assert re.search(r"on 2 other canvas sets: mean [\d.]+%", out) and "training digits" in out


def test_a_missing_run_is_one_line_and_a_non_zero_exit(tmp_path, capsys):
    assert val_test_gap.main([str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("val_test_gap.py: cannot load an agent") and err.count("\n") == 1
