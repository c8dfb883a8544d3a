"""The fit summary: every validation epoch of a run (resumed parts included), its best, and where it is saved."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from forecast.signals import pause_here

INTERVAL_SCORES = ("coverage_", "width_", "scaled_pinball")
"""Validation metrics of a quantile model that the summary keeps beside MAE and relMAE (name prefixes)."""


class FitSummary(Callback):
    """Record each validation epoch of ``fit``; at its end write ``fit_summary.json`` to the run folder and print
    the best epoch and the best and last checkpoint paths.

    The history travels in the checkpoints (this callback's state), so after ``fit --ckpt_path last`` the
    summary and the printed best epoch cover the whole run, and ``seconds`` count the training time of all
    its parts (not the time between them).

    ``fit_summary.json``: ``best_epoch``, ``best_val_mae`` ($), ``best_val_rel_mae``, ``seconds_to_best``,
    ``seconds_total``, ``epochs``, ``peak_rss_mb``, ``torch_threads``, ``best_checkpoint``, ``last_checkpoint``
    and ``history`` (one ``{epoch, mae, rel_mae, seconds}`` per validation epoch).
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.summary: dict[str, Any] | None = None  # what fit_summary.json holds, once the fit has ended
        self._elapsed_before = 0.0  # seconds of training in earlier parts of a resumed run
        self._started = time.monotonic()

    def _seconds(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # a checkpoint's state, when resuming, is loaded after this
            self.history, self._elapsed_before, self._started = [], 0.0, time.monotonic()

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "seconds": self._seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self._elapsed_before = float(state_dict.get("seconds", 0.0))
        self._started = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or trainer.state.fn != "fit" or "val/mae" not in metrics:
            return
        row = {
            "epoch": trainer.current_epoch,
            "mae": float(metrics["val/mae"]),
            "rel_mae": float(metrics["val/rel_mae"]),
        }
        # a quantile model's interval scores
        for name, value in metrics.items():
            if name.removeprefix("val/").startswith(INTERVAL_SCORES):
                row[name.removeprefix("val/")] = float(value)
        self.history.append({**row, "seconds": self._seconds()})
        if trainer.progress_bar_callback is None and trainer.is_global_zero:  # no bar: a plain line per epoch
            line = f"epoch {row['epoch']}: val relMAE {row['rel_mae']:.4f}, MAE ${row['mae']:.4f}"
            print(f"{line}, {self._seconds():.1f} s", flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = Path(trainer.log_dir or ".")  # a collective call under DDP: every rank makes it
        if not trainer.is_global_zero or not self.history:
            return
        pause_here("writing")
        best_path, last_path = checkpoint_paths(trainer)
        best = min(self.history, key=lambda row: row["mae"])
        summary = {
            "best_epoch": best["epoch"],
            "best_val_mae": best["mae"],
            "best_val_rel_mae": best["rel_mae"],
            **{f"best_val_{k}": v for k, v in best.items() if k.startswith(INTERVAL_SCORES)},
            "seconds_to_best": best["seconds"],
            "seconds_total": self.history[-1]["seconds"],
            "epochs": len(self.history),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch_threads": torch.get_num_threads(),
            "best_checkpoint": best_path,
            "last_checkpoint": last_path,
            "history": self.history,
        }
        self.summary = summary
        if trainer.logger is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "fit_summary.json").write_text(json.dumps(summary, indent=2))
        print(
            f"best validation epoch {best['epoch']}: val relMAE {best['rel_mae']:.4f}, MAE ${best['mae']:.4f}, "
            f"reached after {best['seconds']:.1f} s (peak RSS {summary['peak_rss_mb']:.0f} MB, "
            f"{summary['torch_threads']} torch threads)\nbest checkpoint: {best_path or '(none)'}\n"
            f"last checkpoint: {last_path or '(none)'}"
        )


def checkpoint_paths(trainer: L.Trainer) -> tuple[str, str]:
    """(best, last) checkpoint paths of a fit: the monitored checkpoint callback's best, and the unmonitored one's."""
    best = last = ""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint):
            if callback.monitor:
                best = best or callback.best_model_path
            else:
                last = last or callback.best_model_path
    return best, last
