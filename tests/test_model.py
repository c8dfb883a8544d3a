"""The Forecaster: per-window independence, checkpoint round trip, λ, optimizer groups, dollar metrics."""

import numpy as np
import pytest
import torch
from helpers import fit_briefly

from forecast.data import StockDataModule
from forecast.model import Forecaster, ForecastMetrics, drift_forecast, naive_forecast
from forecast.model.blocks import RidgePostdiction
from forecast.model.metrics import mean_return_forecast


@pytest.mark.parametrize("lookback", [None, 3])
def test_forecast_of_a_window_does_not_depend_on_its_batch_mates(batch, lookback):
    torch.manual_seed(0)
    model = Forecaster(lookback=lookback).eval()
    with torch.no_grad():
        alone = model(batch["x"][:1])
        together = model(batch["x"])[:1]
        shuffled = model(batch["x"].flip(0))[-1:]
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shuffled, alone, rtol=1e-5, atol=1e-6)


def test_pooled_ridge_depends_on_batch_mates_the_tutorials_flaw(batch):
    torch.manual_seed(0)
    model = Forecaster(pool="batch").eval()
    with torch.no_grad():
        alone = model(batch["x"][:1])
        together = model(batch["x"])[:1]
    assert (together - alone).abs().max() > 1e-3


def test_postdiction_rows_match_hand_layout():
    # E=1 channel with values 0..9, base 10, horizon 2, lookback 3: 6 shifts, rows [s, s+1, s+2] -> [s+3, s+4]
    layer = RidgePostdiction(base_len=10, horizon=2, lookback=3, init_lam=2e-4).double()
    z = torch.arange(10, dtype=torch.float64).reshape(1, 1, 10)
    assert layer.shifts == 6
    # a linear sequence is continued by the (near-unregularised) fitted map: 10, 11, up to the shrinkage of a
    # relative λ of 2e-4 (0.012 and 0.019 here); a wrong row layout would miss by whole units
    torch.testing.assert_close(layer(z), torch.tensor([[[10.0, 11.0]]], dtype=torch.float64), atol=3e-2, rtol=0)
    with pytest.raises(ValueError, match=r"model.lookback 9 must be in 1\.\.8"):
        RidgePostdiction(base_len=10, horizon=2, lookback=9)


def test_lambda_positive_gets_gradient_and_every_group_steps(batch):
    torch.manual_seed(0)
    model = Forecaster()
    assert float(model.lam.detach()) > 0
    optim_config = model.configure_optimizers()
    optimizer = optim_config["optimizer"]
    assert len(optimizer.param_groups) == 2
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert [p is model.predictor.ridge.raw_lam for p in optimizer.param_groups[1]["params"]] == [True]
    before = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]
    loss = model.training_loss(batch)
    loss.backward()
    assert model.predictor.ridge.raw_lam.grad is not None and model.predictor.ridge.raw_lam.grad.abs() > 0
    optimizer.step()
    for group, old in zip(optimizer.param_groups, before, strict=True):
        assert any(not torch.equal(p, o) for p, o in zip(group["params"], old, strict=True))


def test_checkpoint_round_trip_without_config(tmp_path, batch):
    dm = StockDataModule(source="synthetic", synthetic_tickers=2, batch_size=64)
    model = Forecaster(lookback=5, encoder_channels=(3, 6), decoder_channels=(4,), skip=False)
    trainer = fit_briefly(model, dm, tmp_path)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = Forecaster.load_from_checkpoint(path, weights_only=True)
    assert restored.hparams.lookback == 5 and restored.hparams.encoder_channels == (3, 6)
    model.eval()
    restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(batch["x"]), model(batch["x"]), rtol=0, atol=0)
    assert torch.load(path, weights_only=True)["datamodule_hyper_parameters"]["synthetic_tickers"] == 2


