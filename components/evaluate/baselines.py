"""Classical forecasts of one series from its history, the baselines a forecasting model must
beat, fitted per series on the same history the model's test window follows.

naive: the last value repeated. seasonal_naive: the last season repeated (naive when the
history is shorter than one season). theta: statsmodels' ThetaModel (Assimakopoulos and
Nikolopoulos; deseasonalised multiplicatively when there are two seasons of positive
history, as in M4's Theta). ets: statsmodels' ETSModel with additive error and a damped
additive trend, plus additive seasonality when there are two seasons of history, fitted by
maximum likelihood. A fit that fails (statsmodels raises, or returns non-finite values) falls
back to naive for that series, and the fallback is counted and reported.
"""

from __future__ import annotations

import warnings

import numpy as np

NAMES = ("naive", "seasonal_naive", "theta", "ets")


def naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    return np.repeat(history[-1], horizon)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    if season <= 1 or len(history) < season:
        return naive(history, horizon, season)
    last = history[-season:]
    return np.resize(last, horizon) if horizon > season else last[:horizon].copy()


def theta(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    seasonal = season > 1 and len(history) >= 2 * season and (history > 0).all()
    model = ThetaModel(history, period=season if seasonal else None,
                       deseasonalize=seasonal, method="auto")
    return np.asarray(model.fit(disp=False).forecast(horizon), np.float64)


def ets(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = season > 1 and len(history) >= 2 * season
    model = ETSModel(history, error="add", trend="add", damped_trend=True,
                     seasonal="add" if seasonal else None,
                     seasonal_periods=season if seasonal else None)
    return np.asarray(model.fit(disp=False, maxiter=200).forecast(horizon), np.float64)


FORECASTERS = {"naive": naive, "seasonal_naive": seasonal_naive, "theta": theta, "ets": ets}


def forecast(name: str, history, horizon: int, season: int) -> tuple[np.ndarray, bool]:
    """(the forecast, whether it fell back to naive)."""
    history = np.asarray(history, np.float64)
    try:
        with warnings.catch_warnings():  # convergence chatter: the result is checked below
            warnings.simplefilter("ignore")
            values = FORECASTERS[name](history, horizon, season)
        if values.shape == (horizon,) and np.isfinite(values).all():
            return values, False
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        pass
    return naive(history, horizon, season), True
