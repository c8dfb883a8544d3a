"""Batched ridge regression as a differentiable layer.

For every batch element ``b`` the layer solves

    w_b = argmin_w ||x_b w - y_b||_F^2 + lam_b ||w||_F^2,   i.e.   (x_bᵀ x_b + lam_b I) w_b = x_bᵀ y_b,

with a Cholesky factorisation computed once in the forward pass and reused by the backward pass, which
applies the implicit-function theorem to the optimality condition instead of unrolling any solver.

Shapes: x ``(B, n, p)`` (n rows, p features), y ``(B, n, h)`` (h targets), lam ``()`` or ``(B,)``,
w ``(B, p, h)``.

When ``n < p`` the *dual* (Woodbury) form is used, ``w = xᵀ (x xᵀ + lam I_n)^{-1} y``, so the cost is an
``n × n`` factorisation; otherwise the *primal* ``p × p`` system is factorised.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional as F


def _factorise(gram: Tensor, lam: Tensor) -> Tensor:
    """Cholesky factor of ``gram + lam I`` for a batch ``(B, k, k)``; raises a clear error on failure.

    ``gram`` is a fresh tensor owned by the caller and is overwritten.
    """
    gram.diagonal(dim1=-2, dim2=-1).add_(lam[:, None])  # + lam I without materialising I
    factor, info = torch.linalg.cholesky_ex(gram)
    if bool(info.any()):
        bad = int(torch.nonzero(info)[0, 0])
        raise ValueError(
            f"ridge_solve: Cholesky factorisation failed for batch element {bad} "
            f"(lam={float(lam[bad]):.3g} is too small for the conditioning of this system); use a larger lam"
        )
    return factor


class _RidgeSolve(torch.autograd.Function):
    """Ridge solve with implicit gradients; see :func:`ridge_solve` for the contract."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, y: Tensor, lam: Tensor, lam_is_scalar: bool) -> Tensor:
        lam_b = lam.expand(x.shape[0]) if lam_is_scalar else lam  # (B,)
        n, p = x.shape[-2], x.shape[-1]
        dual = n < p
        xt = x.transpose(-1, -2)  # (B, p, n)
        if dual:
            factor = _factorise(x @ xt, lam_b)  # (B, n, n) chol of x xᵀ + lam I
            alpha = torch.cholesky_solve(y, factor)  # (B, n, h)
            # (alphaᵀ x)ᵀ, not xᵀ alpha: the same numbers, and MKL's small batched GEMM is ~2x faster this way round
            w = (alpha.transpose(-1, -2) @ x).transpose(-1, -2)  # (B, p, h)
            ctx.save_for_backward(x, factor, alpha, w)
        else:
            factor = _factorise(xt @ x, lam_b)  # (B, p, p) chol of xᵀx + lam I
            w = torch.cholesky_solve(xt @ y, factor)  # (B, p, h)
            ctx.save_for_backward(x, y, factor, w)
        ctx.dual = dual
        ctx.lam_is_scalar = lam_is_scalar
        return w

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_w: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        # Implicit differentiation of (xᵀx + lam I) w = xᵀy.  With v = (xᵀx + lam I)^{-1} grad_w:
        #   dL/dy = x v,   dL/dx = (y - x w) vᵀ - x v wᵀ,   dL/dlam = -<v, w>.
        # An upstream gradient is often a stride-0 broadcast (from .sum()); batched products on it are ~4x slower.
        grad_w = grad_w.contiguous()
        if ctx.dual:
            x, factor, alpha, w = ctx.saved_tensors
            # Woodbury: x v = (x xᵀ + lam I)^{-1} x grad_w =: beta, and y - x w = lam alpha, so the formulas
            # above become division-free in terms of the n × n factor.
            beta = torch.cholesky_solve(x @ grad_w, factor)  # (B, n, h) = x v
            grad_y = beta
            # dL/dx = alpha (grad_w - xᵀ beta)ᵀ - beta wᵀ  (from r = lam alpha and x v = beta)
            grad_x = alpha @ (grad_w - x.transpose(-1, -2) @ beta).transpose(-1, -2) - beta @ w.transpose(-1, -2)
            grad_lam = -(beta * alpha).sum(dim=(-2, -1))  # (B,) = -<x v, alpha> = -<v, w>
        else:
            x, y, factor, w = ctx.saved_tensors
            v = torch.cholesky_solve(grad_w, factor)  # (B, p, h)
            grad_y = x @ v  # (B, n, h)
            # dL/dx = (y - x w) vᵀ - x v wᵀ = y vᵀ - x (w vᵀ + v wᵀ): the (n, h) products stay few, the rest is p × p
            wv = w @ v.transpose(-1, -2)  # (B, p, p)
            grad_x = y @ v.transpose(-1, -2) - x @ (wv + wv.transpose(-1, -2))
            grad_lam = -(v * w).sum(dim=(-2, -1))  # (B,)
        if ctx.lam_is_scalar:
            grad_lam = grad_lam.sum()
        return (
            grad_x if ctx.needs_input_grad[0] else None,
            grad_y if ctx.needs_input_grad[1] else None,
            grad_lam if ctx.needs_input_grad[2] else None,
            None,
        )