def test_metrics_against_numpy_reference():
    rng = np.random.default_rng(0)
    base = 100 + rng.normal(size=(50, 30)).cumsum(1)
    target = base[:, -1:] + rng.normal(size=(50, 10)).cumsum(1)
    forecast = base[:, -1:] + rng.normal(scale=0.5, size=(50, 10))
    metrics = ForecastMetrics(horizon=10)
    for chunk in np.array_split(np.arange(50), 3):  # several batches
        metrics.update(*(torch.tensor(a[chunk]) for a in (forecast, base, target)))
    out = metrics.compute()
    err = forecast - target
    naive_err = base[:, -1:] - target
    assert float(out["model"]["mae"]) == pytest.approx(np.abs(err).mean(), rel=1e-12)
    assert float(out["model"]["rmse"]) == pytest.approx(np.sqrt((err**2).mean()), rel=1e-12)
    assert float(out["model"]["mape"]) == pytest.approx(100 * np.mean(np.abs(err) / np.abs(target)), rel=1e-9)
    smape = 100 * np.mean(2 * np.abs(err) / (np.abs(target) + np.abs(forecast)))
    assert float(out["model"]["smape"]) == pytest.approx(smape, rel=1e-9)
    assert float(out["model"]["rel_mae"]) == pytest.approx(np.abs(err).mean() / np.abs(naive_err).mean(), rel=1e-12)
    np.testing.assert_allclose(out["model"]["mae_step"].numpy(), np.abs(err).mean(0), rtol=1e-12)
    slope = (base[:, -1] - base[:, 0]) / 29
    drift = base[:, -1:] + slope[:, None] * np.arange(1, 11)
    assert float(out["drift"]["mae"]) == pytest.approx(np.abs(drift - target).mean(), rel=1e-12)
    assert float(out["naive"]["rel_mae"]) == 1.0


def test_baselines_hand_computed():
    base = torch.tensor([[1.0, 2.0, 3.0]])
    assert naive_forecast(base, 2).tolist() == [[3.0, 3.0]]
    assert drift_forecast(base, 2).tolist() == [[4.0, 5.0]]
    assert mean_return_forecast(base.double(), 0.1, 2)[0].tolist() == pytest.approx([3 * np.exp(0.1), 3 * np.exp(0.2)])


@pytest.mark.parametrize("width", [1, 4, 13])
def test_sliding_window_gram_equals_explicit_rows(width):
    from forecast.model.blocks import gram_tables, sliding_window_gram

    z = torch.randn(3, 5, 30, dtype=torch.float64)
    rows = z.unfold(-1, width, 1).reshape(3, -1, width)  # (B, E * shifts, width), materialised
    gram, mean = sliding_window_gram(z, width)
    torch.testing.assert_close(gram, rows.mT @ rows, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(mean, rows.mean(1), rtol=1e-12, atol=1e-12)
    # tables made for another length (a layer's, for its base_len) are not read: the sequence's own are made
    other = sliding_window_gram(z, width, gram_tables(20, width))
    torch.testing.assert_close(other[0], gram, rtol=0, atol=0)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_postdiction_equals_ridge_on_explicit_rows(fit_intercept):
    """The Gram shortcut gives the same forecasts and gradients as ridge_solve on materialised rows."""
    from forecast.nn import RidgeRegression

    layer = RidgePostdiction(base_len=30, horizon=10, lookback=3, init_lam=0.7, fit_intercept=fit_intercept).double()
    reference = RidgeRegression(init_lam=0.7, fit_intercept=fit_intercept).double()
    z1 = torch.randn(4, 6, 30, dtype=torch.float64, requires_grad=True)
    z2 = z1.detach().clone().requires_grad_(True)
    rows = z2.unfold(-1, 13, 1).reshape(4, -1, 13)
    expected = reference(rows[..., :3], rows[..., 3:], z2[..., -3:])
    got = layer(z1)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    got.pow(2).sum().backward()
    expected.pow(2).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-8, atol=1e-9)


def test_rel_mae_loss_is_the_protocols_metric_on_the_batch(batch):
    # the training loss must equal the validation metric computed by torchmetrics in float64 on the same batch
    torch.manual_seed(0)
    model = Forecaster(loss="rel_mae")
    prediction = model(batch["x"])  # (B, 1, H)
    loss = model.loss_fn(prediction[:, None], batch)
    metrics = ForecastMetrics(prediction.shape[-1])
    metrics.update(model.to_dollars(prediction.detach(), batch)[:, 0], batch["base_close"], batch["target"])
    expected = metrics.compute()["model"]["rel_mae"]
    torch.testing.assert_close(loss.detach().double(), expected, rtol=1e-5, atol=0)
    loss.backward()
    assert model.predictor.ridge.raw_lam.grad is not None


