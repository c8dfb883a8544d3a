"""argmin: matches ridge_solve on the ridge objective; finite differences on a non-quadratic objective."""

import warnings

import pytest
import torch

from forecast.nn import ConvergenceWarning, argmin, ridge_solve


def ridge_objective(w, x, y, lam):
    """Per-sample ||x w - y||² + lam ||w||²; w (B, p, h) → (B,)."""
    residual = x @ w - y
    return residual.pow(2).sum((-2, -1)) + lam * w.pow(2).sum((-2, -1))


def logistic_objective(w, x, t, lam):
    """Per-sample L2-regularised logistic loss; w (B, p), x (B, n, p), t (B, n) in {0, 1} → (B,)."""
    logits = (x @ w.unsqueeze(-1)).squeeze(-1)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="none").sum(-1)
    return loss + 0.5 * lam * w.pow(2).sum(-1)


def _ridge_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 8, 4, generator=g, dtype=torch.float64)
    y = torch.randn(3, 8, 2, generator=g, dtype=torch.float64)
    lam = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    return x, y, lam


@pytest.mark.parametrize("solver", ["lbfgs", "newton"])
def test_argmin_equals_ridge_solve_forward_and_gradients(solver):
    x, y, lam = _ridge_problem()
    upstream = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def run(fn):
        leaves = [t.clone().requires_grad_(True) for t in (x, y, lam)]
        out = fn(*leaves)
        (out * upstream).sum().backward()
        return out.detach(), [leaf.grad for leaf in leaves]

    y0 = torch.zeros(3, 4, 2, dtype=torch.float64)
    # L-BFGS's value-based line search cannot resolve gradients much below 1e-7 on this problem
    tol = {"lbfgs": 1e-7, "newton": 1e-11}[solver]
    ours, our_grads = run(lambda a, b, c: argmin(ridge_objective, y0, a, b, c, solver=solver, tol=tol))
    ref, ref_grads = run(ridge_solve)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    for g_ours, g_ref in zip(our_grads, ref_grads, strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-6)


def test_argmin_gradients_match_finite_differences_on_logistic_regression():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 10, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = (torch.rand(2, 10, generator=g, dtype=torch.float64) > 0.5).double()
    lam = torch.tensor([0.3, 1.2], dtype=torch.float64, requires_grad=True)
    y0 = torch.zeros(2, 3, dtype=torch.float64)

    def solve(x_, lam_):
        return argmin(logistic_objective, y0, x_, t, lam_, solver="newton", tol=1e-10)

    assert torch.autograd.gradcheck(solve, (x, lam), eps=1e-6, atol=1e-6)


def test_argmin_leaves_inputs_untouched_and_gives_y0_no_gradient():
    x, y, lam = _ridge_problem(2)
    y0 = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    before = [t.clone() for t in (y0, x, y, lam)]
    params = [t.clone().requires_grad_(True) for t in (x, y, lam)]
    # L-BFGS (torch.optim's, which overwrote its initial guess in the tutorial); tol 1e-6 keeps the solve clear of
    # the rounding of f (~1e-14 here), where a strong-Wolfe search can stall and warn at the default 1e-7
    argmin(ridge_objective, y0, *params, solver="lbfgs", tol=1e-6).sum().backward()
    for original, now in zip(before, (y0, *params), strict=True):
        assert torch.equal(original, now.detach())
    assert y0.grad is None
    assert all(p.grad is not None for p in params)


def test_argmin_warns_with_residual_when_not_converged():
    x, y, lam = _ridge_problem()
    with pytest.warns(ConvergenceWarning, match=r"gradient norm \S+ > tol"):
        argmin(ridge_objective, torch.zeros(3, 4, 2, dtype=torch.float64), x, y, lam, max_iter=1, tol=1e-14)


def test_argmin_converged_solve_does_not_warn():
    x, y, lam = _ridge_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        argmin(ridge_objective, torch.zeros(3, 4, 2, dtype=torch.float64), x, y, lam, solver="newton", tol=1e-9)


def test_argmin_rejects_unknown_solver_and_bad_objective():
    x, y, lam = _ridge_problem()
    y0 = torch.zeros(3, 4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="unknown solver 'sgd'"):
        argmin(ridge_objective, y0, x, y, lam, solver="sgd")
    with pytest.raises(ValueError, match="one value per sample"):
        argmin(lambda w, *_: w.pow(2).sum(), y0, x, y, lam)


def test_newton_finishes_a_quadratic_in_few_steps_even_at_a_tolerance_near_rounding():
    # A quadratic is solved by one Newton step (up to CG's 1e-10); the last few ulps must not stall the line
    # search: before its rounding allowance, this batch needed ~20 steps, each stuck at a vanishing step size.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 16, 20, generator=g, dtype=torch.float64)
    y = torch.randn(1024, 16, 10, generator=g, dtype=torch.float64)
    lam = torch.rand(1024, generator=g, dtype=torch.float64) + 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        w = argmin(
            ridge_objective,
            torch.zeros(1024, 20, 10, dtype=torch.float64),
            x,
            y,
            lam,
            solver="newton",
            tol=1e-8,
            max_iter=3,
        )
    torch.testing.assert_close(w, ridge_solve(x, y, lam), rtol=1e-8, atol=1e-9)
