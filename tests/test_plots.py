import json
import sys
from pathlib import Path

import numpy as np
import pytest

from envs.retina import Retina
from ram.plots import attention_figure, figure_to_array, matrix_figure, trajectory_figure


def test_trajectory_figure_draws_every_scale_of_every_glimpse():
    images = np.zeros((2, 60, 60), np.uint8)
    locations = np.array([[[0, 0], [0.5, 0.5], [-0.5, 0.2]]] * 2, np.float32)
    fig = trajectory_figure(images, locations, np.array([1, 2]), np.array([1, 3]), Retina(g=12, k=3))
    axes = fig.axes
    assert len(axes) == 2 and len(axes[0].patches) == 3 * 3  # 3 glimpses x 3 scales
    assert axes[1].title.get_color() == "red" and axes[0].title.get_color() == "black"  # wrong prediction in red
    first = trajectory_figure(images, locations, np.array([1, 2]), np.array([1, 3]), Retina(g=12, k=3), steps=1)
    assert len(first.axes[0].patches) == 3
    assert figure_to_array(fig).ndim == 3


def test_trajectory_figure_draws_given_read_extents_centred_on_the_locations():
    images = np.zeros((1, 60, 60), np.uint8)
    locations = np.array([[[0, 0], [0.5, -0.5]]], np.float32)  # pixels (30, 30) and (45, 15)
    sides = np.array([[[10.0, 40.0], [6.0, 24.0]]])  # (N, T, k): two scales
    fig = trajectory_figure(images, locations, np.array([1]), np.array([1]), None, sides=sides)
    got = sorted((p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in fig.axes[0].patches)
    assert got == sorted([(25, 25, 10, 10), (10, 10, 40, 40), (42, 12, 6, 6), (33, 3, 24, 24)])


def test_attention_figure_is_images_by_steps_with_colour_bars():
    rng = np.random.default_rng(0)
    weights = rng.random((3, 4, 2, 25))
    weights /= weights.sum(-1, keepdims=True)
    fig = attention_figure(np.zeros((3, 20, 20), np.uint8), weights, np.array([0, 1, 2]), np.array([0, 1, 1]))
    heatmaps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(heatmaps) == 3 * 4 and len(colour_bars) == 3
    assert all(len(ax.images) == 2 for ax in heatmaps)  # canvas and weights
    with pytest.raises(ValueError, match="square grid"):
        attention_figure(np.zeros((1, 20, 20), np.uint8), np.ones((1, 2, 1, 24)) / 24, np.zeros(1), np.zeros(1))


def test_matrix_figure():
    fig = matrix_figure(np.eye(3), query_labels=["a", "b", "c"], key_labels=["x", "y", "z"])
    ax = [a for a in fig.axes if a.get_label() != "<colorbar>"][0]
    assert ax.get_xlabel() == "keys" and [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_recipe_curves_figure_has_a_panel_per_task_with_the_paper_drawn(tmp_path, capsys):

    from ram.plots import recipe_curves_figure

    points = [{"minutes": 1.0, "greedy_error": 9.0, "mc_error": 6.0}, {"minutes": 2.0, "greedy_error": 5.0,
                                                                       "mc_error": 3.0}]
    fig = recipe_curves_figure({"a": ({"s0": points, "s1": points}, 4.08), "b": ({"s0": points[:1]}, 8.11)})
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 * 2 + 1  # greedy and MC of each run, the paper's level
    assert list(lines[0].get_ydata()) == [9.0, 5.0] and list(lines[-1].get_ydata()) == [4.08, 4.08]
    # The script draws the shipped curves it finds, and says so when it finds none.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import recipe_curves

    assert recipe_curves.main(["--results", str(tmp_path), "--out", str(tmp_path / "f.png")]) == 1
    run = tmp_path / next(iter(next(iter(recipe_curves.PANELS.values()))[1].values()))
    run.mkdir()
    (run / "test_curve.json").write_text(json.dumps({"points": points}))
    assert recipe_curves.main(["--results", str(tmp_path), "--out", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_the_sb3_curves_script_draws_ram_beside_the_baselines(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import sb3_curves

    ram, ppo = tmp_path / "ram", tmp_path / "ppo"
    ram.mkdir()
    ppo.mkdir()
    (ram / "results.json").write_text(json.dumps({"task": {"n_glimpses": 23}, "history": [
        {"samples": 100, "minutes": 1.0, "val_error": 90.0}, {"samples": 200, "minutes": 2.0, "val_error": 20.0}]}))
    (ppo / "config.json").write_text(json.dumps({"algo": "PPO", "args": {"mode": "grid", "grid": 1, "frame_stack": 4}}))
    (ppo / "curve.json").write_text(json.dumps({"curve": [{"steps": 1000, "train_minutes": 0.5, "val_score": 9.0}]}))
    assert sb3_curves.sb3_points(ppo)[0] == "PPO, grid (the centre), 4 stacked"
    label, points = sb3_curves.ram_points(ram)
    assert points[1] == {"steps": 4600, "train_minutes": 2.0, "val_score": 80.0}  # 200 games of 23 steps
    fig = sb3_curves.curves_figure({label: points, "PPO, grid": sb3_curves.sb3_points(ppo)[1]}, score="catch rate",
                                   chance=8.0)
    assert [len(ax.get_lines()) for ax in fig.axes] == [3, 3]  # two runs and the random player, in each panel
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [2300, 4600]
    out = tmp_path / "c.png"
    assert sb3_curves.main(["--ram", str(ram), "--runs", str(ppo), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert sb3_curves.main(["--runs", str(tmp_path / "none"), "--out", str(out)]) == 2


def test_figures_are_written_as_palette_pngs_that_keep_their_colours(tmp_path):
    """write_figure keeps results/ small with a 256-colour palette; a plot's few colours come through unchanged."""
    from matplotlib.figure import Figure
    from PIL import Image

    from ram import checkpoint

    fig = Figure(figsize=(2, 2))
    ax = fig.add_subplot()
    ax.axis("off")
    ax.fill_between([0, 1], 0, 1, color="#1f77b4")  # tab10's first colour filling the axes
    fig.subplots_adjust(0, 0, 1, 1)
    checkpoint.write_figure(fig, tmp_path / "f.png", dpi=50)
    image = Image.open(tmp_path / "f.png")
    assert image.mode == "P" and len(image.getcolors()) <= 256
    assert image.convert("RGB").getpixel((50, 50)) == (0x1F, 0x77, 0xB4)
