"""The model is one graph: dynamo finds no break in the point or the quantile model's training step or prediction
(no host sync on the fast path), both compile with ``fullgraph=True`` to the eager numbers, and a compiled model's
checkpoint has the eager model's weight names."""

import pytest
import torch

from forecast.model import Forecaster

QUANTILES = [0.1, 0.5, 0.9]


def _model(quantiles: list[float] | None, **options) -> Forecaster:
    torch.manual_seed(0)
    return Forecaster(quantiles=quantiles, **options)


@pytest.mark.parametrize("quantiles", [None, QUANTILES], ids=["point", "quantile"])
def test_training_step_and_prediction_are_one_graph_each(quantiles, batch):
    model = _model(quantiles)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model.training_loss)(batch)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    model.eval()
    with torch.inference_mode():
        explained = torch._dynamo.explain(model.predict_step)(batch, 0)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_compiled_training_equals_eager_and_keeps_weight_names(batch):
    # the quantile model runs the point network too; a small one keeps the inductor compile short (~30 s on CPU);
    # fullgraph=True: a break would be an error
    quantiles = QUANTILES
    options = {"encoder_channels": (4, 8), "decoder_channels": (4,), "lookback": 3}
    eager, compiled = _model(quantiles, **options), _model(quantiles, compile=True, **options)
    torch._dynamo.reset()
    losses = []
    for model in (eager, compiled):
        loss = model.training_loss(batch)
        loss.backward()
        losses.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = losses
    # float32 kernels fused in another order: equal to a few ulps of the loss, not bit for bit
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    compiled.eval()
    eager.eval()
    with torch.inference_mode():
        torch.testing.assert_close(compiled(batch["x"]), eager(batch["x"]), rtol=1e-5, atol=1e-6)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert "compile" not in compiled.hparams
    assert callable(compiled.compile)  # nn.Module.compile is not shadowed by the option
