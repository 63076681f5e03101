import json

import pytest
import torch

import train
from envs.retina import Retina
from ram import compare
from ram.model import RAMConfig, RecurrentAttention
from ram.reports import first_reached
from ram.runs import lineage
from ram.soft import FCConfig, FullyConnected


def test_macs_of_a_tiny_fc_net_match_a_hand_count():
    net = FullyConnected(FCConfig(canvas_size=28, hidden=16, n_classes=10))
    macs = compare.count_macs(compare.forward_fn(net), torch.zeros(3, 28, 28, dtype=torch.uint8))
    assert macs == 28 * 28 * 16 + 16 * 16 + 16 * 10  # per image


def test_macs_of_a_tiny_ram_match_a_hand_count_and_do_not_grow_with_the_canvas():
    k, g, hg, hl, G, H, T = 2, 4, 8, 8, 16, 32, 3
    model = RecurrentAttention(RAMConfig(glimpse_shape=(k, g, g), hg_size=hg, hl_size=hl, g_size=G, hidden_size=H))
    fn = compare.forward_fn(model, retina=Retina(g=g, k=k), n_glimpses=T)
    per_step = k * g * g * hg + 2 * hl + hg * G + hl * G + H * H + G * H + H * 2  # glimpse, core, location
    # The first step's core has no product with h_0 = 0; baselines of the T - 1 choices; the classifier.
    expected = T * per_step - H * H + (T - 1) * H + H * 10
    for size in (28, 60, 200):
        assert compare.count_macs(fn, torch.zeros(2, size, size, dtype=torch.uint8)) == expected


def test_macs_of_a_tiny_lstm_ram_skip_the_product_with_the_zero_state():
    k, g, hg, hl, G, H, T = 2, 4, 8, 8, 16, 32, 3
    model = RecurrentAttention(RAMConfig(glimpse_shape=(k, g, g), hg_size=hg, hl_size=hl, g_size=G, hidden_size=H,
                                         core="lstm"))
    fn = compare.forward_fn(model, retina=Retina(g=g, k=k), n_glimpses=T)
    per_step = k * g * g * hg + 2 * hl + hg * G + hl * G + 4 * H * (G + H) + H * 2  # glimpse, LSTM gates, location
    expected = T * per_step - 4 * H * H + (T - 1) * H + H * 10  # no h_0 product at the first step
    assert compare.count_macs(fn, torch.zeros(2, 28, 28, dtype=torch.uint8)) == expected


def test_pixels_examined():
    assert compare.values_read(canvas_size=60) == 3600
    assert compare.values_read(canvas_size=60, retina=Retina(g=12, k=3), n_glimpses=6) == 6 * 3 * 144
    retina = Retina(g=12, k=3)
    # One glimpse at the centre of a 60-pixel canvas: its widest patch (48 x 48) covers the smaller two.
    assert compare.pixels_covered(torch.zeros(1, 1, 2), retina, 60) == 48 * 48
    # In a corner the widest patch is clipped to the canvas; two glimpses in opposite corners add up.
    corner = retina.boxes(torch.tensor([[-1.0, -1.0]]), 60)[0, -1]  # (x0, y0, x1, y1) of the widest patch
    inside = int((corner[2].clamp(0, 60) - corner[0].clamp(0, 60)) * (corner[3].clamp(0, 60) - corner[1].clamp(0, 60)))
    assert compare.pixels_covered(torch.tensor([[[-1.0, -1.0]]]), retina, 60) == inside < 48 * 48
    assert compare.pixels_covered(torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]]), retina, 60) == 2 * inside
    assert compare.pixels_covered(torch.tensor([[[0.0, 0.0], [0.0, 0.0]]]), retina, 60) == 48 * 48  # overlaps once


