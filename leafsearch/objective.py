"""The objective every engine calls: one trial's parameters in, the trial's summary out.

It is created in the study process and sent to each trial's child process, so importing it costs
nothing: Keras and the training code are imported where the trial trains (a child of the fork
server, which has them loaded already), and the study process need not import Keras at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from leafsearch import data as leafdata
from leafsearch.recipe import resolve
from search.errors import OutOfMemory
from search.reporter import Reporter, summarise

if TYPE_CHECKING:
    import keras

    from leafsearch.training import Phase


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
    ):
        self.data_root = Path(data_root)
        self.pipeline = pipeline
        self.max_epochs = max_epochs
        self.cache_dir = cache_dir
        self.metric = metric
        self.direction = direction
        self.split_seed = split_seed
        self.precision = precision
        self._data: dict[int, leafdata.LeafData] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": {}}

    def data(self, image_size: int) -> leafdata.LeafData:
        if image_size not in self._data:
            self._data[image_size] = leafdata.prepare(self.data_root, image_size, cache_dir=self.cache_dir, seed=self.split_seed)
        return self._data[image_size]

    def build(self, recipe: Mapping[str, Any], num_classes: int, seed: int) -> tuple[keras.Model, list[Phase]]:
        """The model and its training phases for this recipe."""
        if self.pipeline == "efficientnet":
            from leafsearch.efficientnet import build_efficientnet, efficientnet_phases

            return build_efficientnet(recipe, num_classes, seed), efficientnet_phases(recipe, self.max_epochs)
        from leafsearch.cnn import build_cnn
        from leafsearch.training import Phase

        epochs = min(recipe["epochs"], self.max_epochs)
        return build_cnn(recipe, num_classes, seed), [Phase("train", recipe["learning_rate"], epochs)]

    def __call__(self, params: Mapping[str, Any], reporter: Reporter) -> dict[str, float]:
        from leafsearch.tensorboard_log import hparams_logger
        from leafsearch.training import _is_out_of_memory, _TrialTraining

        if self.precision is not None:
            from leafsearch import device

            device.set_precision(self.precision)
        tensorboard = hparams_logger(reporter.trial_dir, reporter.trial_number, params)
        try:
            _TrialTraining(self, resolve(params, self.pipeline), reporter, tensorboard).run()
        except Exception as exc:
            if _is_out_of_memory(exc):
                raise OutOfMemory(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
            raise
        finally:
            if tensorboard is not None:
                tensorboard.close()
        summary = summarise(reporter.history, self.metric, self.direction)
        return {k: v for k, v in summary.items() if v is not None}
