"""A generic implicit argmin layer: ``y* = argmin_y f(y, θ)`` with gradients by the implicit-function theorem.

Forward: minimise a batch of independent objectives with L-BFGS (``torch.optim.LBFGS``) or Newton–CG, on
detached copies, so neither the initial guess nor any parameter is touched.

Backward (matrix-free): at the optimum ∇_y f(y*, θ) = 0, hence dy*/dθ = -H⁻¹ ∂²f/∂y∂θ with H = ∇²_yy f.
For an incoming gradient ``g = dL/dy*`` we solve ``H v = g`` by batched conjugate gradient using
Hessian-vector products, then ``dL/dθ = -(∂²f/∂θ∂y) v`` as one vector-Jacobian product. No dense Hessian is
formed and the initial guess receives no gradient.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

Objective = Callable[..., Tensor]
"""``f(y, *params) -> (B,)``: one independent objective value per batch element."""


class ConvergenceWarning(UserWarning):
    """An inner solve stopped at its iteration cap before reaching its tolerance."""


@dataclass(frozen=True)
class SolverOptions:
    """Options of :func:`argmin`.

    Attributes:
        solver: ``"lbfgs"`` or ``"newton"`` (Newton–CG with per-sample backtracking line search).
        tol: stop when every sample's gradient norm ``||∇_y f||`` is at most this.
        max_iter: cap on outer iterations (L-BFGS iterations or Newton steps).
        cg_tol: relative residual of the conjugate-gradient solves (Newton steps and the backward pass).
        cg_max_iter: cap on CG iterations; default: the number of variables per sample.
        history_size: L-BFGS memory.
    """

    solver: str = "lbfgs"
    tol: float = 1e-7
    max_iter: int = 200
    cg_tol: float = 1e-10
    cg_max_iter: int | None = None
    history_size: int = 20


def _bdot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner product of two ``(B, ...)`` tensors → ``(B,)``."""
    return (a * b).flatten(1).sum(1)


def _bnorm(a: Tensor) -> Tensor:
    return _bdot(a, a).sqrt()


def _expand(per_sample: Tensor, like: Tensor) -> Tensor:
    return per_sample.reshape(-1, *([1] * (like.ndim - 1)))


