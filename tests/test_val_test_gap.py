"""benchmarks/val_test_gap.py: its report on a tiny trained agent adds up, and bad input is one line."""

import json
import re
import sys
from pathlib import Path

import numpy as np

import train

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import val_test_gap  # noqa: E402
from val_test_gap import found  # noqa: E402

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
    n, seen, never = map(int, re.search(r"test errors: (\d+); .* misread: (\d+) \(.*never found: (\d+)", out).groups())
    assert n == round(expected["test"]["greedy_error"] * expected["test"]["n"] / 100) > 0  # the errors it split
    assert seen + never == n
    assert re.search(r"on 2 other canvas sets: mean [\d.]+%", out) and "training digits" in out


def test_found_measures_from_the_objects_centre_in_grid_lines():
    # On a 60-pixel canvas the location 0 is grid line 30; a 28-pixel digit whose top-left pixel is at x = 16 is
    # centred there (16 + 14), one at x = 22 is 6 pixels off (found at radius 6), one at x = 23 is 7 (not found).
    centres = np.array([[[30, 30]], [[30, 30]], [[30, 30]]])
    corners = np.array([[16, 16], [22, 16], [23, 16]])
    assert found(centres, corners, 28, 6.0).tolist() == [True, True, False]
    # the nearest of several glimpses counts; distance is Euclidean (5 along x and 5 along y: 7.07 pixels)
    many = np.array([[[0, 0], [35, 35]], [[0, 0], [35, 35]]])
    assert found(many, np.array([[16, 16], [21, 21]]), 28, 7.0).tolist() == [False, True]


def test_a_missing_run_or_a_random_start_is_one_line_and_a_non_zero_exit(tmp_path, capsys):
    assert val_test_gap.main([str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("val_test_gap.py: cannot load a run") and err.count("\n") == 1
    # mnist28's agent starts at a random location: its greedy errors would not be train.py evaluate's
    assert val_test_gap.main(["results/mnist28-6g-s0"]) == 1
    err = capsys.readouterr().err
    assert "starts at a random location" in err and err.count("\n") == 1
