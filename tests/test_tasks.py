import hashlib

import numpy as np
import pytest

from envs.mnist import MNIST
from envs.tasks import TASKS, Task, compose, fixed, get_task, integers, paper_error, sample, shifts


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# The fixed test sets, pinned: any change to the generator, the seeds or the data breaks these on purpose.
# (The val sets are pinned the same way below.) Sensor fields do not enter: only the canvas geometry does.
TEST_SET_SHA256 = {
    "mnist28": "a0863a96c44e5666",
    "translated60": "66054b8c234fa879",
    "cluttered60": "6ef7078f80672b42",
    "cluttered100": "4422fb00bac4256c",
}
VAL_SET_SHA256 = {
    "mnist28": "61640d2a6035ca5e",
    "translated60": "20ae3f48fe682517",
    "cluttered60": "3d5625716879b52d",
    "cluttered100": "a2ba603a28eab44b",
}


@pytest.mark.parametrize("name", list(TASKS))
def test_fixed_test_set_is_pinned(mnist, name):
    test = fixed(mnist, TASKS[name], "test")
    assert test.images.shape == (10000, TASKS[name].canvas_size, TASKS[name].canvas_size)
    np.testing.assert_array_equal(test.labels, mnist.test_labels)  # canvas i shows test digit i
    assert digest(test.images, test.labels) == TEST_SET_SHA256[name]
    if name == "mnist28":
        np.testing.assert_array_equal(test.images, mnist.test_images)  # the digit as is


@pytest.mark.parametrize("name", list(TASKS))
def test_fixed_val_set_is_pinned(mnist, name):
    val = fixed(mnist, TASKS[name], "val")
    assert len(val.images) == 5000
    np.testing.assert_array_equal(val.labels, mnist.train_labels[55000:])
    assert digest(val.images, val.labels) == VAL_SET_SHA256[name]


def test_fixed_ranges_agree_with_the_whole_set(tiny_mnist):
    task = get_task("cluttered60")
    whole = fixed(tiny_mnist, task, "test")
    part = fixed(tiny_mnist, task, "test", 7, 31)
    np.testing.assert_array_equal(part.images, whole.images[7:31])
    assert fixed(tiny_mnist, task.with_(glimpse_size=8, n_scales=2), "test").images.tobytes() == whole.images.tobytes()
    with pytest.raises(ValueError, match="outside"):
        fixed(tiny_mnist, task, "test", 0, 51)


def constant_digits(values: list[int]) -> MNIST:
    digits = np.stack([np.full((28, 28), v, np.uint8) for v in values])
    labels = np.arange(len(values), dtype=np.uint8) % 10
    return MNIST(digits, labels, digits, labels)


def test_digit_is_pasted_whole_at_its_position():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    task = Task("t", canvas_size=60, n_clutter=0)
    out = compose(digits, np.arange(20) % 10, np.arange(20), task, np.random.PCG64(1))
    for i, (x, y) in enumerate(out.positions):
        assert 0 <= x <= 32 and 0 <= y <= 32
        np.testing.assert_array_equal(out.images[i, y : y + 28, x : x + 28], digits[i])
        rest = out.images[i].copy()
        rest[y : y + 28, x : x + 28] = 0
        assert rest.sum() == 0  # nothing else on the canvas without clutter


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_squares_view_every_square_and_write_through(backend):
    """compose's squares: view[i, y, x] is image i's w x w square with top-left pixel (x, y), channels kept, and a
    write into n of them lands in the images."""
    import torch

    from envs.tasks import _squares

    images = np.random.default_rng(0).integers(0, 256, (3, 9, 9, 2), dtype=np.uint8)
    ours = images.copy() if backend == "numpy" else torch.from_numpy(images.copy())
    view = _squares(ours, 4)
    assert tuple(view.shape) == (3, 6, 6, 4, 4, 2)
    for i, y, x in [(0, 0, 0), (1, 5, 2), (2, 3, 5)]:
        np.testing.assert_array_equal(np.asarray(view[i, y, x]), images[i, y : y + 4, x : x + 4])
    on, y, x = np.array([0, 2]), np.array([1, 5]), np.array([4, 0])
    if backend == "torch":
        on, y, x = (torch.from_numpy(a) for a in (on, y, x))
    view[on, y, x] = 7
    want = images.copy()
    want[0, 1:5, 4:8] = 7
    want[2, 5:9, 0:4] = 7
    np.testing.assert_array_equal(np.asarray(ours), want)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_clutter_size_beyond_the_objects_is_fine_without_clutter(backend):
    import torch

    digits = np.random.default_rng(0).integers(0, 256, (5, 6, 6), dtype=np.uint8)
    task = get_task("translated60", clutter_size=40)
    if backend == "numpy":
        out = compose(digits, np.arange(5), np.arange(5), task, np.random.PCG64(1))
    else:
        out = compose(torch.from_numpy(digits), torch.arange(5), torch.arange(5), task, torch.Generator())
    x, y = (int(v) for v in out.positions[0])
    np.testing.assert_array_equal(np.asarray(out.images[0])[y : y + 6, x : x + 6], digits[0])


