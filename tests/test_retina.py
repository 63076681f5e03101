import numpy as np
import pytest
import torch

from envs.retina import Retina, clip_location, integral_image


def reference_glimpse(image: np.ndarray, centre_xy: tuple[int, int], g: int, k: int, s: int) -> np.ndarray:
    """A slow, obvious retina: pad with zeros, crop each scale around the integer centre, average-pool."""
    pad = g * s ** (k - 1)
    padded = np.pad(image.astype(np.float64), pad)
    cx, cy = centre_xy
    out = []
    for i in range(k):
        side, f = g * s**i, s**i
        x0, y0 = cx - side // 2 + pad, cy - side // 2 + pad
        patch = padded[y0 : y0 + side, x0 : x0 + side]
        out.append(patch.reshape(g, f, g, f).mean(axis=(1, 3)))
    return np.stack(out)


def loc(px: float, size: int) -> float:
    """The location whose grid line is pixel coordinate px."""
    return px / size * 2 - 1


def test_shape_and_centre_mapping():
    retina = Retina(g=12, k=3, s=2)
    assert retina.shape == (3, 12, 12) and retina.widest == 48
    l = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [2.0, -5.0]])
    assert retina.centre(l, 60).tolist() == [[0, 0], [30, 30], [60, 60], [60, 0]]
    boxes = retina.boxes(torch.zeros(1, 2), 60)[0].tolist()
    assert boxes == [[24, 24, 36, 36], [18, 18, 42, 42], [6, 6, 54, 54]]  # concentric around (30, 30)


def test_bright_pixel_lands_where_it_should_at_every_scale():
    # Glimpse centred on grid line (30, 30) of a 60x60 image; scale i has cells of 2**i pixels.
    retina = Retina(g=12, k=3, s=2)
    for py, px in [(30, 30), (25, 33), (8, 50), (29, 6)]:
        image = torch.zeros(1, 60, 60, dtype=torch.uint8)
        image[0, py, px] = 255
        glimpse = retina(image, torch.zeros(1, 2))[0]
        for i in range(3):
            f, side = 2**i, 12 * 2**i
            x0 = y0 = 30 - side // 2
            expected = np.zeros((12, 12))
            if x0 <= px < x0 + side and y0 <= py < y0 + side:
                expected[(py - y0) // f, (px - x0) // f] = 1.0 / (f * f)
            np.testing.assert_allclose(glimpse[i].numpy(), expected, atol=1e-7, err_msg=f"pixel {(py, px)} scale {i}")


def test_borders_are_zero_padded():
    retina = Retina(g=4, k=2, s=2)
    image = torch.full((1, 10, 10), 255, dtype=torch.uint8)
    glimpse = retina(image, torch.tensor([[-1.0, -1.0]]))[0]  # centred on the top-left corner
    # Scale 0: 4x4 box from (-2, -2): the top-left 2x2 cells are outside, the bottom-right 2x2 inside.
    np.testing.assert_array_equal(glimpse[0].numpy(), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    # Scale 1: 8x8 box from (-4, -4) pooled by 2: same pattern.
    np.testing.assert_array_equal(glimpse[1].numpy(), glimpse[0].numpy())
    # Fully outside the image never happens (locations are clipped), but a far-away location is clipped to a corner.
    far = retina(image, torch.tensor([[-9.0, -9.0]]))[0]
    torch.testing.assert_close(far, glimpse)


@pytest.mark.parametrize("g,k,s,size", [(12, 3, 2, 60), (12, 4, 2, 100), (8, 1, 2, 28), (5, 3, 3, 41)])
def test_pooling_is_exact_against_a_reference(g, k, s, size):
    rng = np.random.default_rng(g * k + size)
    images = rng.integers(0, 256, (16, size, size), dtype=np.uint8)
    centres = rng.integers(0, size + 1, (16, 2))
    l = torch.tensor([[loc(x, size), loc(y, size)] for x, y in centres], dtype=torch.float32)
    retina = Retina(g=g, k=k, s=s)
    assert (retina.centre(l, size).numpy() == centres).all()
    got = retina(torch.from_numpy(images), l).numpy()
    for b in range(16):
        want = reference_glimpse(images[b], tuple(centres[b]), g, k, s) / 255.0
        np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-7)


def test_float_images_match_uint8_images():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, 60, 60), dtype=np.uint8)
    l = torch.tensor(rng.uniform(-1, 1, (4, 2)), dtype=torch.float32)
    retina = Retina(g=12, k=3)
    as_uint8 = retina(torch.from_numpy(images), l)
    as_float = retina(torch.from_numpy(images).float() / 255.0, l)
    torch.testing.assert_close(as_uint8, as_float, rtol=0, atol=1e-6)


def test_integral_image_and_clipping():
    image = torch.arange(12, dtype=torch.uint8).reshape(1, 3, 4)
    S = integral_image(image)
    assert S.shape == (1, 4, 5) and S.dtype == torch.int32
    assert S[0, 3, 4] == image.sum() and S[0, 2, 3] == image[0, :2, :3].sum() and S[0, 0].abs().sum() == 0
    torch.testing.assert_close(clip_location(torch.tensor([[1.5, -3.0]])), torch.tensor([[1.0, -1.0]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="retina g"):
        Retina(g=0)
    retina = Retina(g=4, k=1)
    with pytest.raises(ValueError, match="shape"):
        retina(torch.zeros(2, 8, 8), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="square"):
        retina(torch.zeros(1, 8, 9), torch.zeros(1, 2))


def test_one_retina_reads_tables_of_any_batch_canvas_and_dtype_in_turn():
    # The retina keeps constants between reads; reads of other batch sizes, canvases and image dtypes in any order
    # must give what a fresh retina gives.
    rng = np.random.default_rng(3)
    shared = Retina(g=6, k=3, s=2)
    for B, size, floating in [(4, 30, False), (7, 30, False), (4, 41, False), (4, 30, True), (2, 41, True),
                              (7, 30, False)]:
        images = torch.from_numpy(rng.integers(0, 256, (B, size, size), dtype=np.uint8))
        if floating:
            images = images.double() / 255
        l = torch.from_numpy(rng.uniform(-1.2, 1.2, (B, 2)).astype(np.float32))
        torch.testing.assert_close(shared(images, l), Retina(g=6, k=3, s=2)(images, l), rtol=0, atol=0)
