"""Building blocks of the forecaster: 1D-CNN encoder and decoder, and the ridge "postdiction" predictor."""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional as F

from forecast.errors import option
from forecast.nn import RidgeRegression

ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def conv_stack(
    channels: list[int],
    kernel_size: int,
    activation: str,
    batch_norm: bool,
    dropout: float,
    members: int = 1,
    shared_input: bool = False,
) -> nn.Sequential:
    """Conv1d layers ``channels[0] → channels[1] → ...`` with length-preserving padding.

    Every layer but the last is followed by [BatchNorm], the activation and [Dropout], so the stack ends
    in a linear map (the ridge layer and the output both want unconstrained values).

    With ``members > 1`` the stack is that many independent stacks side by side, as grouped convolutions:
    channels ``(B, members · c, L)``, member ``k`` owning the ``k``-th block of ``c``. With ``shared_input``
    the first layer reads one shared ``(B, channels[0], L)`` input instead (an ungrouped convolution to
    ``members · channels[1]`` outputs is exactly ``members`` independent ones).
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd to keep the sequence length, got {kernel_size}")
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        shared = i == 0 and shared_input
        groups = 1 if shared else members
        layers.append(nn.Conv1d(c_in * groups, c_out * members, kernel_size, padding=kernel_size // 2, groups=groups))
        if i < len(channels) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(c_out * members))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class _TimeGram(torch.autograd.Function):
    """``zᵀz`` over channels, ``(B, E, L)`` → ``(B, L, L)``, with the symmetric gradient ``z (g + gᵀ)``."""

    @staticmethod
    def forward(ctx: FunctionCtx, z: Tensor) -> Tensor:
        ctx.save_for_backward(z)
        return z.mT @ z

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        # autograd's own backward of zᵀ @ z takes one product per operand and adds two (B, E, L) gradients, one
        # of them transposed in memory: one product of z with the (L, L) symmetric part costs half as much
        (z,) = ctx.saved_tensors
        grad = grad.to(z.dtype)  # under autocast the forward's product, and so its gradient, is in lower precision
        return z @ (grad + grad.mT)


def time_gram(z: Tensor) -> Tensor:
    """``G[b, t, u] = Σ_e z[b, e, t] z[b, e, u]``: ``(B, E, L)`` → ``(B, L, L)``, one batched product."""
    if torch.is_grad_enabled() and z.requires_grad:
        return _TimeGram.apply(z)
    return z.mT @ z  # nothing to differentiate (predict, an exported program): no autograd.Function


def gram_tables(length: int, width: int) -> tuple[Tensor, Tensor]:
    """The constant tables :func:`sliding_window_gram` reads for sequences of ``length`` and rows of ``width``:
    the band ``(width, length)`` float, ``band[a, t] = 1`` for the rows' starts ``a <= t < a + shifts``, and for
    each (i, j) of a width × width matrix the position of ``(min(i, j), |i − j|)`` in a flattened ``(width,
    width)`` table of (first row, lag), ``(width²,)``. Built once by the layer that owns them."""
    t, a = torch.arange(length), torch.arange(width)[:, None]
    band = ((t >= a) & (t < a + length - width + 1)).to(torch.get_default_dtype())
    i, j = torch.meshgrid(torch.arange(width), torch.arange(width), indexing="ij")
    return band, (torch.minimum(i, j) * width + (i - j).abs()).reshape(-1)


def sliding_window_gram(z: Tensor, width: int, tables: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Gram matrix and mean of all sliding rows of a sequence batch, without materialising the rows.

    The rows are ``z[b, e, s : s + width]`` for every channel ``e`` and shift ``s = 0 .. L - width``. Their Gram
    entry ``(a, a + d)`` is a sum of lag-``d`` products, ``Σ_s G[s + a, s + a + d]`` with ``G = zᵀz`` the time
    Gram (:func:`time_gram`): a sum of ``shifts`` values down a diagonal of G. Read as rows of ``L + 1`` values,
    the flattened G has its diagonals as columns (``G[t, t + d]`` sits at ``t (L + 1) + d``), so the diagonals
    cost one pad and a view, and their window sums are one product with a 0/1 band: a few vectorised operations
    instead of a batched product over ``E · shifts`` rows (which is memory-bound on CPUs).

    Args:
        z: ``(B, E, L)``.
        width: row length, ``1 .. L``.
        tables: :func:`gram_tables` of ``(L, width)`` (built here when not given; a layer keeps its own as
            buffers, so its forward pass makes no tensor from Python data).

    Returns:
        ``gram`` ``(B, width, width)`` and ``mean`` ``(B, width)`` (the mean row).
    """
    b, e, length = z.shape
    # a layer's own tables are for its base_len; a sequence of another length gets its own
    band, index = gram_tables(length, width) if tables is None or tables[0].shape[-1] != length else tables
    band, index = band.to(z.device, z.dtype), index.to(z.device)
    # diagonals[t, d] = G[t, t + d] where t + d < L; the band never reads the others (the next row's values):
    # the window of lag d starting at a ends at t = a + shifts - 1 <= L - 1 - d
    diagonals = F.pad(time_gram(z).flatten(1), (0, length)).view(b, length, length + 1)[:, :, :width]  # (B, L, W)
    by_lag = band @ diagonals  # (B, W, W): [a, d] = Gram entry (a, a + d), valid where a + d < W
    gram = by_lag.flatten(1)[:, index].reshape(b, width, width)
    mean = z.sum(1) @ band.mT / (e * (length - width + 1))  # (B, width)
    return gram, mean