def test_positions_cover_the_whole_canvas():
    task = Task("t", canvas_size=60)
    out = sample(constant_digits([255] * 4), task, np.random.PCG64(2), 4000)
    assert out.positions.min() == 0 and out.positions.max() == 60 - 28
    assert abs(out.positions.mean() - 16) < 0.5  # uniform on 0..32
    assert (out.positions[:, 0] != out.positions[:, 1]).any()  # x and y drawn independently


@pytest.mark.parametrize("n_clutter", [1, 4, 8])
def test_clutter_count_and_source(n_clutter):
    # Digit 0 is dark (100), digit 1 bright (200): canvases of digit 0 must carry clutter of digit 1 only.
    mnist = constant_digits([100, 200])
    task = Task("t", canvas_size=400, n_clutter=n_clutter)
    out = compose(mnist.train_images, mnist.train_labels, np.zeros(300, np.int64), task, np.random.PCG64(3))
    for image, (x, y) in zip(out.images, out.positions):
        assert set(np.unique(image)) <= {0, 100, 200}
        digit = image[y : y + 28, x : x + 28]
        assert (digit >= 100).all()
        outside = image.copy()
        outside[y : y + 28, x : x + 28] = 0
        assert set(np.unique(outside)) <= {0, 200}  # clutter comes from the other digit
        assert (outside > 0).sum() <= 64 * n_clutter  # at most n pieces of 8x8
    # On a 400x400 canvas pieces rarely overlap or hit the digit: the mean area is close to n * 64.
    areas = [(img == 200).sum() for img in out.images]
    assert np.mean(areas) > 0.93 * 64 * n_clutter


def test_train_sampling_is_seeded(tiny_mnist):
    task = get_task("cluttered100")
    a = sample(tiny_mnist, task, np.random.PCG64(5), 64)
    b = sample(tiny_mnist, task, np.random.PCG64(5), 64)
    c = sample(tiny_mnist, task, np.random.PCG64(6), 64)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert a.images.dtype == np.uint8 and a.images.shape == (64, 100, 100)


def test_integers_are_in_range():
    x = integers(np.random.PCG64(0), 7, 10000)
    assert x.min() == 0 and x.max() == 6 and x.dtype == np.int64


@pytest.mark.parametrize(
    "changes,match",
    [({"canvas_size": 0}, "canvas_size"), ({"n_clutter": -1}, "n_clutter"), ({"glimpse_size": 80}, "larger than"),
     ({"n_glimpses": 0}, "n_glimpses"), ({"n_scales": 0}, "n_scales")],
)
def test_bad_tasks_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        get_task("cluttered60", **changes)
    with pytest.raises(ValueError, match="unknown task"):
        get_task("cluttered61")


def test_presets_match_the_paper():
    assert [(t.canvas_size, t.n_clutter, t.glimpse_size, t.n_scales) for t in TASKS.values()] == [
        (28, 0, 8, 1), (60, 0, 12, 3), (60, 4, 12, 3), (100, 8, 12, 4)]


