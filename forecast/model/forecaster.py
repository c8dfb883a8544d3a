"""``Forecaster``: 1D-CNN encoder → implicit ridge postdiction → 1D-CNN decoder, as a LightningModule."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from forecast.checkpoint import INIT_FROM_KEY, TRAINING_KEY, read_checkpoint, upgrade_checkpoint
from forecast.data.normalise import denormalise
from forecast.data.windows import Batch
from forecast.model.anchor import ForecastAdjustment
from forecast.model.blocks import postdiction_network
from forecast.model.conformal import UNCALIBRATED, IntervalCalibration
from forecast.model.evaluation import EvaluationSteps
from forecast.model.loss_watch import LossWatch
from forecast.model.losses import LOSSES, forecast_loss
from forecast.model.metrics import ForecastMetrics
from forecast.model.optim import optimizer_and_schedule
from forecast.model.quantiles import IntervalMetrics, VolatilityPrior, check_levels, interval_quantiles

log = logging.getLogger(__name__)


class Forecaster(EvaluationSteps, L.LightningModule):
    """Forecast ``horizon`` days of Close from a normalised base of ``base_len`` days.

    Shapes: input ``x`` (B, C, L) → encoder (B, E, L) → ridge postdiction (B, E, H) → decoder (B, 1, H), all in
    the window's normalised units; metrics are in dollars. With Q quantile levels the other Q − 1 levels come from a
    volatility prior the network corrects: the forecast is (B, Q, H), its median the point forecast.

    Args:
        in_channels: input channels C (linked from the data's ``channels``).
        base_len: L, days in the base (linked from the data).
        horizon: H, days forecast (linked from the data).
        target_channel: index of Close among the inputs (linked from the data).
        encoder_channels: output channels of the encoder's conv layers; the last is E.
        decoder_channels: hidden channels of the decoder (it ends in one channel).
        kernel_size: odd convolution width, in days.
        activation: ``elu``, ``relu``, ``gelu`` or ``tanh``.
        batch_norm: BatchNorm after each hidden conv layer.
        dropout: dropout after each hidden conv layer.
        lookback: features per ridge row (default ``base_len - horizon``); shorter adds sliding-shift rows.
        pool: ``sample`` (one regression per window) or ``batch`` (the tutorial's pooled regression).
        init_lam: initial ridge weight λ, relative to the encoded features' mean square (learned, softplus: always
            positive); 0.01 was best of 1, 0.1, 0.01, 0.001 on the 2015 and 2016 validation years.
        fit_intercept: unregularised intercept in each regression.
        skip: add the last normalised base value of Close, so the network predicts a correction to it.
        anchor: ``mean_return``: correct the mean-return baseline's path, not the last value (:mod:`.anchor`).
        loss: ``mse``, ``mae`` or ``huber`` in normalised units, or ``rel_mae``: the batch's MAE in dollars over the
            naive forecast's, the protocol's metric, which weights each window by what a normalised unit is worth.
        huber_delta: Huber threshold, in normalised units.
        quantiles: quantile levels to forecast (unset: a point forecast), e.g. ``[0.1, 0.5, 0.9]`` (increasing, in
            (0, 1), with 0.5: the median is the point forecast), non-crossing by construction. The loss is twice the
            pinball loss averaged over the levels; the other levels' losses never reach the median's path.
        intervals: how the other levels are made: ``vol_prior`` (a learned correction to the base's own volatility
            random walk, :class:`.quantiles.VolatilityPrior`: one small convolution) or ``network`` (a second network
            of the same shape learns the steps from the median: twice the cost; checkpoints before it was an option).
        members: an ensemble of this many independently initialised networks, trained side by side (grouped
            convolutions, one regression per member and window, a shared λ), each on its own loss; forecast: the mean.
        compile: run the network through ``torch.compile`` (``fullgraph=True``); not in the checkpoint (same weight
            names). Off by default: on a CPU it saves less than its first compile costs (docs/results.md).
        lam_lr: learning rate of λ's own parameter group (default: the optimizer's); never weight-decayed.
        optimizer: optimizer factory (default ``AdamW(lr=1e-3, weight_decay=1e-2)``).
        lr_scheduler: LR scheduler factory (default ``ExponentialLR(gamma=0.9)``, stepped each epoch).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_len: int = 30,
        horizon: int = 10,
        target_channel: int = 0,
        encoder_channels: tuple[int, ...] = (4, 8, 16),
        decoder_channels: tuple[int, ...] = (8, 4),
        kernel_size: int = 5,
        activation: Literal["elu", "relu", "gelu", "tanh"] = "elu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        lookback: int | None = None,
        pool: Literal["sample", "batch"] = "sample",
        init_lam: float = 0.01,
        fit_intercept: bool = False,
        skip: bool = True,
        anchor: Literal["last", "mean_return"] = "last",
        loss: Literal["mse", "mae", "huber", "rel_mae"] = "mae",
        huber_delta: float = 1.0,
        quantiles: list[float] | None = None,
        intervals: Literal["vol_prior", "network"] = "vol_prior",
        lam_lr: float | None = None,
        members: int = 1,
        compile: bool = False,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        # optimizer factories are code, not hyperparameters: a checkpoint must load with weights_only=True
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler", "compile"])
        self.adjustment = ForecastAdjustment(anchor, skip, horizon)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        if not 0 <= target_channel < in_channels:
            raise ValueError(f"target_channel {target_channel} is not among the {in_channels} input channels")
        if members < 1 or (members > 1 and pool != "sample"):
            raise ValueError(f"members must be 1, or more with pool='sample'; got members={members}, pool={pool!r}")
        self.levels = check_levels(quantiles) if quantiles is not None else [0.5]
        self.median_index = self.levels.index(0.5)
        # the levels as a tensor that moves with the model (not persistent: checkpoints keep their keys)
        self.register_buffer("level_values", torch.tensor(self.levels), persistent=False)
        if quantiles is not None and loss != "mae":
            raise ValueError(f"quantiles need loss mae (the pinball loss is its quantile form), got loss {loss!r}")

        def network(outputs: int) -> nn.ModuleDict:
            return postdiction_network(
                [in_channels, *encoder_channels],
                [*decoder_channels, outputs],
                (base_len, horizon, lookback, pool, init_lam, fit_intercept),
                (kernel_size, activation, batch_norm, dropout, members),
            )

        point = network(1)  # built first, so that the point path starts as the point model's does
        self.encoder, self.predictor, self.decoder = point["encoder"], point["predictor"], point["decoder"]
        # the other levels: a correction to a volatility prior, or a second network of the same shape
        self.interval_net = network(len(self.levels) - 1) if len(self.levels) > 1 and intervals == "network" else None
        many = len(self.levels) > 1 and intervals == "vol_prior"
        self.prior = VolatilityPrior(self.levels, encoder_channels[-1], members, target_channel) if many else None
        self.calibration = IntervalCalibration(self.levels, horizon) if len(self.levels) > 1 else None
        self.optimizer_factory, self.scheduler_factory, self.losses = optimizer, lr_scheduler, LossWatch()
        self.compile_network = compile  # not self.compile: that is nn.Module's own method
        self._compiled: Any = None  # made at the first call; not a module, so no weight names of its own
        # the command line's optimizer and schedule, and a warm start's checkpoint: kept in every checkpoint
        self.training_settings: dict[str, Any] | None = None
        self.init_from: str | None = None
        self.val_metrics = ForecastMetrics(horizon)
        self.test_metrics = ForecastMetrics(horizon)
        self.val_intervals = IntervalMetrics(self.levels, horizon) if quantiles is not None else None
        self.test_intervals = IntervalMetrics(self.levels, horizon) if quantiles is not None else None
        # the naive-quantile baseline's price ratios (Q, H), from the training split (see setup)
        self.naive_ratios: Tensor | None = None
        # the last test run's metrics {forecaster: {metric: value}} (the test report's), and a quantile model's
        self.test_results: dict[str, dict[str, Tensor]] | None = None
        self.test_interval_results: dict[str, Tensor] | None = None

    @property
    def quantile_levels(self) -> list[float] | None:
        """The quantile levels of a quantile model, None for a point model."""
        return self.levels if self.hparams.get("quantiles") is not None else None

    @property
    def uncalibrated(self) -> bool:
        """A quantile model whose intervals carry no conformal shifts (False for a point model)."""
        return self.calibration is not None and not bool(self.calibration.calibrated)

    def setup(self, stage: str) -> None:
        # the naive-quantile baseline comes from the DataModule's training split, when it can give one
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.quantile_levels is not None and hasattr(datamodule, "naive_quantile_ratios"):
            ratios = datamodule.naive_quantile_ratios(self.levels)
            self.naive_ratios = None if ratios is None else torch.as_tensor(ratios, dtype=torch.float64)
        self.adjustment.learn(datamodule, stage)  # the anchor's μ, from the training days
        fraction = (getattr(datamodule, "hparams", None) or {}).get("calibration_fraction")
        if self.calibration is None and stage == "fit" and fraction:
            log.warning("data.calibration_fraction keeps days apart for a quantile model's intervals: unused here")

    # ----------------------------------------------------------------------------------------------- model
    def forward(self, x: Tensor, calibrated: bool = True) -> Tensor:
        """Normalised base ``(B, C, L)`` → normalised forecast ``(B, Q, H)`` (Q = 1: point), the members' mean;
        a quantile model's intervals conformally shifted (those of the members' mean, as they were fitted) unless
        ``calibrated`` is False."""
        out = self.member_forecasts(x).mean(dim=1)
        return self.calibration(out) if calibrated and self.calibration is not None else out

    def member_forecasts(self, x: Tensor) -> Tensor:
        """Normalised base ``(B, C, L)`` → each member's normalised forecast ``(B, K, Q, H)``, K = ``members``."""
        if self.compile_network and self._compiled is None:
            # dynamic: the last batch of an epoch is smaller; one graph for every batch size, not one per size
            self._compiled = torch.compile(self._member_forecasts, fullgraph=True, dynamic=True)
        return self._compiled(x) if self.compile_network else self._member_forecasts(x)

    def _member_forecasts(self, x: Tensor) -> Tensor:
        k = self.hparams.members
        out, encoded = self._run_network(x, self.encoder, self.predictor, self.decoder)
        out = out.reshape(x.shape[0], k, 1, -1)  # (B, K, 1, H); x.shape[0], not len(x): a symbolic size for export
        if self.hparams.skip:
            c = self.hparams.target_channel
            out = out + x[:, None, c : c + 1, -1:]  # correction to the last base value
        if self.interval_net is not None:
            # the steps from the median to the other levels: their own network, so point accuracy never pays
            net = self.interval_net
            raw = self._run_network(x, net["encoder"], net["predictor"], net["decoder"])[0]  # (B, K·(Q − 1), H)
            out = interval_quantiles(out, raw.reshape(x.shape[0], k, len(self.levels) - 1, -1), self.median_index)
        elif self.prior is not None:
            out = self.prior(out, encoded, x)
        return out

    def _run_network(self, x: Tensor, *net: nn.Module) -> tuple[Tensor, Tensor]:
        """Encoder → ridge postdiction → decoder: ``(B, C, L)`` → ``(B, K·D, H)`` (D: the decoder's outputs), and
        the encoded forecast ``(B, K·E, H)``."""
        encoder, predictor, decoder = net
        k = self.hparams.members
        z = encoder(x)  # (B, K·E, L)
        b, ke, length = z.shape
        # each member's regression sees only its own E channels: the members are the batch of the predictor
        future = predictor(z.reshape(b * k, ke // k, length))  # (B·K, E, H)
        return decoder(future.reshape(b, ke, -1)), future.reshape(b, ke, -1)

    @property
    def lam(self) -> Tensor:
        """The ridge weight λ (positive scalar)."""
        return self.predictor.lam

    @staticmethod
    def to_dollars(prediction: Tensor, batch: Batch) -> Tensor:
        """Normalised forecasts ``(B, Q, H)`` of ``batch`` → dollars ``(B, Q, H)``, float64 (an increasing map)."""
        return denormalise(prediction.double(), batch["loc"], batch["scale"], batch["normalisation"])

    def forecast_dollars(self, batch: Batch) -> Tensor:
        """Point forecasts (the median of a quantile model) of a batch in dollars, ``(B, H)`` float64."""
        return self.quantile_dollars(batch)[:, self.median_index]

    def quantile_dollars(self, batch: Batch) -> Tensor:
        """Every level's forecast of a batch in dollars, ``(B, Q, H)`` float64."""
        return self.to_dollars(self.adjustment(self(batch["x"]), batch), batch)

    def loss_fn(self, prediction: Tensor, batch: Batch) -> Tensor:
        """Loss of normalised forecasts ``(B, K, Q, H)`` (K forecasts of each window, K >= 1) against the batch's
        targets: the mean over the K of each one's loss (a scalar); :func:`forecast.model.losses.forecast_loss`."""
        levels = self.level_values if self.quantile_levels is not None else None
        return forecast_loss(prediction, batch, self.hparams.loss, levels, self.hparams.huber_delta)

    # ------------------------------------------------------------------------------------------- loop steps
    def training_loss(self, batch: Batch) -> Tensor:
        """The loss one optimizer step minimises (a scalar)."""
        # each member learns on its own loss, so they stay an ensemble rather than one wider network
        return self.loss_fn(self.adjustment(self.member_forecasts(batch["x"]), batch), batch)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.training_loss(batch)
        # Lightning writes step metrics after a batch that steps the optimizer when (optimizer steps + 1) %
        # log_every_n_steps == 0: log only then, the mean loss since the last write (a self.log costs ~1 ms: two a
        # step were 9% of a DJIA fit), and check then.
        every, size, trainer = self.trainer.log_every_n_steps, batch["x"].shape[0], self.trainer
        steps = (batch_idx + 1) % trainer.accumulate_grad_batches == 0
        due = (steps and (every <= 1 or (self.global_step + 1) % every == 0)) or bool(trainer.fast_dev_run)
        self.losses.update(loss, self.global_step, self.current_epoch, check=due)
        if due:
            self.log("train/loss", self.losses.take_mean().float(), prog_bar=True, batch_size=size)
            self.log("lambda", self.lam.detach(), batch_size=size)
        return loss

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """``{"index": (B,) window indices, "forecast": (B, H) dollars}``, and for a quantile model
        ``"quantiles": (B, Q, H)`` dollars."""
        dollars = self.quantile_dollars(batch)
        out = {"index": batch["index"], "forecast": dollars[:, self.median_index]}
        if self.quantile_levels is not None:
            out["quantiles"] = dollars
        return out

    # ------------------------------------------------------------------------------------------- optimizer
    def on_train_start(self) -> None:
        self.losses.reset()

    def on_train_epoch_start(self) -> None:
        if self.calibration is not None:  # the weights change now: no checkpoint may keep shifts of others
            self.calibration.reset()

    def on_train_epoch_end(self) -> None:
        self.losses.check()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_checkpoint(checkpoint)  # one saved before a later change, read by Lightning itself

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Forecaster:  # type: ignore[override]
        """Lightning's, for a checkpoint of any version: its interval kind is known before the model is built."""
        if isinstance(checkpoint_path, (str, Path)):
            hparams = read_checkpoint(str(checkpoint_path)).get("hyper_parameters") or {}  # upgraded
            kwargs.setdefault("intervals", hparams.get("intervals", "vol_prior"))
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    def on_predict_start(self) -> None:
        if self.uncalibrated:
            log.warning(UNCALIBRATED)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.losses.check()  # never save the weights of a diverged training
        if self.training_settings is not None:
            checkpoint[TRAINING_KEY] = self.training_settings
        if self.init_from is not None:
            checkpoint[INIT_FROM_KEY] = self.init_from

    def configure_optimizers(self) -> Any:
        return optimizer_and_schedule(self, self.optimizer_factory, self.scheduler_factory, self.hparams.lam_lr)