class RidgePostdiction(nn.Module):
    """Fit, inside the forward pass, the ridge map from ``lookback`` encoded steps to the next ``horizon``.

    In the encoded base ``z`` (B, E, L), every channel and every shift ``s = 0 .. L - lookback - horizon`` gives
    one regression row: features ``z[:, e, s : s + lookback]``, targets ``z[:, e, s + lookback : s + lookback +
    horizon]``. The fitted map is applied to the last ``lookback`` steps to predict the encoded future.

    ``pool="sample"`` fits one regression per window on its own rows (a forecast never depends on the rest of
    the batch); ``pool="batch"`` is the tutorial's single regression over all rows of the batch.

    Args:
        base_len: L, steps of the encoded base.
        horizon: H, steps to predict.
        lookback: features per row (default ``base_len - horizon``: one shift, the tutorial's layout).
        pool: ``sample`` or ``batch``.
        init_lam: initial ridge weight λ, relative to the features' mean square (learned, kept positive; see
            :class:`forecast.nn.RidgeRegression`).
        fit_intercept: fit an unregularised intercept per regression.
    """

    def __init__(
        self,
        base_len: int,
        horizon: int,
        lookback: int | None = None,
        pool: Literal["sample", "batch"] = "sample",
        init_lam: float = 0.01,
        fit_intercept: bool = False,
    ) -> None:
        super().__init__()
        if lookback is not None and lookback < 1:  # 0 must not silently mean "unset"
            raise ValueError(
                f"model.lookback {lookback}: the encoded days each regression row uses must be 1 or more (at most "
                f"data.base_len - data.horizon = {base_len - horizon}); leave it unset for that"
            )
        self.lookback = base_len - horizon if lookback is None else lookback
        self.horizon = horizon
        self.shifts = base_len - self.lookback - horizon + 1
        if base_len <= horizon:
            raise ValueError(
                f"data.base_len {base_len} must be longer than data.horizon {horizon}: the ridge layer learns from "
                f"the base's own early days how they lead to its last ones; raise {option('data.base_len')} or lower "
                f"{option('data.horizon')}"
            )
        if self.lookback < 1 or self.shifts < 1:
            raise ValueError(
                f"model.lookback {lookback} must be in 1..{base_len - horizon} (data.base_len {base_len} minus "
                f"data.horizon {horizon}); lower {option('model.lookback')}, or raise {option('data.base_len')}"
            )
        if pool not in ("sample", "batch"):
            raise ValueError(f"pool must be 'sample' or 'batch', got {pool!r}")
        self.pool = pool
        # the model's λ is positive by construction and a non-finite loss stops training: its solves skip the
        # input checks, which read back to the host (a sync per solve, and a break in a compiled graph)
        self.ridge = RidgeRegression(init_lam=init_lam, fit_intercept=fit_intercept, check=False)
        # the Gram's tables, made once (not per forward pass) and moved with the layer; not persistent, so
        # checkpoints hold the same weights as before them
        band, index = gram_tables(base_len, self.lookback + horizon)
        self.register_buffer("gram_band", band, persistent=False)
        self.register_buffer("gram_index", index, persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        """Encoded base ``(B, E, L)`` → encoded forecast ``(B, E, H)``."""
        b, e, _ = z.shape
        k, h = self.lookback, self.horizon
        x_query = z[..., -k:]  # (B, E, k)
        if self.pool == "batch":
            # the tutorial's single regression over every row of the batch
            rows = z.unfold(-1, k + h, 1).reshape(1, b * e * self.shifts, k + h)  # (1, n, k + H)
            return self.ridge.fit_predict_rows(rows, k, x_query.reshape(1, b * e, k)).reshape(b, e, h)
        # rows: every shift of every channel, k features then H targets; only their Gram matrix is needed
        gram, mean = sliding_window_gram(z, k + h, (self.gram_band, self.gram_index))  # (B, k + H, k + H), (B, k + H)
        if self.ridge.fit_intercept:
            gram = gram - (e * self.shifts) * mean[:, :, None] * mean[:, None, :]
            return self.ridge.fit_predict_gram(gram, k, x_query, mean)
        return self.ridge.fit_predict_gram(gram, k, x_query)

    @property
    def lam(self) -> Tensor:
        """λ, the relative ridge weight (a positive scalar tensor)."""
        return self.ridge.lam


def postdiction_network(
    encoder_channels: list[int],
    decoder_channels: list[int],
    ridge: tuple[int, int, int | None, str, float, bool],
    layers: tuple[int, str, bool, float, int],
) -> nn.ModuleDict:
    """One network of the model: ``encoder`` (B, C, L) → (B, K·E, L), ``predictor`` (the ridge postdiction,
    → (B, K·E, H)) and ``decoder`` → (B, K·O, H), K members side by side.

    Args:
        encoder_channels: ``[C, ..., E]``, the input channels then each conv layer's outputs.
        decoder_channels: the decoder's hidden channels then its O outputs (E goes in).
        ridge: ``(base_len, horizon, lookback, pool, init_lam, fit_intercept)`` of :class:`RidgePostdiction`.
        layers: ``(kernel_size, activation, batch_norm, dropout, members)`` of both conv stacks.
    """
    kernel_size, activation, batch_norm, dropout, members = layers
    return nn.ModuleDict(
        {
            "encoder": conv_stack(
                encoder_channels, kernel_size, activation, batch_norm, dropout, members, shared_input=True
            ),
            "predictor": RidgePostdiction(*ridge),
            "decoder": conv_stack(
                [encoder_channels[-1], *decoder_channels], kernel_size, activation, batch_norm, dropout, members
            ),
        }
    )