def test_the_papers_error_is_known_only_for_its_own_sensors():
    assert paper_error(get_task("cluttered60")) == 4.08
    assert paper_error(get_task("cluttered60", n_glimpses=8)) == 4.04
    assert paper_error(get_task("cluttered100")) == 8.11
    assert paper_error(get_task("cluttered60", n_glimpses=5)) is None  # not in the paper's table
    assert paper_error(get_task("cluttered60", canvas_size=80)) is None  # another task under the same name


# The shifted test sets of cluttered60 (envs.tasks.shifts), their first 1,000 canvases, pinned as the others.
SHIFT_SHA256 = {
    "clutter x2": "b1f707b49466c60f",
    "clutter x3": "3dc8029e6da6b7ac",
    "canvas 100": "fb549e6e8a57b55c",
    "digits x0.75": "678c471d40a78bf5",
    "digits x1.5": "792d02093b23aa4e",
}


def test_the_shifted_test_sets_are_pinned_and_are_what_they_say(mnist):
    shifted = shifts(TASKS["cluttered60"])
    assert list(shifted) == list(SHIFT_SHA256)
    assert (shifted["clutter x3"].n_clutter, shifted["canvas 100"].n_clutter) == (12, 11)  # density held
    for name, task in shifted.items():
        canvases = fixed(mnist, task, "test", 0, 1000)
        assert digest(canvases.images, canvases.labels) == SHIFT_SHA256[name], name
        np.testing.assert_array_equal(canvases.labels, mnist.test_labels[:1000])
    big = fixed(mnist, shifted["digits x1.5"], "test", 0, 500)
    assert big.positions.max() == 60 - 42  # a 42-pixel object, anywhere it fits
    # No clutter to multiply on mnist28, and a 42-pixel digit does not fit its 28-pixel canvas: left out.
    assert list(shifts(TASKS["mnist28"])) == ["canvas 47", "digits x0.75"]


def test_a_resized_digit_is_the_digit_at_another_size(mnist):
    task = TASKS["mnist28"].with_(object_size=14)
    canvas = fixed(mnist, task, "test", 0, 1)
    x, y = canvas.positions[0]
    patch = canvas.images[0, y : y + 14, x : x + 14].astype(float)
    halved = mnist.test_images[0].reshape(14, 2, 14, 2).mean((1, 3))  # 2x2 means: a plain halving
    assert canvas.images[0].sum() == patch.sum()  # nothing but the object on the canvas
    assert patch.sum() == pytest.approx(halved.sum(), rel=0.05)  # the ink of the digit, at a quarter of the area
    assert np.corrcoef(patch.ravel(), halved.ravel())[0, 1] > 0.9  # the same shape


def test_a_clutter_spread_varies_the_clutter_of_training_canvases_only(mnist):
    plain, spread = TASKS["cluttered60"], TASKS["cluttered60"].with_(clutter_spread=4)
    assert digest(*fixed(mnist, spread, "test", 0, 200)[:2]) == digest(*fixed(mnist, plain, "test", 0, 200)[:2])
    # Count the pieces: white 1-pixel crops on a 200-pixel canvas (collisions rare), the object a white square.
    white = MNIST(np.full((100, 28, 28), 255, np.uint8), np.zeros(100, np.uint8),
                  np.full((10, 28, 28), 255, np.uint8), np.zeros(10, np.uint8))
    counts = {}
    for s in (0, 4):
        task = Task("count", canvas_size=200, n_clutter=4, clutter_size=1, clutter_spread=s)
        images = sample(white, task, np.random.PCG64(0), 2000).images
        counts[s] = (images > 0).sum((1, 2)) - 28 * 28  # pieces outside the object's square
    assert np.mean(counts[0] == 4) > 0.9 and counts[0].max() == 4
    assert counts[4].min() == 0 and counts[4].max() == 8 and 3.5 < counts[4].mean() < 4.5  # 0..8, mean 4
