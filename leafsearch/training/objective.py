"""The objective every engine calls: one trial's parameters in, the trial's summary out.

It is created in the study process and sent to each trial's child process, so importing it costs
nothing: Keras and the training code are imported where the trial trains (a child of the fork
server, which has them loaded already), and the study process need not import Keras at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leafsearch.data import LeafData, prepare
from leafsearch.training.recipe import resolve
from search.errors import OutOfMemory, TrialPruned, one_line
from search.reporter import Reporter, summarise

if TYPE_CHECKING:
    import keras

    from leafsearch.training.feature_cache import FeatureCache
    from leafsearch.training.phases import Phase


class LeafObjective:
    """Trains the leaf pipeline for one trial's parameters; shared by every engine.

    Decoded images are kept per image size, so trials after the first pay no decoding. The
    object is sent to each trial's child process: it travels without its loaded arrays (the
    child opens the same memory-mapped decode cache) and sets the dtype policy there.
    """

    def __init__(
        self,
        data_root: Path,
        pipeline: str,
        max_epochs: int,
        cache_dir: Path | None,
        metric: str = "val_accuracy",
        direction: str = "maximize",
        split_seed: int = 0,
        precision: str | None = None,
        feature_cache: bool = False,
    ):
        self.data_root = Path(data_root)
        self.pipeline = pipeline
        self.max_epochs = max_epochs
        self.cache_dir = cache_dir
        self.metric = metric
        self.direction = direction
        self.split_seed = split_seed
        self.precision = precision
        self.use_feature_cache = feature_cache
        self._data: dict[int, LeafData] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": {}}

    def data(self, image_size: int) -> LeafData:
        if image_size not in self._data:
            self._data[image_size] = prepare(self.data_root, image_size, cache_dir=self.cache_dir, seed=self.split_seed)
        return self._data[image_size]

    def build(self, recipe: Mapping[str, Any], num_classes: int, seed: int) -> tuple[keras.Model, list[Phase]]:
        """The model and its training phases for this recipe."""
        from leafsearch.training.phases import build_model

        return build_model(self.pipeline, recipe, num_classes, seed, self.max_epochs)

    def feature_cache(self) -> FeatureCache | None:
        """Where the frozen parts' features are cached (EfficientNet trials, unless
        `--no-feature-cache`): beside the decode cache, shared by every trial of the results folder."""
        if not self.use_feature_cache or self.cache_dir is None or self.pipeline != "efficientnet":
            return None
        from leafsearch.training.feature_cache import FeatureCache

        return FeatureCache(self.cache_dir / "features")

    def __call__(self, params: Mapping[str, Any], reporter: Reporter) -> dict[str, float]:
        from leafsearch.runtime import set_precision
        from leafsearch.training.loop import TrialTraining, is_out_of_memory
        from leafsearch.training.tensorboard_log import hparams_logger

        if self.precision is not None:
            set_precision(self.precision)
        tensorboard = hparams_logger(reporter.trial_dir, reporter.trial_number, params)
        outcome = None  # interrupted: the trial goes on later, its session stays open
        try:
            TrialTraining(self, resolve(params, self.pipeline), reporter, tensorboard).run()
            outcome = "complete"
        except TrialPruned:
            outcome = "pruned"
            raise
        except Exception as exc:
            outcome = "failed"
            if is_out_of_memory(exc):
                raise OutOfMemory(one_line(exc)) from exc
            raise
        finally:
            if tensorboard is not None:
                tensorboard.close(outcome)
        summary = summarise(reporter.history, self.metric, self.direction)
        return {k: v for k, v in summary.items() if v is not None}