def batched_cg(matvec: Callable[[Tensor], Tensor], b: Tensor, tol: float, max_iter: int) -> tuple[Tensor, Tensor]:
    """Solve ``A_b x_b = b_b`` for every sample of a block-diagonal SPD operator by conjugate gradient.

    Args:
        matvec: applies the operator to a ``(B, ...)`` tensor.
        b: right-hand sides ``(B, ...)``.
        tol: relative residual ``||r_b|| / ||b_b||`` at which a sample is done.
        max_iter: iteration cap.

    Returns:
        ``(x, relative_residual)`` with x shaped like ``b`` and the residual ``(B,)``.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = _bdot(r, r)
    b_norm = rs.sqrt().clamp_min(torch.finfo(b.dtype).tiny)
    for _ in range(max_iter):
        if bool((rs.sqrt() <= tol * b_norm).all()):
            break
        ap = matvec(p)
        curvature = _bdot(p, ap)
        active = rs.sqrt() > tol * b_norm
        alpha = torch.where(active, rs / torch.where(active, curvature, torch.ones_like(curvature)), 0.0)
        x = x + _expand(alpha, x) * p
        r = r - _expand(alpha, r) * ap
        rs_new = _bdot(r, r)
        beta = torch.where(active, rs_new / torch.where(active, rs, torch.ones_like(rs)), 0.0)
        p = r + _expand(beta, p) * p
        rs = rs_new
    return x, rs.sqrt() / b_norm


def _objective_and_grad(f: Objective, y: Tensor, params: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """``(f(y) (B,), ∇_y f (B, ...))`` with a graph kept for Hessian-vector products."""
    value = f(y, *params)
    if value.shape != y.shape[:1]:
        raise ValueError(f"argmin: f must return one value per sample, shape ({y.shape[0]},), got {tuple(value.shape)}")
    (grad,) = torch.autograd.grad(value.sum(), y, create_graph=True)
    return value, grad


def _solve_lbfgs(f: Objective, y: Tensor, params: tuple[Tensor, ...], opts: SolverOptions) -> Tensor:
    # The per-sample objectives are independent, so minimising their sum minimises each of them.
    optimizer = torch.optim.LBFGS(
        [y],
        lr=1.0,
        max_iter=opts.max_iter,
        max_eval=opts.max_iter * 5 // 4 + 10,
        # max |∂f/∂y_i| <= tol/√d guarantees every per-sample gradient norm is <= tol
        tolerance_grad=opts.tol / max(1.0, y[0].numel() ** 0.5),
        tolerance_change=0.0,
        history_size=opts.history_size,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = f(y, *params).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return y.detach()


def _solve_newton(f: Objective, y: Tensor, params: tuple[Tensor, ...], opts: SolverOptions) -> Tensor:
    cg_iters = opts.cg_max_iter or y[0].numel()
    for _ in range(opts.max_iter):
        y = y.detach().requires_grad_(True)
        value, grad = _objective_and_grad(f, y, params)
        if bool((_bnorm(grad) <= opts.tol).all()):
            break
        direction, _ = batched_cg(
            lambda u, g=grad, yy=y: torch.autograd.grad(g, yy, u, retain_graph=True)[0],
            -grad.detach(),
            opts.cg_tol,
            cg_iters,
        )
        slope = _bdot(grad.detach(), direction)
        # fall back to steepest descent for a sample whose Hessian is not positive definite there
        not_descent = slope >= 0
        direction = torch.where(_expand(not_descent, direction), -grad.detach(), direction)
        slope = torch.where(not_descent, -_bdot(grad, grad).detach(), slope)
        value = value.detach()
        # Near the minimum the predicted decrease falls below the rounding error of f itself; without this
        # allowance (Hager & Zhang's approximate Wolfe condition uses the same) the search halves the step
        # until it vanishes and Newton stalls a few ulps short of tol.
        noise = 16 * torch.finfo(value.dtype).eps * value.abs()
        step = torch.ones_like(value)
        with torch.no_grad():
            for _ in range(40):  # backtracking (Armijo), per sample
                trial = f(y + _expand(step, y) * direction, *params)
                accepted = trial <= value + 1e-4 * step * slope + noise
                if bool(accepted.all()):
                    break
                step = torch.where(accepted, step, step * 0.5)
        y = y.detach() + _expand(step, y) * direction
    return y.detach()


_SOLVERS = {"lbfgs": _solve_lbfgs, "newton": _solve_newton}


class _Argmin(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, f: Objective, opts: SolverOptions, y0: Tensor, *params: Tensor) -> Tensor:
        detached = tuple(p.detach() for p in params)
        with torch.enable_grad():
            y = y0.detach().clone().requires_grad_(True)
            y_star = _SOLVERS[opts.solver](f, y, detached, opts)
            y_check = y_star.clone().requires_grad_(True)
            _, grad = _objective_and_grad(f, y_check, detached)
        residual = float(_bnorm(grad.detach()).max())
        if residual > opts.tol:
            warnings.warn(
                f"argmin: {opts.solver} stopped with gradient norm {residual:.3g} > tol={opts.tol:.3g} "
                f"(max_iter={opts.max_iter}); raise max_iter, loosen tol, or try solver='newton'",
                ConvergenceWarning,
                stacklevel=3,
            )
        ctx.f = f
        ctx.opts = opts
        ctx.save_for_backward(y_star, *params)
        return y_star

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        y_star, *params = ctx.saved_tensors
        opts: SolverOptions = ctx.opts
        wanted = [i for i in range(len(params)) if ctx.needs_input_grad[3 + i]]
        param_grads: list[Tensor | None] = [None] * len(params)
        if wanted:
            with torch.enable_grad():
                y = y_star.detach().requires_grad_(True)
                inputs = [p.detach().requires_grad_(i in wanted) for i, p in enumerate(params)]
                _, grad_y = _objective_and_grad(ctx.f, y, tuple(inputs))
                v, residual = batched_cg(
                    lambda u: torch.autograd.grad(grad_y, y, u, retain_graph=True)[0],
                    grad_out,
                    opts.cg_tol,
                    opts.cg_max_iter or y[0].numel(),
                )
                if float(residual.max()) > max(opts.cg_tol, 1e-6):
                    warnings.warn(
                        f"argmin backward: conjugate gradient stopped with relative residual "
                        f"{float(residual.max()):.3g} > cg_tol={opts.cg_tol:.3g}; raise cg_max_iter",
                        ConvergenceWarning,
                        stacklevel=2,
                    )
                mixed = torch.autograd.grad(grad_y, [inputs[i] for i in wanted], -v, allow_unused=True)
            for i, g in zip(wanted, mixed, strict=True):
                param_grads[i] = torch.zeros_like(params[i]) if g is None else g
        return (None, None, None, *param_grads)


def argmin(f: Objective, y0: Tensor, *params: Tensor, **solver_options: object) -> Tensor:
    """Minimise ``f(y, *params)`` over ``y`` per sample, differentiably in ``params``.

    Args:
        f: objective ``f(y, *params) -> (B,)`` of independent per-sample values; must be twice
            differentiable in ``y`` and once in ``(y, params)``.
        y0: initial guess ``(B, ...)``. Never modified, and receives no gradient.
        *params: tensors the objective depends on; gradients flow to those that require them.
        **solver_options: fields of :class:`SolverOptions` (``solver``, ``tol``, ``max_iter``, ``cg_tol``,
            ``cg_max_iter``, ``history_size``).

    Returns:
        ``y*`` shaped like ``y0``. A :class:`ConvergenceWarning` reports a solve that stopped early.
    """
    opts = SolverOptions(**solver_options)  # type: ignore[arg-type]
    if opts.solver not in _SOLVERS:
        raise ValueError(f"argmin: unknown solver {opts.solver!r}; choose one of {sorted(_SOLVERS)}")
    return _Argmin.apply(f, opts, y0, *params)