def test_members_are_independent_and_the_forecast_is_their_mean(batch):
    torch.manual_seed(0)
    model = Forecaster(members=3, encoder_channels=(4, 8), decoder_channels=(4,))
    members = model.member_forecasts(batch["x"])[:, :, 0]  # (B, K, Q, H) with one level
    assert members.shape == (batch["x"].shape[0], 3, 10)
    torch.testing.assert_close(model(batch["x"]), members.mean(dim=1, keepdim=True))
    assert not torch.allclose(members[:, 0], members[:, 1])  # different initialisations
    # member 1's forecast depends on member 1's weights only (and on the shared λ)
    members[:, 1].sum().backward()
    first, last = model.encoder[0].weight.grad, model.decoder[-1].weight.grad  # (3·4, C, k), (3·1, 4, k)
    assert first[4:8].abs().sum() > 0 and first[:4].abs().sum() == 0 and first[8:].abs().sum() == 0
    assert last[1].abs().sum() > 0 and last[0].abs().sum() == 0 and last[2].abs().sum() == 0
    assert model.predictor.ridge.raw_lam.grad.abs() > 0


def test_members_need_per_sample_regressions():
    with pytest.raises(ValueError, match="members must be 1, or more with pool='sample'"):
        Forecaster(members=2, pool="batch")


def test_time_gram_gradient_is_autograds_through_the_plain_product():
    from forecast.model.blocks import time_gram

    z = torch.randn(3, 4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(time_gram, (z,))
    weights = torch.randn(3, 7, 7, dtype=torch.float64)  # not symmetric: both halves of the gradient count
    (ours,) = torch.autograd.grad((time_gram(z) * weights).sum(), z)
    (plain,) = torch.autograd.grad(((z.mT @ z) * weights).sum(), z)
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # no autograd.Function where nothing is differentiated (exported programs)
        torch.testing.assert_close(time_gram(z), z.mT @ z, rtol=0, atol=0)


@pytest.mark.parametrize("width", [1, 4, 7])
def test_sliding_window_gram_passes_gradcheck_against_explicit_rows(width):
    from forecast.model.blocks import sliding_window_gram

    z = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sliding_window_gram(t, width), (z,))
    weights = torch.randn(2, width, width, dtype=torch.float64)
    (ours,) = torch.autograd.grad((sliding_window_gram(z, width)[0] * weights).sum(), z)
    rows = z.unfold(-1, width, 1).reshape(2, -1, width)  # (B, E * shifts, width), materialised
    (explicit,) = torch.autograd.grad(((rows.mT @ rows) * weights).sum(), z)
    torch.testing.assert_close(ours, explicit, rtol=1e-12, atol=1e-12)


def test_report_figures_are_drawn_in_eval_mode(batch):
    from forecast.callbacks import forecast_examples

    class Rows:  # a dataset of the batch's windows
        def __len__(self):
            return len(batch["x"])

        def __getitems__(self, picks):
            return {
                k: v[picks] if torch.is_tensor(v) else [v[i] for i in picks] if isinstance(v, list) else v
                for k, v in batch.items()
            }

    torch.manual_seed(0)
    model = Forecaster(dropout=0.5).train()
    _, forecast, quantiles, levels = forecast_examples(model, Rows(), 3)
    assert quantiles is None and levels is None  # a point model
    assert model.training  # the caller's mode is restored
    picked = Rows().__getitems__([0, 7, 15])
    with torch.no_grad():
        expected = model.eval().forecast_dollars(picked)
    torch.testing.assert_close(forecast, expected)  # dropout off: deterministic, the eval-mode forecast


def test_a_model_first_run_in_inference_mode_still_trains():
    """predict runs under inference mode; the Gram's index tensors (buffers) must still serve a later training."""
    torch.manual_seed(0)
    model = Forecaster(base_len=17, horizon=3, lookback=4)
    x = torch.randn(2, 1, 17)
    with torch.inference_mode():
        model(x)
    model(x).sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    # the index buffers are not weights: a checkpoint's keys are those of the model before they existed
    assert not any("gram_" in key or "level_values" in key for key in model.state_dict())


