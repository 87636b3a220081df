"""The study spec: what to optimise and the default budget, declared next to the space."""

from __future__ import annotations

import dataclasses

DIRECTIONS = ("maximize", "minimize")


@dataclasses.dataclass(frozen=True)
class Study:
    """What a space file's `STUDY` holds.

    `pipeline` names the application's training pipeline (leafsearch: "cnn" or "efficientnet");
    `trials` is the default target of finished trials, `max_epochs` the default cap of epochs per
    training phase. Command-line flags override both.
    """

    pipeline: str = "cnn"
    metric: str = "val_accuracy"
    direction: str = "maximize"
    trials: int = 20
    max_epochs: int = 30

    def problems(self, pipelines: set[str] | None = None, metrics: set[str] | None = None) -> list[str]:
        out = []
        if metrics is not None and self.metric not in metrics:
            out.append(f"STUDY metric must be one of {', '.join(sorted(metrics))}. Received: {self.metric!r}")
        if pipelines is not None and self.pipeline not in pipelines:
            out.append(f"STUDY pipeline must be one of {', '.join(sorted(pipelines))}. Received: {self.pipeline!r}")
        if self.direction not in DIRECTIONS:
            out.append(f"STUDY direction must be 'maximize' or 'minimize'. Received: {self.direction!r}")
        if not isinstance(self.metric, str) or not self.metric:
            out.append(f"STUDY metric must be a metric name such as 'val_accuracy'. Received: {self.metric!r}")
        for name in ("trials", "max_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"STUDY {name} must be an integer >= 1. Received: {name}={value!r}")
        return out
