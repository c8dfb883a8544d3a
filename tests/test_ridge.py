"""The ridge layer (ridge_solve_normal): forward against lstsq, gradients against gradcheck and autograd through
torch.linalg.solve, from rows (through xᵀx and xᵀy) and from the statistics themselves."""

import pytest
import torch

from forecast.nn import RidgeRegression, ridge_solve_normal

# (n, p): more rows than features (the model's case), and fewer (xᵀx singular, xᵀx + lam I still definite)
SHAPES = {"tall": (12, 5), "wide": (6, 9)}


def ridge_solve(x, y, lam):
    """The layer from rows: the statistics by products, the solve (and its implicit backward) by the layer."""
    return ridge_solve_normal(x.mT @ x, x.mT @ y, lam)


def _problem(n: int, p: int, h: int = 3, batch: int = 4, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, p, generator=g, dtype=dtype)
    y = torch.randn(batch, n, h, generator=g, dtype=dtype)
    lam = torch.rand(batch, generator=g, dtype=dtype) + 0.5
    return x, y, lam


def _reference(x, y, lam):
    """Closed form through torch.linalg.solve, differentiated by plain autograd."""
    p = x.shape[-1]
    lam = lam.expand(x.shape[0]) if lam.ndim == 0 else lam
    eye = torch.eye(p, dtype=x.dtype)
    a = x.transpose(-1, -2) @ x + lam[:, None, None] * eye
    return torch.linalg.solve(a, x.transpose(-1, -2) @ y)


@pytest.mark.parametrize("branch", SHAPES)
def test_forward_matches_lstsq_on_augmented_system(branch):
    n, p = SHAPES[branch]
    x, y, lam = _problem(n, p)
    w = ridge_solve(x, y, lam)
    # [x; sqrt(lam) I] w = [y; 0] in the least-squares sense is the ridge problem
    eye = torch.eye(p, dtype=x.dtype).expand(x.shape[0], p, p)
    x_aug = torch.cat([x, lam.sqrt()[:, None, None] * eye], dim=1)
    y_aug = torch.cat([y, torch.zeros(x.shape[0], p, y.shape[-1], dtype=x.dtype)], dim=1)
    expected = torch.linalg.lstsq(x_aug, y_aug).solution
    torch.testing.assert_close(w, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("branch", SHAPES)
@pytest.mark.parametrize("scalar_lam", [False, True])
def test_gradcheck(branch, scalar_lam):
    n, p = SHAPES[branch]
    x, y, lam = _problem(n, p, batch=3)
    if scalar_lam:
        lam = lam[0].clone()
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, y, lam))
    assert torch.autograd.gradcheck(ridge_solve, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("branch", SHAPES)
def test_implicit_gradients_equal_autograd_through_solve(branch):
    n, p = SHAPES[branch]
    x, y, lam = _problem(n, p, batch=5, seed=3)
    upstream = torch.randn(5, p, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))

    def grads(fn):
        leaves = [t.clone().requires_grad_(True) for t in (x, y, lam)]
        (fn(*leaves) * upstream).sum().backward()
        return [leaf.grad for leaf in leaves]

    for ours, ref, name in zip(grads(ridge_solve), grads(_reference), ("x", "y", "lam"), strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10, msg=lambda m, name=name: f"d/d{name}: {m}")


def test_float32_close_to_float64():
    x, y, lam = _problem(16, 20, h=10, batch=8)
    w64 = ridge_solve(x, y, lam)
    w32 = ridge_solve(x.float(), y.float(), lam.float())
    assert w32.dtype == torch.float32
    torch.testing.assert_close(w32.double(), w64, rtol=1e-4, atol=1e-5)


def test_scalar_lam_gradient_is_sum_of_per_sample_gradients():
    x, y, _lam = _problem(6, 9)
    shared = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    ridge_solve(x, y, shared).sum().backward()
    per_sample = torch.full((x.shape[0],), 0.7, dtype=torch.float64, requires_grad=True)
    ridge_solve(x, y, per_sample).sum().backward()
    assert shared.grad.shape == ()
    torch.testing.assert_close(shared.grad, per_sample.grad.sum())


@pytest.mark.parametrize(
    ("lam", "message"),
    [
        (0.0, "lam must be positive"),
        (-1.0, "lam must be positive"),
        ([1.0, 1.0, 1.0], r"lam must have shape \(\) or \(2,\)"),
    ],
)
def test_bad_lam_raises(lam, message):
    with pytest.raises(ValueError, match=message):
        ridge_solve(torch.randn(2, 5, 3), torch.randn(2, 5, 1), torch.tensor(lam))


