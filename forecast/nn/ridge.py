"""Batched ridge regression as a differentiable layer.

For every batch element ``b`` the layer solves

    w_b = argmin_w ||x_b w - y_b||_F^2 + lam_b ||w||_F^2,   i.e.   (x_bᵀ x_b + lam_b I) w_b = x_bᵀ y_b,

from the normal equations' statistics ``gram = xᵀx`` ``(B, p, p)`` and ``cross = xᵀy`` ``(B, p, h)``, with a
Cholesky factorisation computed once in the forward pass; the inverse formed from that factor is kept for the
backward pass, which applies the implicit-function theorem to the optimality condition instead of unrolling
any solver (no second factorisation, no solver iterations). The model's regressions have many more rows than
features (576 sliding rows of 3 features in ``configs/djia.yaml``), so only ``p × p`` systems are ever solved.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional as F

Factorisation = Literal["lapack", "unrolled"]


def _factorise(gram: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
    """Cholesky factor of ``gram + lam I`` for a batch ``(B, k, k)``, and LAPACK's ``info`` ``(B,)``.

    ``gram`` is a fresh tensor owned by the caller and is overwritten. Nothing is checked here: the caller
    passes ``info`` to :func:`_check_values`, which reads it in the same host sync as the input checks.
    """
    gram.diagonal(dim1=-2, dim2=-1).add_(lam[:, None])  # + lam I without materialising I
    return torch.linalg.cholesky_ex(gram)


def _check_values(name: str, named: tuple[tuple[str, Tensor], ...], lam: Tensor, info: Tensor) -> None:
    """Raise ``ValueError`` for non-finite inputs, a non-positive λ or a failed factorisation.

    One reduction per tensor and a single host sync on the fast path (each sync and each extra pass costs
    as much as the solve itself at the sizes this layer sees); the exact per-tensor checks run only when
    the summary shows a problem. A sum can overflow to inf for huge finite values: the exact check then
    clears it. The order of the messages does not depend on that: non-finite, then λ, then the factor.
    """
    dtype = named[0][1].dtype
    summary = torch.stack([t.sum() for _, t in named] + [lam.min(), info.amax().to(dtype)]).tolist()
    if not math.isfinite(math.fsum(summary[: len(named)])):
        for label, value in named:
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name}: {label} contains non-finite values (NaN or inf)")
    if not summary[-2] > 0:
        raise ValueError(f"{name}: lam must be positive, got min {summary[-2]:.3g}")
    if summary[-1] != 0:
        bad = int(torch.nonzero(info)[0, 0])
        lam_bad = float(lam.expand(info.shape[0])[bad])
        raise ValueError(
            f"{name}: Cholesky factorisation failed for batch element {bad} "
            f"(lam={lam_bad:.3g} is too small for the conditioning of this system); use a larger lam"
        )


# Solving with an explicit inverse: at these sizes every LAPACK call has a fixed cost per matrix far above a
# batched product's, so one cholesky_inverse in the forward pass, reused by the backward pass through products,
# beats a cholesky_solve in each pass (scripts/bench_implicit.py measures it). For a Cholesky factor of an SPD
# matrix the inverse is as accurate as the solve (both backward-stable to O(cond · eps)); the tests hold it to
# 1e-10 against lstsq.


def _solve(gram: Tensor, cross: Tensor, lam: Tensor, lam_is_scalar: bool, check: bool) -> tuple[Tensor, Tensor]:
    """``(inverse, w)`` of ``(S + lam I) w = cross`` with ``S = (gram + gramᵀ)/2``: the forward pass, with or
    without autograd."""
    lam_b = lam.expand(gram.shape[0]) if lam_is_scalar else lam
    # solve with the symmetric part, (A + Aᵀ)/2: a function of the whole matrix, not of one triangle
    factor, info = _factorise((gram + gram.mT) * 0.5, lam_b)  # (B, p, p)
    if check:  # one read back to the host: direct callers' safety net, left out of the model's fast path
        _check_values("ridge_solve_normal", (("gram", gram), ("cross", cross), ("lam", lam)), lam, info)
    inverse = torch.cholesky_inverse(factor)  # (B, p, p)
    return inverse, torch.bmm(inverse, cross)  # (B, p, h)


class _RidgeSolveNormal(torch.autograd.Function):
    """Ridge solve from sufficient statistics: (gram + lam I) w = cross, implicit gradients."""

    @staticmethod
    def forward(ctx: FunctionCtx, gram: Tensor, cross: Tensor, lam: Tensor, lam_is_scalar: bool, check: bool) -> Tensor:
        inverse, w = _solve(gram, cross, lam, lam_is_scalar, check)
        ctx.save_for_backward(inverse, w)
        ctx.lam_is_scalar = lam_is_scalar
        return w

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_w: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        # (S + lam I) w = b with S = (A + Aᵀ)/2  ⇒  with v = (S + lam I)^{-1} grad_w:
        #   dL/db = v,  dL/dA = -(v wᵀ + w vᵀ)/2,  dL/dlam = -<v, w>
        inverse, w = ctx.saved_tensors
        v = torch.bmm(inverse, grad_w.contiguous())
        outer = torch.bmm(v, w.mT)
        grad_gram = -(outer + outer.mT) * 0.5
        grad_lam = -(v * w).sum(dim=(-2, -1))
        if ctx.lam_is_scalar:
            grad_lam = grad_lam.sum()
        return grad_gram, v, grad_lam, None, None


def ridge_solve_normal(
    gram: Tensor, cross: Tensor, lam: Tensor | float, check: bool = True, factorisation: Factorisation = "lapack"
) -> Tensor:
    """Ridge solve from the normal equations' statistics, with implicit gradients.

    Solves ``(gram + lam I) w = cross`` for a batch, where ``gram = xᵀx`` ``(B, p, p)`` (symmetric positive
    semi-definite) and ``cross = xᵀy`` ``(B, p, h)``. When there are many more rows than features this is far
    cheaper than solving from the rows: the caller forms the statistics once (one batched product, often for x and
    y together) and everything here is ``p × p``. Only the symmetric part of ``gram`` is used, so its gradient is
    symmetric too. Under autocast (mixed precision) the solve runs in float32 or wider, and so does ``w``.

    Args:
        gram: ``(B, p, p)``.
        cross: ``(B, p, h)``.
        lam: positive, shape ``()`` or ``(B,)``.
        check: raise ``ValueError`` for non-finite inputs, a non-positive λ or a failed factorisation (one read back
            to the host per call). The model calls it without (its λ is positive by construction and a non-finite
            loss stops training), so that its forward pass runs without a host sync and compiles to one graph.
        factorisation: ``lapack`` (``torch.linalg``; gradients by implicit differentiation) or ``unrolled``
            (:func:`solve_spd_unrolled`: elementwise arithmetic over the static size p, for programs such as ONNX
            that have no Cholesky operator; no input checks; autograd through its operations).

    Returns:
        w ``(B, p, h)``.
    """
    lam_t = torch.as_tensor(lam, dtype=gram.dtype, device=gram.device) if not isinstance(lam, Tensor) else lam
    if gram.ndim != 3 or gram.shape[-1] != gram.shape[-2] or cross.ndim != 3 or cross.shape[:2] != gram.shape[:2]:
        raise ValueError(
            f"ridge_solve_normal: expected gram (B, p, p) and cross (B, p, h), got {tuple(gram.shape)} and "
            f"{tuple(cross.shape)}"
        )
    if torch.is_autocast_enabled(gram.device.type):  # mixed precision: the p × p solve in float32 at least
        with torch.autocast(gram.device.type, enabled=False):
            wide = [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in (gram, cross, lam_t)]
            return ridge_solve_normal(*wide, check=check, factorisation=factorisation)
    _check_lam_and_dtype("ridge_solve_normal", gram, cross, lam_t, ("gram", "cross"))
    if factorisation == "unrolled":
        p = gram.shape[-1]
        eye = torch.eye(p, dtype=gram.dtype, device=gram.device)
        system = (gram + gram.mT) * 0.5 + lam_t.reshape(-1, 1, 1) * eye  # (B, p, p)
        return solve_spd_unrolled(system, cross)
    if torch.is_grad_enabled() and (gram.requires_grad or cross.requires_grad or lam_t.requires_grad):
        return _RidgeSolveNormal.apply(gram, cross, lam_t, lam_t.ndim == 0, check)
    # nothing to differentiate (predict, an exported program): the same arithmetic without an autograd.Function
    return _solve(gram, cross, lam_t, lam_t.ndim == 0, check)[1]


def solve_spd_unrolled(system: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``system w = rhs`` for symmetric positive definite ``system`` ``(B, p, p)`` and ``rhs`` ``(B, p, h)``
    by a Cholesky factorisation and two triangular solves written out over the static size p.

    Every step is a slice, a product, a sum, a square root or a division of ``(B, ·)`` tensors (about 10 p of
    them): a program format without linear-algebra operators (ONNX has no Cholesky) runs it as it is. Column j
    of the factor L is ``c / sqrt(c_j)`` with ``c = A[j:, j] − L[j:, :j] L[j, :j]ᵀ``; then ``L y = rhs`` forwards
    and ``Lᵀ w = y`` backwards. As accurate as LAPACK's unblocked algorithm, which computes the same sums.
    """
    p = system.shape[1]
    factor = system[:, :, :1] / system[:, :1, :1].sqrt()  # column 0, (B, p, 1)
    for j in range(1, p):
        rest = system[:, j:, j] - (factor[:, j:, :] @ factor[:, j, :, None])[..., 0]  # (B, p - j)
        column = rest / rest[:, :1].sqrt()
        factor = torch.cat([factor, F.pad(column, (j, 0))[..., None]], dim=-1)  # (B, p, j + 1)
    diagonal = factor.diagonal(dim1=-2, dim2=-1)[..., None]  # (B, p, 1)
    y = rhs[:, :1] / diagonal[:, :1]  # rows of L y = rhs, top down: (B, i, h)
    for i in range(1, p):
        row = (rhs[:, i : i + 1] - factor[:, i : i + 1, :i] @ y) / diagonal[:, i : i + 1]
        y = torch.cat([y, row], dim=1)
    w = y[:, p - 1 :] / diagonal[:, p - 1 :]  # rows of Lᵀ w = y, bottom up: (B, p - i, h)
    for i in range(p - 2, -1, -1):
        row = (y[:, i : i + 1] - factor[:, i + 1 :, i : i + 1].mT @ w) / diagonal[:, i : i + 1]
        w = torch.cat([row, w], dim=1)
    return w


