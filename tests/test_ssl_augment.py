import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semclust.ssl import augment as A
from semclust.ssl.augment import normalize, strong_augment, to_float, weak_augment


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(b=8, c=3, h=16, w=16, seed=0, dtype=torch.float32):
    return torch.rand(b, c, h, w, generator=gen(seed), dtype=dtype)


def mags(value, n=1):
    return torch.full((n,), float(value))


# ------------------------------------------------------------------ shapes, range, seeds
@pytest.mark.parametrize("c,h", [(1, 28), (3, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fn", [weak_augment, strong_augment])
def test_shape_dtype_range(fn, c, h, dtype):
    x = images(16, c, h, h, dtype=dtype)
    y = fn(x, gen(1))
    assert y.shape == x.shape and y.dtype == dtype
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert not torch.equal(y, x)


@pytest.mark.parametrize("fn", [weak_augment, strong_augment])
def test_seeded_reproducibility_and_no_global_rng(fn):
    x = images(16, 3, 32, 32)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, b = fn(x, gen(5)), fn(x, gen(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, fn(x, gen(6)))
    assert torch.equal(state, torch.get_rng_state())


def test_flip_only():
    x = images(64, 1, 8, 8)
    y = weak_augment(x, gen(0), flip=True, pad=0)
    same = (y == x).flatten(1).all(1)
    flipped = (y == torch.flip(x, dims=[-1])).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_crop_pad_zero_without_flip_is_identity():
    x = images(4, 3, 10, 10)
    assert torch.equal(weak_augment(x, gen(0), flip=False, pad=0), x)


def test_crop_is_window_of_reflect_padded_image():
    h, p = 8, 2
    x = torch.arange(h * h, dtype=torch.float32).view(1, 1, h, h).div(h * h).repeat(32, 1, 1, 1)
    y = weak_augment(x, gen(3), flip=False, pad=p)
    padded = F.pad(x[:1], (p, p, p, p), mode="reflect")[0, 0]
    offsets = set()
    for img in y[:, 0]:
        found = [
            (i, j) for i in range(2 * p + 1) for j in range(2 * p + 1) if torch.equal(img, padded[i : i + h, j : j + h])
        ]
        assert found
        offsets.add(found[0])
    assert len(offsets) > 5  # offsets vary across the batch


def test_default_pad_is_one_eighth():
    x = torch.zeros(256, 1, 32, 32)
    x[:, :, 16, 16] = 1.0  # a dot moves by at most 4 px
    y = weak_augment(x, gen(0), flip=False)
    pos = y[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 32, pos % 32
    assert (rows - 16).abs().max() == 4 and (cols - 16).abs().max() == 4


# ------------------------------------------------------------------ the 14 ops
def test_op_list():
    assert A.OP_NAMES == [
        "Identity",
        "AutoContrast",
        "Equalize",
        "Rotate",
        "Solarize",
        "Color",
        "Posterize",
        "Contrast",
        "Brightness",
        "Sharpness",
        "ShearX",
        "ShearY",
        "TranslateX",
        "TranslateY",
    ]


@pytest.mark.parametrize("name", [n for n, *_ in A.RANDAUGMENT_OPS])
@pytest.mark.parametrize("c", [1, 3])
def test_each_op_keeps_shape_and_range(name, c):
    fn, lo, hi = next((f, lo, hi) for n, f, lo, hi in A.RANDAUGMENT_OPS if n == name)
    x = images(5, c, 12, 12)
    m = torch.linspace(lo, hi, 5)
    y = fn(x, m)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1


def test_identity():
    x = images(2)
    assert torch.equal(A.identity(x, mags(0.3, 2)), x)


def test_solarize():
    x = torch.tensor([0.1, 0.4, 0.5, 0.9]).view(1, 1, 2, 2)
    y = A.solarize(x, mags(0.5))
    assert torch.allclose(y.flatten(), torch.tensor([0.1, 0.4, 0.5, 0.1]))
    assert torch.equal(A.solarize(x, mags(1.01)), x)


def test_posterize():
    levels = torch.arange(256)
    x = (levels.float() / 255).view(1, 1, 16, 16)
    for bits in (4, 6, 8):
        y = A.posterize(x, mags(bits))
        expected = (levels & (256 - 2 ** (8 - bits))).float() / 255
        assert torch.allclose(y.flatten(), expected)


def test_brightness_contrast_color():
    x = images(2, 3, 6, 6) * 0.8
    assert torch.allclose(A.brightness(x, mags(0.5, 2)), 0.5 * x)
    assert torch.allclose(A.contrast(x, mags(1.0, 2)), x)
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    flat = A.contrast(x, mags(0.0, 2))
    assert torch.allclose(flat, gray.mean(dim=(1, 2, 3), keepdim=True).expand_as(x))
    assert torch.allclose(A.color(x, mags(0.0, 2)), gray.expand_as(x))
    assert torch.allclose(A.color(x, mags(0.3, 2)), gray + 0.3 * (x - gray))
    g1 = images(2, 1, 6, 6)
    assert torch.equal(A.color(g1, mags(0.1, 2)), g1)


def test_autocontrast():
    x = torch.tensor([[0.2, 0.4], [0.6, 0.3]]).view(1, 1, 2, 2)
    assert torch.allclose(A.auto_contrast(x, mags(0)).flatten(), torch.tensor([0.0, 0.5, 1.0, 0.25]))
    flat = torch.full((1, 1, 3, 3), 0.3)
    assert torch.equal(A.auto_contrast(flat, mags(0)), flat)


def _pil_equalize(levels):
    """ImageOps.equalize for one channel, written out as in PIL."""
    hist = np.bincount(levels.ravel(), minlength=256)
    nz = hist[hist > 0]
    step = (nz.sum() - nz[-1]) // 255 if len(nz) > 1 else 0
    if not step:
        return levels
    lut, n = [], step // 2
    for i in range(256):
        lut.append(min(n // step, 255))
        n += hist[i]
    return np.array(lut)[levels]


def test_equalize_matches_pil_algorithm():
    rng = np.random.default_rng(0)
    lv = rng.integers(40, 120, size=(2, 3, 16, 16))
    x = torch.from_numpy(lv).float() / 255
    y = A.equalize(x, mags(0, 2))
    ref = np.stack([np.stack([_pil_equalize(lv[i, c]) for c in range(3)]) for i in range(2)])
    assert torch.allclose(y, torch.from_numpy(ref).float() / 255)
    const = torch.full((1, 1, 4, 4), 0.4)
    assert torch.equal(A.equalize(const, mags(0)), const)


def test_sharpness():
    x = images(1, 1, 5, 5)
    assert torch.allclose(A.sharpness(x, mags(1.0)), x)
    k = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    y = A.sharpness(x, mags(0.0))[0, 0]
    for i in range(1, 4):
        for j in range(1, 4):
            assert y[i, j] == pytest.approx(float((x[0, 0, i - 1 : i + 2, j - 1 : j + 2] * k).sum()), abs=1e-6)
    border = torch.ones(5, 5, dtype=torch.bool)
    border[1:4, 1:4] = False
    assert torch.equal(y[border], x[0, 0][border])


def test_rotate():
    x = images(2, 3, 8, 8)
    assert torch.allclose(A.rotate(x, mags(0.0, 2)), x, atol=1e-6)
    assert torch.allclose(A.rotate(x, mags(90.0, 2)), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)


def test_translate_and_shear():
    x = images(1, 1, 8, 8)
    tx = A.translate_x(x, mags(1 / 8))  # one pixel
    assert torch.allclose(tx[..., :-1], x[..., 1:], atol=1e-6)
    assert torch.allclose(tx[..., -1], torch.full_like(tx[..., -1], A.FILL), atol=1e-6)
    ty = A.translate_y(x, mags(-1 / 8))
    assert torch.allclose(ty[..., 1:, :], x[..., :-1, :], atol=1e-6)
    assert torch.allclose(ty[..., 0, :], torch.full_like(ty[..., 0, :], A.FILL), atol=1e-6)
    for op in (A.shear_x, A.shear_y, A.translate_x, A.translate_y):
        assert torch.allclose(op(x, mags(0.0)), x, atol=1e-6)
    # shear x about the centre: row i moves by s * (i + 0.5 - H/2) px; s = 2/7 -> last row by 1
    sx = A.shear_x(x, mags(2 / 7))
    assert torch.allclose(sx[0, 0, 7, :-1], x[0, 0, 7, 1:], atol=1e-5)
    assert torch.allclose(sx[0, 0, 0, 1:], x[0, 0, 0, :-1], atol=1e-5)
    sy = A.shear_y(x, mags(2 / 7))
    assert torch.allclose(sy[0, 0, :-1, 7], x[0, 0, 1:, 7], atol=1e-5)


def test_rand_augment_zero_ops_is_identity_and_ops_vary():
    x = images(8)
    assert torch.equal(A.rand_augment(x, gen(0), n_ops=0), x)
    y = A.rand_augment(x, gen(0), n_ops=1)
    changed = (y != x).flatten(1).any(1)
    assert 0 < int(changed.sum()) <= 8


# ------------------------------------------------------------------ cutout
@pytest.mark.parametrize("c", [1, 3])
def test_cutout_square(c):
    x = torch.zeros(16, c, 20, 20)
    y = A.cutout(x, gen(0), size=0.5)
    for img in y:
        mask = img == 0.5
        assert bool((mask == mask[0]).all())  # same square in every channel
        m = mask[0]
        assert int(m.sum()) == 100
        rows = m.any(1).nonzero().flatten()
        cols = m.any(0).nonzero().flatten()
        assert rows.max() - rows.min() == 9 and cols.max() - cols.min() == 9
    corners = {tuple(map(int, (img[0] == 0.5).nonzero()[0])) for img in y}
    assert len(corners) > 3


def test_strong_augment_has_cutout_and_grayscale():
    x = torch.zeros(8, 1, 28, 28)
    y = strong_augment(x, gen(0), flip=False, cutout=0.5)
    assert y.shape == x.shape
    assert all(int((img == 0.5).sum()) >= 14 * 14 for img in y)
    assert torch.equal(
        strong_augment(x, gen(0), n_ops=0, cutout=0.0, flip=False)[:, :, 4:-4, 4:-4], x[:, :, 4:-4, 4:-4]
    )


# ------------------------------------------------------------------ conversions
def test_to_float_and_normalize():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    t = to_float(a)
    assert t.shape == (2, 1, 3, 4) and t.dtype == torch.float32
    assert torch.allclose(t[:, 0], torch.from_numpy(a).float() / 255)
    rgb = torch.randint(0, 256, (2, 5, 5, 3), dtype=torch.uint8, generator=gen(0))
    t3 = to_float(rgb)
    assert t3.shape == (2, 3, 5, 5)
    assert torch.allclose(t3[1, 2], rgb[1, :, :, 2].float() / 255)
    assert t3.min() >= 0 and t3.max() <= 1
    n = normalize(t3, (0.5, 0.4, 0.3), (0.2, 0.1, 0.25))
    assert torch.allclose(n[:, 1], (t3[:, 1] - 0.4) / 0.1)
    assert torch.allclose(normalize(t, 0.5, 0.5), t * 2 - 1)
    with pytest.raises(ValueError):
        to_float(np.zeros((3, 4), dtype=np.uint8))
