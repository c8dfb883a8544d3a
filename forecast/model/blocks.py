"""Building blocks of the forecaster: 1D-CNN encoder and decoder, and the ridge "postdiction" predictor."""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import Tensor, nn
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


def lag_products(z: Tensor, width: int) -> Tensor:
    """``P[b, d, t] = Σ_e z[b, e, t] z[b, e, t + d]`` for lags ``d < width`` (0 where ``t + d >= L``):
    ``(B, E, L)`` → ``(B, width, L)``.

    Read off the diagonals of the time Gram matrix ``zᵀz`` ``(B, L, L)``: one batched product and one gather,
    forward and backward, with autograd's own gradient. It computes L² products where L · width are needed, and
    still beats per-lag slices on a CPU (a multiply, a sum and a gradient buffer for each lag) for windows of tens
    of days; its memory, ``B · L · (L + width)`` floats, grows with the square of the window (4 MB at B = 256,
    L = 30; 270 MB at L = 252).
    """
    length = z.shape[-1]
    # zero columns past the end: the diagonal of lag d reads zeros where t + d >= L
    gram = F.pad(z.transpose(1, 2) @ z, (0, width))  # (B, L, L + width)
    t = torch.arange(length, device=z.device)
    index = (t * (length + width + 1))[None, :] + torch.arange(width, device=z.device)[:, None]  # (width, L)
    return gram.flatten(1)[:, index]


def gram_index(width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Index tensors of :func:`sliding_window_gram` for rows of ``width``: the (lag, first row) of every
    upper-triangle entry of a width × width matrix, lag-major, each ``(width (width + 1) / 2,)``, and for each
    (i, j) of the matrix its position in that list, ``(width²,)``. Built once by the layer that owns them."""
    pairs = [(lag, a) for lag in range(width) for a in range(width - lag)]
    lag, first = torch.tensor(pairs, dtype=torch.long).T
    offsets = [0]
    for d in range(width):
        offsets.append(offsets[-1] + width - d)
    i, j = torch.meshgrid(torch.arange(width), torch.arange(width), indexing="ij")
    symmetric = (torch.tensor(offsets[:-1])[(j - i).abs()] + torch.minimum(i, j)).reshape(-1)
    return lag.contiguous(), first.contiguous(), symmetric


def sliding_window_gram(
    z: Tensor, width: int, index: tuple[Tensor, Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """Gram matrix and mean of all sliding rows of a sequence batch, without materialising the rows.

    The rows are ``z[b, e, s : s + width]`` for every channel ``e`` and shift ``s = 0 .. L - width``. Their Gram
    entry ``(a, a + d)`` is a sum of lag-``d`` products, ``Σ_e Σ_s z[e, s + a] z[e, s + a + d]``, computed from
    one cumulative sum of the lag products: a few vectorised operations instead of a batched product over
    ``E · shifts`` rows (which is memory-bound on CPUs).

    Args:
        z: ``(B, E, L)``.
        width: row length, ``1 .. L``.
        index: :func:`gram_index` of ``width`` on ``z``'s device (built here when not given; a layer keeps its
            own as buffers, so its forward pass makes no tensor from Python data).

    Returns:
        ``gram`` ``(B, width, width)`` and ``mean`` ``(B, width)`` (the mean row).
    """
    b, e, length = z.shape
    shifts = length - width + 1
    lag, first, symmetric = gram_index(width) if index is None else index
    lag, first, symmetric = lag.to(z.device), first.to(z.device), symmetric.to(z.device)
    products = lag_products(z, width)
    cumulative = F.pad(products.cumsum(-1), (1, 0))  # (B, width, L + 1), c[d, j] = Σ_{t<j}
    flat = cumulative[:, lag, first + shifts] - cumulative[:, lag, first]  # (B, width (width + 1) / 2)
    gram = flat[:, symmetric].reshape(b, width, width)
    totals = F.pad(z.sum(1).cumsum(-1), (1, 0))  # (B, L + 1)
    # the rows' starts 0 .. width - 1 are the lag-0 entries' first rows
    starts = first[:width]
    mean = (totals[:, starts + shifts] - totals[:, starts]) / (e * shifts)  # (B, width)
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
        # the Gram's index tensors, made once (not per forward pass) and moved with the layer; not persistent,
        # so checkpoints hold the same weights as before them
        names = ("gram_lag", "gram_first", "gram_symmetric")
        for name, index in zip(names, gram_index(self.lookback + horizon), strict=True):
            self.register_buffer(name, index, persistent=False)

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
        index = (self.gram_lag, self.gram_first, self.gram_symmetric)
        gram, mean = sliding_window_gram(z, k + h, index)  # (B, k + H, k + H), (B, k + H)
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