def test_dtype_mismatch_raises():
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="must share one floating dtype"):
        ridge_solve_normal(x.mT @ x, (x.mT @ torch.randn(2, 5, 1)).double(), torch.tensor(1.0))


def test_failed_factorisation_suggests_larger_lam():
    # a rank-1 Gram matrix with huge entries: gram + lam I is numerically singular in float32 for a tiny lam
    gram = torch.full((1, 3, 3), 1e10)
    with pytest.raises(ValueError, match=r"Cholesky factorisation failed.*use a larger lam"):
        ridge_solve_normal(gram, torch.ones(1, 3, 1), torch.tensor(1e-30))


def test_ridge_module_keeps_lam_positive_and_learns_it():
    module = RidgeRegression(init_lam=0.5)
    torch.testing.assert_close(module.lam, torch.tensor(0.5))
    with torch.no_grad():
        module.raw_lam.fill_(-50.0)  # any free value maps to a positive λ
    assert float(module.lam.detach()) > 0
    module.raw_lam.data.fill_(0.0)
    x, y = torch.randn(2, 8, 3), torch.randn(2, 8, 1)
    module(x, y, x).pow(2).sum().backward()
    assert module.raw_lam.grad is not None and module.raw_lam.grad != 0


def test_ridge_module_intercept_is_unregularised():
    # y = 2 x + 100: a huge intercept would be shrunk if it were regularised
    x = torch.linspace(-1, 1, 9, dtype=torch.float64).reshape(1, 9, 1)
    y = 2 * x + 100
    module = RidgeRegression(init_lam=1e-6, min_lam=1e-9, fit_intercept=True).double()
    torch.testing.assert_close(module(x, y, x), y, rtol=0, atol=1e-4)


def test_ridge_solve_normal_gradcheck_on_the_statistics_themselves():
    x, y, lam = _problem(12, 4, batch=3)
    gram, cross = x.mT @ x, x.mT @ y
    torch.testing.assert_close(ridge_solve_normal(gram, cross, lam), _reference(x, y, lam), rtol=1e-10, atol=1e-12)
    inputs = tuple(t.clone().requires_grad_(True) for t in (gram, cross, lam))
    assert torch.autograd.gradcheck(ridge_solve_normal, inputs, eps=1e-6, atol=1e-7)


def test_ridge_solve_normal_bad_shapes():
    with pytest.raises(ValueError, match=r"expected gram \(B, p, p\) and cross \(B, p, h\)"):
        ridge_solve_normal(torch.randn(2, 3, 4), torch.randn(2, 3, 1), 1.0)


@pytest.mark.parametrize(
    ("which", "value", "message"),
    [
        ("gram", float("nan"), "ridge_solve_normal: gram contains non-finite values"),
        ("cross", float("inf"), "ridge_solve_normal: cross contains non-finite values"),
        ("lam", -1.0, "ridge_solve_normal: lam must be positive"),
    ],
)
def test_ridge_solve_normal_bad_values(which, value, message):
    x = torch.randn(2, 6, 3)
    inputs = {"gram": x.mT @ x, "cross": x.mT @ torch.randn(2, 6, 1), "lam": torch.ones(2)}
    inputs[which].view(-1)[0] = value
    with pytest.raises(ValueError, match=message):
        ridge_solve_normal(inputs["gram"], inputs["cross"], inputs["lam"])


def test_ridge_module_lambda_is_relative_to_the_features_mean_square():
    x, y, _ = _problem(12, 4, batch=3)
    module = RidgeRegression(init_lam=0.3).double()
    lam = module.lam.detach()  # 0.3 up to the float32 rounding of the stored parameter
    absolute = lam * x.square().sum(dim=(1, 2)) / 4  # lam · trace(xᵀx) / p, per regression
    torch.testing.assert_close(module(x, y, x), x @ _reference(x, y, absolute), rtol=1e-10, atol=1e-12)
    # from the Gram matrix of [x | y]: the same weights
    rows = torch.cat([x, y], dim=-1)
    torch.testing.assert_close(module.fit_predict_gram(rows.mT @ rows, 4, x), module(x, y, x), rtol=1e-10, atol=1e-12)


