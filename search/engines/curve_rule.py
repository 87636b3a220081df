"""Learning-curve pruning without an engine: stop a trial once its curve, extrapolated to the
epochs it may still train, cannot reach the best value any trial has reached.

The median rule compares one epoch with other trials' same epoch, so it cuts a slow starter that
would have overtaken them. This rule asks where the trial itself is heading instead. No
maintained library offers it (an Optuna learning-curve pruner, optuna/optuna#1761, was closed
unmerged; KerasTuner has none), so it is our own: a cheap cousin of Domhan, Springenberg and
Hutter 2015, "Speeding up automatic hyperparameter optimization of deep neural networks by
extrapolation of learning curves" (IJCAI), who fit a weighted ensemble of 11 parametric families
by MCMC and stop a run when P(final > best so far) < 5 %. Here two saturating families are fitted
by weighted least squares in under a millisecond, and the probability becomes an optimistic bound.

For a maximised metric (a minimised one is negated first), after the latest epoch:
1. warm-up: keep going before `n_startup_trials` trials finished or before `n_warmup_steps`
   (the 0-based epoch of the first decision), or before the trial has `min_points` values;
2. fit y = a - b*exp(-c*t) and y = a - b*t^(-c) (t the 1-based epoch, b >= 0, c on a grid) to
   the latest `window` epochs (a late start's flat epochs are not the saturating part), each
   point weighted by t; the prediction is the better of the two at the horizon (the last epoch
   the trial may train);
3. sigma: the larger of the fits' residual spread, their leave-last-out error (fitted without the
   latest point, how far off they predict it) and `min_sigma`;
4. the trial's bound is the best of: the prediction + k*sigma, its own best so far + `slack`, and
   its latest value + the recent rise per epoch * `lookahead` (a curve still rising steeply is
   not cut);
5. with `peer_band` set (off by default: on the replays it cost epochs and kept no better
   trial), keep it when a finished trial whose value at this epoch was that close went on to
   gain enough to reach the best (a late riser, flat at chance for epochs, is a shape no
   saturating family predicts);
6. otherwise prune when the bound is below the best value any trial has reached (finished
   trials, and `best` when the caller knows more, e.g. pruned trials' best values), unless the
   latest epoch is the last the trial may train: stopping then saves nothing.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from search.engines.pruning import Curve, PruningRule, Reference, reported

_EXP_RATES = np.geomspace(0.05, 3.0, 24)  # c of a - b*exp(-c*t): from nearly linear to saturated in 2 epochs
_POW_RATES = np.geomspace(0.1, 4.0, 24)  # c of a - b*t^(-c)


@dataclasses.dataclass(frozen=True)
class CurveRule(PruningRule):
    """The rule, with its constants (chosen on replays of unpruned studies, bench/README.md)."""

    k: float = 2.0  # sigmas of optimism added to the prediction
    slack: float = 0.02  # never cut a trial whose best so far is this close to the best
    lookahead: float = 1.0  # epochs the recent rise per epoch is extrapolated over
    min_sigma: float = (
        0.05  # the least uncertainty of a prediction (metric units): a validation metric's epoch-to-epoch noise
    )
    n_startup_trials: int = 1  # finished trials before any pruning: the first (trial 0, the baseline) sets the bar
    n_warmup_steps: int = 1  # the 0-based epoch of the first decision: after the second epoch
    min_points: int = 2  # values needed for a fit
    window: int | None = 5  # fit the latest epochs only (None: all of them)
    peer_band: float | None = (
        None  # keep a trial one finished trial within this of it at this epoch went on to catch up from
    )

    def should_prune(self, curve: Curve, horizon: int, reference: Reference) -> bool:
        """Steps 1 to 6 above; the best value any trial reached is the reference's finished
        curves' best, or its `best` where that is better (pruned trials' values count too)."""
        sign = 1.0 if reference.direction == "maximize" else -1.0
        finished = [reported(c) for c in reference.finished]
        if len(finished) < self.n_startup_trials:
            return False
        values = reported(curve)
        if not values or max(values) < self.n_warmup_steps or len(values) < self.min_points:
            return False
        reached = [sign * v for c in finished for v in c.values()] + (
            [] if reference.best is None else [sign * reference.best]
        )
        if not reached:
            return False
        target = max(reached)
        epochs = np.array(sorted(values), dtype=float)
        y = sign * np.array([values[int(e)] for e in epochs])
        if int(epochs[-1]) + 1 == horizon:  # its last epoch: stopping saves nothing, so it completes
            return False
        horizon = max(horizon, int(epochs[-1]) + 1)
        if (
            self.peer_band is not None
            and float(y[-1]) + self.peer_gain(finished, int(epochs[-1]), float(y[-1]), horizon, sign) >= target
        ):
            return False
        return bool(optimistic_bound(epochs + 1.0, y, horizon, self) < target)

    def peer_gain(self, finished: list[dict[int, float]], step: int, value: float, horizon: int, sign: float) -> float:
        """The most a finished trial gained after `step`, among those whose value there was within
        `peer_band` of this trial's: what a curve that looked like this one went on to do (none
        without a band)."""
        band = self.peer_band
        if band is None:
            return 0.0
        gains = [0.0]
        for curve in finished:
            if step in curve and abs(sign * curve[step] - value) <= band:
                later = [sign * v for e, v in curve.items() if step < e < horizon]
                gains.append(max(later, default=-math.inf) - sign * curve[step])
        return max(gains)


def optimistic_bound(t: np.ndarray, y: np.ndarray, horizon: int, rule: CurveRule) -> float:
    """The best value the curve (y at 1-based epochs t, maximised) may plausibly reach by epoch `horizon`."""
    own = float(y.max()) + rule.slack
    if len(y) >= 2:
        rise = (y[-1] - y[max(0, len(y) - 3)]) / (t[-1] - t[max(0, len(y) - 3)])
        own = max(own, float(y[-1] + max(rise, 0.0) * min(rule.lookahead, horizon - t[-1])))
    if rule.window is not None:  # a late start's flat epochs are no part of the saturating shape
        t, y = t[-rule.window :], y[-rule.window :]
    prediction = extrapolate(t, y, horizon)
    spread = [rule.min_sigma, residual_spread(t, y)]
    if len(y) > 3:
        spread.append(abs(extrapolate(t[:-1], y[:-1], t[-1]) - y[-1]))
    return max(own, prediction + rule.k * max(spread))


def _fit(t: np.ndarray, y: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of y = a + b*x for every row x of `basis` (b >= 0): (a, b, sse) per row."""
    w = t / t.sum()
    x_mean = basis @ w
    y_mean = float(w @ y)
    dx = basis - x_mean[:, None]
    var = (dx**2) @ w
    b = np.where(var > 1e-12, (dx * (y - y_mean)) @ w / np.maximum(var, 1e-12), 0.0)
    b = np.maximum(b, 0.0)
    a = y_mean - b * x_mean
    sse = ((y - a[:, None] - b[:, None] * basis) ** 2) @ w
    return a, b, sse


def _families(t: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rates, -basis) of each family, as rows over t: -exp(-c*t) and -t^(-c)."""
    return [(_EXP_RATES, -np.exp(-np.outer(_EXP_RATES, t))), (_POW_RATES, -(t[None, :] ** -_POW_RATES[:, None]))]


def extrapolate(t: np.ndarray, y: np.ndarray, at: float) -> float:
    """The better of the families' best fits, evaluated at 1-based epoch `at`."""
    best = -math.inf
    for (_rates, basis), (_, at_basis) in zip(_families(t), _families(np.array([float(at)]))):
        a, b, sse = _fit(t, y, basis)
        i = int(np.argmin(sse))
        best = max(best, float(a[i] + b[i] * at_basis[i, 0]))
    return best


def residual_spread(t: np.ndarray, y: np.ndarray) -> float:
    """The root mean square residual of the better-fitting family (0 with 3 points or fewer)."""
    if len(y) <= 3:
        return 0.0
    sse = min(float(_fit(t, y, basis)[2].min()) for _, basis in _families(t))
    return math.sqrt(sse * len(y) / (len(y) - 3))  # _fit's sse is a weighted mean; 3 parameters fitted