def test_the_divergence_watch_names_the_first_non_finite_step_read_back_later():
    from forecast.errors import TrainingDivergedError
    from forecast.model.loss_watch import LossWatch

    watch = LossWatch()
    for step, loss in enumerate([1.0, 0.5, float("nan"), float("inf"), 0.4]):
        watch.update(torch.tensor(loss), step, epoch=2)  # no check yet: nothing is read back
    with pytest.raises(TrainingDivergedError, match=r"became nan at epoch 2, step 2;"):
        watch.check()
    watch.reset()
    watch.update(torch.tensor(0.3), 7, 3, check=True)  # finite: no error
    with pytest.raises(TrainingDivergedError, match="became inf at epoch 3, step 8"):
        watch.update(torch.tensor(float("inf")), 8, 3, check=True)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_train_loss_is_logged_when_lightning_writes_as_the_mean_of_the_steps_since(tmp_path, accumulate):
    """log_every_n_steps 3 over 2 epochs of 4 optimizer steps: Lightning writes after optimizer steps 3 and 6 (its
    step numbers 2 and 5); each value is the mean of the losses of the batches since the last write, taken from the
    loop's own outputs (with gradient accumulation, of every batch of those steps); lambda is written with it."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger

    class Recorder(Logger, Callback):
        name, version = "recorder", 0

        def __init__(self):
            super().__init__()
            self.written: list[tuple[int, dict[str, float]]] = []
            self.losses: list[float] = []

        def log_metrics(self, metrics, step=None):
            self.written.append((step, dict(metrics)))

        def log_hyperparams(self, params, *args, **kwargs):
            pass

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.losses.append(float(outputs["loss"]))

    torch.manual_seed(0)
    dm = StockDataModule(source="synthetic", synthetic_tickers=3, batch_size=16, base_len=20, horizon=5)
    model = Forecaster(base_len=20, horizon=5, lookback=3)
    recorder = Recorder()
    trainer = L.Trainer(max_epochs=2, limit_train_batches=4 * accumulate, limit_val_batches=0, log_every_n_steps=3,
                        accumulate_grad_batches=accumulate, logger=recorder, callbacks=[recorder],
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    steps = [(step, m["train/loss"], m["lambda"]) for step, m in recorder.written if "train/loss" in m]
    assert [s for s, _, _ in steps] == [2, 5]
    losses = recorder.losses  # Lightning's outputs["loss"] is divided by accumulate: the batch's own loss times that
    losses = [loss * accumulate for loss in losses]
    assert steps[0][1] == pytest.approx(np.mean(losses[0 : 3 * accumulate]), rel=1e-6)
    assert steps[1][1] == pytest.approx(np.mean(losses[3 * accumulate : 6 * accumulate]), rel=1e-6)
    assert all(lam > 0 for _, _, lam in steps)


def test_an_anchored_model_learns_its_drift_from_the_training_days_and_keeps_it(tmp_path):
    from forecast.data.baselines import mean_daily_log_return

    dm = StockDataModule(source="synthetic", synthetic_tickers=3, batch_size=16, base_len=20, horizon=5,
                         train_end="2015-12-31", val_end="2016-12-31")  # fmt: skip
    model = Forecaster(base_len=20, horizon=5, lookback=3, anchor="mean_return")
    assert torch.isnan(model.adjustment.drift)
    trainer = fit_briefly(model, dm, tmp_path)
    expected = mean_daily_log_return(dm.load_panel(), "2015-12-31")
    assert model.adjustment.drift.item() == pytest.approx(expected, rel=1e-12) and expected != 0
    path = tmp_path / "anchored.ckpt"
    trainer.save_checkpoint(path)
    assert Forecaster.load_from_checkpoint(path).adjustment.drift.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="learns its drift from the training days of a StockDataModule"):
        Forecaster(anchor="mean_return").adjustment.learn(object(), "fit")


def test_a_training_step_under_bf16_autocast_solves_in_float32(batch):
    # --trainer.precision bf16-mixed: the Gram comes in bf16, the ridge solve runs in float32, gradients flow back
    from forecast.nn.ridge import ridge_solve_normal

    torch.manual_seed(0)
    model = Forecaster()
    square = torch.randn(4, 3, 3)
    gram, cross = (square @ square.mT + torch.eye(3)).bfloat16(), torch.randn(4, 3, 2).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.training_loss(batch)
        w = ridge_solve_normal(gram, cross, torch.tensor(0.1))
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, ridge_solve_normal(gram.float(), cross.float(), torch.tensor(0.1)), rtol=0, atol=0)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.predictor.ridge.raw_lam.grad.abs() > 0
