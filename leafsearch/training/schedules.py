"""Cyclical learning-rate schedules (Smith, 2017) for Keras 3.

Replacements for `tfa.optimizers.TriangularCyclicalLearningRate` and
`tfa.optimizers.Triangular2CyclicalLearningRate` (TensorFlow Addons does not
import with Keras 3), with the same formula, written with `keras.ops` only.
"""

import keras
from keras import ops


class _CyclicalLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Base class of the triangular cyclical learning-rate schedules.

    From [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning
    Rates for Training Neural Networks":

    ```python
    cycle = floor(1 + step / (2 * step_size))
    x = abs(step / step_size - 2 * cycle + 1)
    lr = initial_learning_rate + (
        maximal_learning_rate - initial_learning_rate
    ) * max(0, 1 - x) * scale(cycle)
    ```

    Subclasses define `scale(cycle)`.
    """

    def __init__(
        self,
        initial_learning_rate,
        maximal_learning_rate,
        step_size,
        name=None,
    ):
        super().__init__()
        if not initial_learning_rate > 0:
            raise ValueError(
                f"Argument `initial_learning_rate` must be > 0. Received: initial_learning_rate={initial_learning_rate}"
            )
        if not maximal_learning_rate >= initial_learning_rate:
            raise ValueError(
                "Argument `maximal_learning_rate` must be >= "
                "`initial_learning_rate`. Received: "
                f"maximal_learning_rate={maximal_learning_rate}, "
                f"initial_learning_rate={initial_learning_rate}"
            )
        if not step_size > 0:
            raise ValueError(f"Argument `step_size` must be > 0. Received: step_size={step_size}")
        self.initial_learning_rate = initial_learning_rate
        self.maximal_learning_rate = maximal_learning_rate
        self.step_size = step_size
        self.name = name or self.__class__.__name__

    def scale(self, cycle):
        raise NotImplementedError

    def __call__(self, step):
        with keras.name_scope(self.name):
            initial_learning_rate = ops.convert_to_tensor(self.initial_learning_rate)
            dtype = initial_learning_rate.dtype
            maximal_learning_rate = ops.cast(self.maximal_learning_rate, dtype)
            step_size = ops.cast(self.step_size, dtype)
            step = ops.cast(step, dtype)
            cycle = ops.floor(1.0 + step / (2.0 * step_size))
            x = ops.abs(step / step_size - 2.0 * cycle + 1.0)
            return initial_learning_rate + (maximal_learning_rate - initial_learning_rate) * ops.maximum(
                0.0, 1.0 - x
            ) * self.scale(cycle)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "maximal_learning_rate": self.maximal_learning_rate,
            "step_size": self.step_size,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="leafsearch")
class TriangularCyclicalLearningRate(_CyclicalLearningRate):
    """A `LearningRateSchedule` that cycles linearly between two bounds.

    The learning rate goes linearly from `initial_learning_rate` (step 0) up
    to `maximal_learning_rate` (step `step_size`) and back down (step
    `2 * step_size`), and repeats. Same values as
    `tfa.optimizers.TriangularCyclicalLearningRate`; see
    [Smith, 2017](https://arxiv.org/abs/1506.01186).

    Args:
        initial_learning_rate: A Python float > 0. The lower bound.
        maximal_learning_rate: A Python float >= `initial_learning_rate`.
            The upper bound.
        step_size: A Python number > 0. Half a cycle, in optimizer steps.
        name: String. Optional name of the operation. Defaults to the class
            name.
    """

    def scale(self, cycle):
        return 1.0


@keras.saving.register_keras_serializable(package="leafsearch")
class Triangular2CyclicalLearningRate(_CyclicalLearningRate):
    """A triangular cyclical `LearningRateSchedule` whose amplitude halves.

    As `TriangularCyclicalLearningRate`, but the amplitude
    `maximal_learning_rate - initial_learning_rate` is halved after each
    cycle: cycle `c` (1-based) peaks at
    `initial + (maximal - initial) / 2 ** (c - 1)`. Same values as
    `tfa.optimizers.Triangular2CyclicalLearningRate`; see
    [Smith, 2017](https://arxiv.org/abs/1506.01186).

    Args:
        initial_learning_rate: A Python float > 0. The lower bound.
        maximal_learning_rate: A Python float >= `initial_learning_rate`.
            The upper bound of the first cycle.
        step_size: A Python number > 0. Half a cycle, in optimizer steps.
        name: String. Optional name of the operation. Defaults to the class
            name.
    """

    def scale(self, cycle):
        return 1.0 / ops.power(2.0, cycle - 1.0)