@pytest.mark.slow
def test_report_from_two_tiny_runs(mnist, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the repository: runs record the runs they started from relative to it
    common = ["--task", "mnist28", "--glimpses", "2", "--batch-size", "16", "--hidden-size", "32", "--samples", "32",
              "--eval-every", "16", "--eval-batch", "1000", "--mc-samples", "1", "--threads", "1", "--no-progress"]
    assert train.main([*common, "--run-dir", "results/ram"]) == 0
    assert train.main([*common, "--model", "soft", "--run-dir", str(tmp_path / "soft")]) == 0
    out = tmp_path / "cmp"
    for name in ("best.pt", "last.pt"):  # the RAM run as shipped in results/: results.json and agent.pt alone
        (tmp_path / "results" / "ram" / name).unlink()
    # A second RAM run, fine-tuned from the first as shipped (its agent.pt), named by an absolute path.
    assert train.main([*common, "--init", str(tmp_path / "results" / "ram"), "--run-dir", "results/ram2"]) == 0
    ram, ram2 = tmp_path / "results" / "ram", tmp_path / "results" / "ram2"
    assert json.loads((ram2 / "results.json").read_text())["init"]["checkpoint"] == "results/ram"
    assert json.loads((ram2 / "config.json").read_text())["args"]["init"] == "results/ram"
    assert train.main(["compare", str(ram), str(tmp_path / "soft"), "results/ram2",
                       "--out", str(out), "--canvases", "28,60", "--repeats", "1", "--threads", "1"]) == 0
    report = (out / "report.md").read_text()
    assert "| soft mnist28 T=2 |" in report
    # two runs of the same model are both named by their folders
    assert "| ram mnist28 T=2 (ram) |" in report and "| ram mnist28 T=2 (ram2) |" in report
    data = json.loads((out / "report.json").read_text())
    ram_row, soft_row, tuned_row = data["models"]
    # The fine-tuned run's minutes and curve include its starting run up to the checkpoint it started from.
    first, second = (json.loads((run / "results.json").read_text()) for run in (ram, ram2))
    at_checkpoint = [h["minutes"] for h in first["history"] if h["samples"] == first["samples"]]
    assert tuned_row["minutes"] == pytest.approx(at_checkpoint[0] + second["train_minutes"])
    assert "ram mnist28 T=2 (ram2) was fine-tuned from results/ram:" in report
    assert ram_row["values"] == 2 * 64 and soft_row["values"] == soft_row["pixels"] == 28 * 28
    assert 0 < ram_row["pixels"] <= 2 * 64  # mnist28: one 8x8 patch per glimpse, clipped to the canvas
    ram_macs = {r["canvas"]: r["macs"] for r in data["scaling"] if r["name"].startswith("ram")}
    soft_macs = {r["canvas"]: r["macs"] for r in data["scaling"] if r["name"].startswith("soft")}
    assert ram_macs[28] == ram_macs[60] and soft_macs[60] > 3 * soft_macs[28]  # RAM's cost is size-independent
    assert (out / "scaling.png").stat().st_size > 10000 and (out / "curves.png").stat().st_size > 10000
    assert data["robustness"] == []  # --shifts 0: not measured
    # Off the training distribution: mnist28's shifts are a 47-pixel canvas and 21-pixel digits. The FC net's first
    # layer is as wide as its canvas: it cannot read the larger one, and the report says so instead of failing.
    assert train.main([*common, "--model", "fc", "--run-dir", str(tmp_path / "fc")]) == 0
    assert train.main(["compare", str(ram), str(tmp_path / "fc"), "--out", str(tmp_path / "shifted"), "--shifts",
                       "40", "--canvases", "28", "--repeats", "1", "--threads", "1", "--mc-samples", "2"]) == 0
    rows = {r["name"]: r for r in json.loads((tmp_path / "shifted" / "report.json").read_text())["robustness"]}
    assert set(rows["fc mnist28"]["shifts"]) == {"canvas 47", "digits x0.75"}
    assert rows["fc mnist28"]["shifts"]["canvas 47"] is None and "sized to its training canvas" in (
        rows["fc mnist28"]["why"]["canvas 47"])
    ram_shift = rows["ram mnist28 T=2"]["shifts"]["canvas 47"]
    assert 0 <= ram_shift["greedy"] <= 100 and 0 <= ram_shift["mc"] <= 100 and ram_shift["greedy"] * 40 % 100 == 0
    report = (tmp_path / "shifted" / "report.md").read_text()
    assert "## Off the training distribution" in report and "| fc mnist28 | " in report and "n/a" in report
    assert (tmp_path / "shifted" / "robustness.png").exists() and (tmp_path / "shifted" / "shifts.png").exists()
    capsys.readouterr()
    assert train.main(["compare", str(tmp_path / "nope")]) == 2
    assert "no results.json" in capsys.readouterr().err
    assert train.main(["compare", str(ram), str(tmp_path / "soft"), str(ram) + "/"]) == 2
    assert "given twice" in capsys.readouterr().err


def test_lineage_joins_a_fine_tuned_run_to_the_runs_it_started_from():
    def point(samples, minutes, val_error):
        return {"samples": samples, "minutes": minutes, "val_error": val_error}

    # "a" evaluated at 100, 200, 300 images; its best (200 images, minute 2) started "b"; "b"'s last started "c".
    a = {"history": [point(100, 1.0, 50.0), point(200, 2.0, 40.0), point(300, 3.0, 45.0)], "train_minutes": 3.5}
    b = {"history": [point(100, 1.5, 30.0), point(200, 2.5, 25.0)], "train_minutes": 2.6,
         "init": {"checkpoint": "runs/a/agent.pt", "samples": 200}}
    c = {"history": [point(50, 0.5, 20.0)], "train_minutes": 0.7,
         "init": {"checkpoint": "runs/b/last.pt", "samples": 400}}
    found = {"runs/a/agent.pt": a, "runs/b/last.pt": b}
    assert lineage(a, found.get) == (a["history"], 3.5, [])
    curve, minutes, chain = lineage(c, found.get)
    # a up to its checkpoint (not its later point at 300), then b from minute 2, then c from b's last point.
    assert curve == [point(100, 1.0, 50.0), point(200, 2.0, 40.0), point(300, 3.5, 30.0), point(400, 4.5, 25.0),
                     point(450, 5.0, 20.0)]
    assert minutes == pytest.approx(2.0 + 2.5 + 0.7) and chain == ["runs/b/last.pt", "runs/a/agent.pt"]
    # A starting run that is not at hand: samples still count from the checkpoint, minutes cover this run only.
    curve, minutes, chain = lineage(b, {}.get)
    assert curve == [point(300, 1.5, 30.0), point(400, 2.5, 25.0)] and minutes == 2.6
    assert chain == ["runs/a/agent.pt (not at hand)"]
    # Unless the run recorded the minutes behind its start (init_record): then they count, and shift its curve.
    recorded_b = {**b, "init": {**b["init"], "minutes": 2.0}}
    curve, minutes, chain = lineage(recorded_b, {}.get)
    assert curve == [point(300, 3.5, 30.0), point(400, 4.5, 25.0)] and minutes == pytest.approx(4.6)
    assert chain == ["runs/a/agent.pt (not at hand; the minutes it recorded)"]
    # A run whose starting run is itself (a results.json copied over its parent's) ends the chain, no loop.
    loop = {**b, "init": {"checkpoint": "results/b/agent.pt", "samples": 200}}
    assert lineage(loop, lambda checkpoint: loop)[2] == ["results/b/agent.pt", "results/b/agent.pt (not at hand)"]


def test_first_reached_is_the_first_point_at_or_below_the_target():
    points = [{"minutes": 1.0, "greedy_error": 5.0, "mc_error": 4.0},
              {"minutes": 2.0, "greedy_error": 4.08, "mc_error": 3.0}, {"minutes": 3.0, "greedy_error": 3.9}]
    assert first_reached(points, "greedy_error", 4.08) == {**points[1], "after_minutes": 1.0}
    assert first_reached(points, "mc_error", 4.08) == {**points[0], "after_minutes": None}
    assert first_reached(points, "greedy_error", 3.0) is None


def test_lineage_leaves_a_starting_run_of_another_task_off_the_curve():
    """An addition100 run started from a pairs100 agent: the pairs images and minutes count, their errors (of
    another task) are not drawn as the sum's."""
    def point(samples, minutes, val_error):
        return {"samples": samples, "minutes": minutes, "val_error": val_error}

    pairs = {"task": {"name": "pairs100", "kind": "sequence"}, "train_minutes": 2.5,
             "history": [point(100, 1.0, 50.0), point(200, 2.0, 40.0)]}
    sums = {"task": {"name": "addition100", "kind": "sum"}, "train_minutes": 1.2, "history": [point(100, 1.0, 30.0)],
            "init": {"checkpoint": "runs/pairs/agent.pt", "samples": 200}}
    curve, minutes, chain = lineage(sums, {"runs/pairs/agent.pt": pairs}.get)
    assert curve == [point(300, 3.0, 30.0)] and minutes == pytest.approx(3.2)
    assert chain == ["runs/pairs/agent.pt (pairs100: not drawn)"]
    # A run written before results.json recorded the kind (or the task) is the same task as its classify child.
    old = {**pairs, "task": {"name": "addition100"}}
    assert lineage({**sums, "task": {"name": "addition100", "kind": "classify"}},
                   {"runs/pairs/agent.pt": old}.get)[2] == ["runs/pairs/agent.pt"]
    assert lineage(sums, {"runs/pairs/agent.pt": {**pairs, "task": None}}.get)[2] == ["runs/pairs/agent.pt"]