class _RidgeSolveNormal(torch.autograd.Function):
    """Ridge solve from sufficient statistics: (gram + lam I) w = cross, implicit gradients."""

    @staticmethod
    def forward(ctx: FunctionCtx, gram: Tensor, cross: Tensor, lam: Tensor, lam_is_scalar: bool) -> Tensor:
        lam_b = lam.expand(gram.shape[0]) if lam_is_scalar else lam
        # solve with the symmetric part, (A + Aᵀ)/2: a function of the whole matrix, not of one triangle
        factor = _factorise((gram + gram.transpose(-1, -2)) * 0.5, lam_b)  # (B, p, p)
        w = torch.cholesky_solve(cross, factor)  # (B, p, h)
        ctx.save_for_backward(factor, w)
        ctx.lam_is_scalar = lam_is_scalar
        return w

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_w: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        # (S + lam I) w = b with S = (A + Aᵀ)/2  ⇒  with v = (S + lam I)^{-1} grad_w:
        #   dL/db = v,  dL/dA = -(v wᵀ + w vᵀ)/2,  dL/dlam = -<v, w>
        factor, w = ctx.saved_tensors
        v = torch.cholesky_solve(grad_w.contiguous(), factor)
        outer = v @ w.transpose(-1, -2)
        grad_gram = -(outer + outer.transpose(-1, -2)) * 0.5
        grad_lam = -(v * w).sum(dim=(-2, -1))
        if ctx.lam_is_scalar:
            grad_lam = grad_lam.sum()
        return grad_gram, v, grad_lam, None


def ridge_solve_normal(gram: Tensor, cross: Tensor, lam: Tensor | float) -> Tensor:
    """Ridge solve from the normal equations' statistics, with implicit gradients.

    Solves ``(gram + lam I) w = cross`` for a batch, where ``gram = xᵀx`` ``(B, p, p)`` (symmetric positive
    semi-definite) and ``cross = xᵀy`` ``(B, p, h)``. When there are many more rows than features this is far
    cheaper than :func:`ridge_solve`: the caller forms the statistics once (one batched product, often for x and
    y together) and everything here is ``p × p``. Only the symmetric part of ``gram`` is used, so its gradient is
    symmetric too.

    Args:
        gram: ``(B, p, p)``.
        cross: ``(B, p, h)``.
        lam: positive, shape ``()`` or ``(B,)``.

    Returns:
        w ``(B, p, h)``.
    """
    lam_t = torch.as_tensor(lam, dtype=gram.dtype, device=gram.device) if not isinstance(lam, Tensor) else lam
    if gram.ndim != 3 or gram.shape[-1] != gram.shape[-2] or cross.ndim != 3 or cross.shape[:2] != gram.shape[:2]:
        raise ValueError(
            f"ridge_solve_normal: expected gram (B, p, p) and cross (B, p, h), got {tuple(gram.shape)} and "
            f"{tuple(cross.shape)}"
        )
    _check_inputs(gram, cross, lam_t, name="ridge_solve_normal", names=("gram", "cross", "lam"))
    return _RidgeSolveNormal.apply(gram, cross, lam_t, lam_t.ndim == 0)


def _check_inputs(
    x: Tensor, y: Tensor, lam: Tensor, name: str = "ridge_solve", names: tuple[str, str, str] = ("x", "y", "lam")
) -> None:
    if x.ndim != 3 or y.ndim != 3:
        raise ValueError(
            f"ridge_solve: expected x (B, n, p) and y (B, n, h), got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"ridge_solve: x {tuple(x.shape)} and y {tuple(y.shape)} must agree in batch and rows (B, n)")
    if lam.ndim > 1 or (lam.ndim == 1 and lam.shape[0] != x.shape[0]):
        raise ValueError(f"ridge_solve: lam must have shape () or ({x.shape[0]},), got {tuple(lam.shape)}")
    if not (x.dtype == y.dtype == lam.dtype) or not x.is_floating_point():
        raise ValueError(
            f"ridge_solve: x, y and lam must share one floating dtype, got {x.dtype}, {y.dtype}, {lam.dtype}"
        )
    # One reduction and one host sync on the fast path; the exact per-tensor checks run only on failure
    # (a sum can also overflow to inf for huge finite values, which the exact check then clears).
    summary = torch.stack([x.sum(), y.sum(), lam.sum(), lam.min()]).tolist()
    if not math.isfinite(summary[0] + summary[1] + summary[2]):
        for label, value in zip(names, (x, y, lam), strict=True):
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name}: {label} contains non-finite values (NaN or inf)")
    if not summary[3] > 0:
        raise ValueError(f"{name}: lam must be positive, got min {summary[3]:.3g}")


