"""Which volatility estimate is the best prior for the intervals? The interval baselines on validation years: mean
pinball loss ($, levels 0.1/0.5/0.9) and 80 % coverage of each σ estimate, each year's validation windows scored as
a validation-only fold sees them (everything learned through Y−1).

Usage:
    python scripts/interval_priors.py DATA_FILE --years 2015 2016 [--base_len 30] [--horizon 10]

Candidates, each ``c · exp(μ s + z_τ σ_s)`` in dollars unless said:
    naive-quantile — the last close times the s-step ratio quantiles through Y−1 (no σ);
    base std      — σ_s = σ √s, σ the std of the base's daily log returns (the vol-scaled baseline);
    base EWMA     — the same with σ² an exponentially weighted mean of the base's squared log returns (λ 0.94, the
                    RiskMetrics weight: the latest return counts most);
    base diffs    — ``c + z_τ σ_d √s``, σ_d the std of the base's daily price changes (arithmetic: what a prior in the
                    model's normalised units is, where the window is divided by its own std);
    GARCH(1,1)    — σ_s² the sum of the GARCH variance forecasts of steps 1..s (forecast/backtest/garch.py).
"""

from __future__ import annotations

import torch
from _validation_years import validation_year, year_parser

from forecast.backtest.garch import garch_forecast
from forecast.backtest.intervals import window_pinball
from forecast.data.baselines import naive_quantile_ratios
from forecast.model.metrics import naive_quantile_forecast, vol_scaled_forecast

LEVELS = [0.1, 0.5, 0.9]


def ewma_forecast(base: torch.Tensor, mu: float, horizon: int, decay: float = 0.94) -> torch.Tensor:
    """``(N, Q, H)`` dollars: the vol-scaled forecast with an EWMA σ² of the base's log returns."""
    returns = torch.log(base[:, 1:] / base[:, :-1])  # (N, L − 1), oldest first
    weights = decay ** torch.arange(returns.shape[1] - 1, -1, -1, dtype=base.dtype)  # the newest weighs 1
    sigma = ((weights * returns**2).sum(1) / weights.sum()).sqrt()
    z = torch.special.ndtri(torch.tensor(LEVELS, dtype=base.dtype))
    s = torch.arange(1, horizon + 1, dtype=base.dtype)
    return base[:, -1, None, None] * torch.exp(mu * s + z[:, None] * sigma[:, None, None] * s.sqrt())


def diff_forecast(base: torch.Tensor, horizon: int) -> torch.Tensor:
    """``(N, Q, H)`` dollars: ``c + z σ_d √s``, σ_d the std of the base's daily price changes."""
    sigma = (base[:, 1:] - base[:, :-1]).std(1)
    z = torch.special.ndtri(torch.tensor(LEVELS, dtype=base.dtype))
    s = torch.arange(1, horizon + 1, dtype=base.dtype)
    return base[:, -1, None, None] + z[:, None] * sigma[:, None, None] * s.sqrt()


def main() -> None:
    args = year_parser(__doc__.splitlines()[0]).parse_args()
    print("| validation year | " + " | ".join(["naive-quantile", "base std", "base EWMA", "base diffs", "GARCH(1,1)"]))
    print("|---|" + "---:|" * 5)
    for year in args.years:
        fold = validation_year(args.data, year, args.base_len, args.horizon)
        panel, train_end, mu = fold.panel, fold.train_end, fold.mu
        base, target = fold.batch["base_close"], fold.batch["target"]  # (N, L), (N, H) dollars
        origins = fold.windows.starts.numpy() + args.base_len - 1
        garch, why = garch_forecast(panel, origins, train_end, LEVELS, args.horizon)
        candidates = {
            "naive-quantile": naive_quantile_forecast(
                base, torch.from_numpy(naive_quantile_ratios(panel, train_end, LEVELS, args.horizon))
            ),
            "base std": vol_scaled_forecast(base, mu, LEVELS, args.horizon),
            "base EWMA": ewma_forecast(base, mu, args.horizon),
            "base diffs": diff_forecast(base, args.horizon),
        }
        if garch is not None:
            candidates["GARCH(1,1)"] = garch
        cells = []
        for name in ("naive-quantile", "base std", "base EWMA", "base diffs", "GARCH(1,1)"):
            if name not in candidates:
                cells.append(f"skipped ({why})")
                continue
            q = candidates[name]
            covered = ((q[:, 0] <= target) & (target <= q[:, 2])).double().mean()
            cells.append(f"{window_pinball(q, target, LEVELS).mean():.4f} ({100 * float(covered):.1f} %)")
        print(f"| {year} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