def test_ridge_module_gradcheck_through_the_relative_lambda():
    x, y, _ = _problem(9, 3, batch=2)
    module = RidgeRegression(init_lam=0.2).double()
    inputs = (x.clone().requires_grad_(True), y.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(lambda a, b: module(a, b, a), inputs, eps=1e-6, atol=1e-7)
    raw = module.raw_lam.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: _with_raw(r)(x, y, x), (raw,), eps=1e-6, atol=1e-7)


def _with_raw(raw):
    """A module whose free parameter is the tensor ``raw`` (tracked by autograd, not a Parameter)."""
    module = RidgeRegression().double()
    del module.raw_lam
    module.raw_lam = raw
    return module


def test_postdiction_lambda_means_the_same_whatever_the_rows_and_scale():
    from forecast.model.blocks import RidgePostdiction

    torch.manual_seed(0)
    z = torch.randn(1, 4, 30, dtype=torch.float64)
    layer = RidgePostdiction(base_len=30, horizon=10, lookback=3, init_lam=0.05).double()
    alone = layer(z)
    # the same window at another scale: the fitted map is the same, so the forecast scales with it
    torch.testing.assert_close(layer(1000.0 * z), 1000.0 * alone, rtol=1e-9, atol=1e-9)
    # twice the rows (each channel twice, as a wider encoder could give): the same forecast
    torch.testing.assert_close(layer(torch.cat([z, z], dim=1))[:, :4], alone, rtol=1e-9, atol=1e-12)
    # the tutorial's pooled regression over a batch of copies: the same map as the window's own
    pooled = RidgePostdiction(base_len=30, horizon=10, lookback=3, pool="batch", init_lam=0.05).double()
    torch.testing.assert_close(pooled(z.expand(8, -1, -1))[:1], alone, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["flat", "nearly_flat", "huge"])
def test_float32_training_from_a_small_lambda_factorises_on_flat_prices(kind):
    from forecast.data.normalise import normalise, window_stats
    from forecast.model import Forecaster

    torch.manual_seed(0)
    prices = torch.full((16, 1, 30), 123.45, dtype=torch.float64)
    if kind == "nearly_flat":
        prices = prices + 0.01 * torch.randint(0, 2, prices.shape)  # one-cent ticks
    x = normalise(prices, *window_stats(prices, "zscore"), "zscore").float()
    if kind == "huge":
        x = 1e4 * torch.randn(16, 1, 30)  # an encoder far from unit scale
    model = Forecaster(init_lam=1.1e-4, encoder_channels=(8, 16, 32), lookback=3)  # λ just above its floor
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(x).abs().mean().backward()  # raises if a factorisation fails
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()


@pytest.mark.parametrize("p", [1, 3, 13, 20])
def test_the_unrolled_factorisation_equals_the_lapack_solve_and_passes_gradcheck(p):
    """The ONNX path (Cholesky and triangular solves written out over p) against the reference solve and the
    LAPACK path, and its gradient (autograd through its operations) against finite differences."""
    x, y, lam = _problem(2 * p + 3, p, batch=3)
    gram, cross = x.mT @ x, x.mT @ y
    unrolled = ridge_solve_normal(gram, cross, lam, factorisation="unrolled")
    torch.testing.assert_close(unrolled, _reference(x, y, lam), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(unrolled, ridge_solve_normal(gram, cross, lam), rtol=1e-9, atol=1e-11)
    inputs = tuple(t.clone().requires_grad_(True) for t in (gram, cross, lam))
    solve = lambda g, c, la: ridge_solve_normal(g, c, la, factorisation="unrolled")  # noqa: E731
    assert torch.autograd.gradcheck(solve, inputs, eps=1e-6, atol=1e-7)


def test_unchecked_and_undifferentiated_solves_give_the_checked_solution():
    """check=False (the model's fast path) and a solve with nothing to differentiate (predict) run the same
    arithmetic as the checked autograd path; only the checks are left out."""
    x, y, lam = _problem(12, 4, batch=3)
    gram, cross = x.mT @ x, x.mT @ y
    expected = ridge_solve_normal(*(t.clone().requires_grad_(True) for t in (gram, cross, lam)))
    with torch.no_grad():
        torch.testing.assert_close(ridge_solve_normal(gram, cross, lam, check=False), expected.detach())
    bad = gram.clone()
    bad.view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="gram contains non-finite values"):
        ridge_solve_normal(bad, cross, lam)
    assert torch.isnan(ridge_solve_normal(bad, cross, lam, check=False)).any()  # unchecked: no error, NaN out