def ridge_solve(x: Tensor, y: Tensor, lam: Tensor | float) -> Tensor:
    """Solve a batch of independent ridge regressions with implicit gradients.

    Args:
        x: design matrices ``(B, n, p)``.
        y: targets ``(B, n, h)``.
        lam: positive regularisation weight, shape ``()`` (shared) or ``(B,)`` (one per element).

    Returns:
        w ``(B, p, h)`` minimising ``||x w - y||² + lam ||w||²`` for each batch element.

    Raises:
        ValueError: on a shape or dtype mismatch, non-finite input, non-positive ``lam``, or a failed
            Cholesky factorisation (the message suggests a larger ``lam``).

    Example:
        >>> x = torch.eye(2).expand(1, 2, 2)
        >>> ridge_solve(x, torch.ones(1, 2, 1), torch.tensor(1.0)).squeeze()
        tensor([0.5000, 0.5000])
    """
    lam_t = torch.as_tensor(lam, dtype=x.dtype, device=x.device) if not isinstance(lam, Tensor) else lam
    _check_inputs(x, y, lam_t)
    return _RidgeSolve.apply(x, y, lam_t, lam_t.ndim == 0)


def _inverse_softplus(value: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(value, dtype=torch.float64))))


class RidgeRegression(nn.Module):
    """Ridge regression with a learned, always-positive regularisation weight.

    ``lam = softplus(raw_lam) + min_lam``: the free parameter ``raw_lam`` can take any value while ``lam``
    stays strictly positive, so the inner problem is always well posed.

    Args:
        init_lam: initial value of λ (> ``min_lam``).
        min_lam: floor on λ that keeps the factorisation well conditioned.
        fit_intercept: fit an unregularised intercept by centring rows on their mean before the solve.
    """

    def __init__(self, init_lam: float = 1.0, min_lam: float = 1e-4, fit_intercept: bool = False) -> None:
        super().__init__()
        if init_lam <= min_lam:
            raise ValueError(f"RidgeRegression: init_lam must exceed min_lam={min_lam}, got {init_lam}")
        self.min_lam = min_lam
        self.fit_intercept = fit_intercept
        self.raw_lam = nn.Parameter(torch.tensor(_inverse_softplus(init_lam - min_lam)))

    @property
    def lam(self) -> Tensor:
        """The current λ, a positive scalar tensor."""
        return F.softplus(self.raw_lam) + self.min_lam

    def fit_predict_rows(self, rows: Tensor, features: int, x_query: Tensor) -> Tensor:
        """Fit on rows holding features and targets side by side, predict ``x_query``.

        Args:
            rows: ``(B, n, p + h)``, the first ``features`` (= p) columns are the features, the rest the targets.
            features: p.
            x_query: ``(B, m, p)``.

        Returns:
            ``(B, m, h)``, via one batched product ``rowsᵀ rows`` for both ``xᵀx`` and ``xᵀy``.
        """
        mean = rows.mean(dim=1) if self.fit_intercept else None  # (B, p + h)
        centred = rows - mean[:, None] if mean is not None else rows
        return self.fit_predict_gram(centred.transpose(-1, -2) @ centred, features, x_query, mean)

    def fit_predict_gram(self, gram: Tensor, features: int, x_query: Tensor, mean: Tensor | None = None) -> Tensor:
        """Fit from the Gram matrix of the rows ``[x | y]`` and predict ``x_query``.

        Args:
            gram: ``(B, p + h, p + h)`` = ``Σ_rows [x y]ᵀ [x y]`` (centred on ``mean`` when fitting an intercept).
            features: p.
            x_query: ``(B, m, p)``.
            mean: ``(B, p + h)`` row mean, required when ``fit_intercept``.

        Returns:
            ``(B, m, h)``. Only ``p × p`` systems are solved (:func:`ridge_solve_normal`), whatever the row count.
        """
        p = features
        w = ridge_solve_normal(gram[:, :p, :p], gram[:, :p, p:], self.lam.to(gram.dtype))  # (B, p, h)
        if self.fit_intercept:
            if mean is None:
                raise ValueError("RidgeRegression(fit_intercept=True) needs the row mean")
            return (x_query - mean[:, None, :p]) @ w + mean[:, None, p:]
        return x_query @ w

    def forward(self, x_fit: Tensor, y_fit: Tensor, x_query: Tensor) -> Tensor:
        """Fit on ``(x_fit (B, n, p), y_fit (B, n, h))`` and predict ``x_query (B, m, p)`` → ``(B, m, h)``."""
        lam = self.lam.to(x_fit.dtype)
        if not self.fit_intercept:
            return x_query @ ridge_solve(x_fit, y_fit, lam)
        x_mean = x_fit.mean(dim=1, keepdim=True)  # (B, 1, p)
        y_mean = y_fit.mean(dim=1, keepdim=True)  # (B, 1, h)
        w = ridge_solve(x_fit - x_mean, y_fit - y_mean, lam)
        return (x_query - x_mean) @ w + y_mean