def _check_lam_and_dtype(name: str, a: Tensor, b: Tensor, lam: Tensor, labels: tuple[str, str]) -> None:
    if lam.ndim > 1 or (lam.ndim == 1 and lam.shape[0] != a.shape[0]):
        raise ValueError(f"{name}: lam must have shape () or ({a.shape[0]},), got {tuple(lam.shape)}")
    if not (a.dtype == b.dtype == lam.dtype) or not a.is_floating_point():
        raise ValueError(
            f"{name}: {labels[0]}, {labels[1]} and lam must share one floating dtype, "
            f"got {a.dtype}, {b.dtype}, {lam.dtype}"
        )


# the smallest feature scale λ is taken relative to: keeps an all-zero system positive definite
_TINY_SCALE = 1e-12


def _inverse_softplus(value: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(value, dtype=torch.float64))))


class RidgeRegression(nn.Module):
    """Ridge regression with a learned, always-positive, *relative* regularisation weight.

    ``lam = softplus(raw_lam) + min_lam``: the free parameter ``raw_lam`` can take any value while ``lam``
    stays strictly positive, so the inner problem is always well posed.

    λ is relative to the data of each regression: the system solved is ``(xᵀx + lam · s · I) w = xᵀy`` with
    ``s = trace(xᵀx) / p``, the features' sum of squares per feature. Dividing through by the row count n
    shows the same thing as ``(xᵀx/n + lam · (s/n) I) w = xᵀy/n``: λ is a fraction of the features' mean
    square, so it means the same whatever the number of rows (encoder width, lookback, pooling, batch size)
    and whatever the scale of the features, and ``xᵀx + lam · s · I`` has condition number at most
    ``1 + p / lam`` (p / min_lam = 2·10⁵ for p = 20): float32 factorises it even for flat, rank-one inputs.

    Args:
        init_lam: initial value of λ (> ``min_lam``).
        min_lam: floor on λ that keeps the factorisation well conditioned.
        fit_intercept: fit an unregularised intercept by centring rows on their mean before the solve.
        check: check each solve's inputs (:func:`ridge_solve_normal`'s ``check``).

    ``factorisation`` (an attribute, ``lapack`` by default) is :func:`ridge_solve_normal`'s: an exporter sets it
    to ``unrolled`` on its copy of a model for a program format without a Cholesky operator.
    """

    def __init__(
        self, init_lam: float = 1.0, min_lam: float = 1e-4, fit_intercept: bool = False, check: bool = True
    ) -> None:
        super().__init__()
        self.check = check
        self.factorisation: Factorisation = "lapack"
        if init_lam <= min_lam:
            raise ValueError(f"RidgeRegression: init_lam must exceed min_lam={min_lam}, got {init_lam}")
        self.min_lam = min_lam
        self.fit_intercept = fit_intercept
        self.raw_lam = nn.Parameter(torch.tensor(_inverse_softplus(init_lam - min_lam)))

    @property
    def lam(self) -> Tensor:
        """The current relative λ, a positive scalar tensor."""
        return F.softplus(self.raw_lam) + self.min_lam

    def absolute_lam(self, per_feature: Tensor) -> Tensor:
        """The absolute weight ``lam · s`` of each regression, ``(B,)``, from ``s = trace(xᵀx) / p`` ``(B,)``.

        An all-zero ``xᵀx`` (a constant window can encode to zeros) gets a tiny positive weight, so the system
        stays factorisable and its solution is w = 0.
        """
        return self.lam.to(per_feature.dtype) * per_feature.clamp_min(_TINY_SCALE)

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
        feature_gram = gram[:, :p, :p]
        lam = self.absolute_lam(feature_gram.diagonal(dim1=-2, dim2=-1).mean(-1))  # (B,)
        w = ridge_solve_normal(feature_gram, gram[:, :p, p:], lam, self.check, self.factorisation)  # (B, p, h)
        if self.fit_intercept:
            if mean is None:  # a caller's mistake, raised also under python -O
                raise ValueError("RidgeRegression(fit_intercept=True) needs the row mean")
            return (x_query - mean[:, None, :p]) @ w + mean[:, None, p:]
        return x_query @ w

    def forward(self, x_fit: Tensor, y_fit: Tensor, x_query: Tensor) -> Tensor:
        """Fit on ``(x_fit (B, n, p), y_fit (B, n, h))`` and predict ``x_query (B, m, p)`` → ``(B, m, h)``."""
        return self.fit_predict_rows(torch.cat([x_fit, y_fit], dim=-1), x_fit.shape[-1], x_query)
