"""Losses for leafsearch: sigmoid focal cross-entropy and a name factory."""

import keras
from keras import ops

LOSS_NAMES = ("ce", "ce_smooth", "focal", "sigmoid_focal")


@keras.saving.register_keras_serializable(package="leafsearch")
class SigmoidFocalCrossEntropy(keras.losses.Loss):
    """Computes the per-class sigmoid focal loss, summed over classes.

    From [Lin et al., 2017](https://arxiv.org/abs/1708.02002), "Focal Loss
    for Dense Object Detection". Each class is treated as an independent
    binary problem: with `p` the predicted probability of a class and `y` its
    (one-hot) label,

    ```python
    bce = -(y * log(p) + (1 - y) * log(1 - p))
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * alpha + (1 - y) * (1 - alpha)
    loss = sum_over_classes(alpha_t * (1 - p_t) ** gamma * bce)
    ```

    The per-sample loss is then reduced over the batch by `reduction`. This
    has the semantics of `tfa.losses.SigmoidFocalCrossEntropy` (TensorFlow
    Addons does not import with Keras 3). With `from_logits=False`, `y_pred`
    is clipped to `[epsilon, 1 - epsilon]` (`keras.config.epsilon()`) like
    Keras' binary cross-entropy does; it may be a softmax output (the
    cross-entropy is computed from the probabilities themselves, never from
    the softmax's logits).

    Args:
        alpha: A float in `[0, 1]`, the weight of the positive class of each
            binary problem (negatives get `1 - alpha`), or `None` for no
            balancing. Defaults to `0.25`.
        gamma: A float >= 0, the focusing parameter; `0` gives the
            (alpha-balanced) binary cross-entropy. Defaults to `2.0`.
        from_logits: Whether `y_pred` holds logits (sigmoid is applied per
            class) rather than probabilities. Defaults to `False`.
        reduction: Type of reduction to apply to the loss. Defaults to
            `"sum_over_batch_size"`.
        name: Optional name for the loss instance.
        dtype: The dtype of the loss's computations. Defaults to `None`.
    """

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="sigmoid_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Argument `alpha` must be in [0, 1] or None. Received: alpha={alpha}")
        if not gamma >= 0.0:
            raise ValueError(f"Argument `gamma` must be >= 0. Received: gamma={gamma}")
        self.alpha = alpha
        self.gamma = gamma
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.from_logits:
            bce = ops.binary_crossentropy(y_true, y_pred, from_logits=True)
            p = ops.sigmoid(y_pred)
        else:
            # Computed here rather than with `ops.binary_crossentropy`: on
            # the TensorFlow backend that op would pick up the logits of a
            # softmax output and apply a sigmoid to them.
            epsilon = keras.config.epsilon()
            p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
            bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
        loss = ops.power(1.0 - p_t, self.gamma) * bce
        if self.alpha is not None:
            loss = (y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)) * loss
        return ops.sum(loss, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "gamma": self.gamma,
                "from_logits": self.from_logits,
            }
        )
        return config


def make_loss(name, label_smoothing=0.0, focal_gamma=2.0, focal_alpha=0.25):
    """Returns the Keras loss called `name`, for one-hot labels.

    Args:
        name: One of `"ce"` (`keras.losses.CategoricalCrossentropy`),
            `"ce_smooth"` (the same with `label_smoothing`), `"focal"`
            (`keras.losses.CategoricalFocalCrossentropy`) or
            `"sigmoid_focal"` (`SigmoidFocalCrossEntropy`).
        label_smoothing: Float in `[0, 1]`, used by `"ce_smooth"` only.
        focal_gamma: Float >= 0, `gamma` of the two focal losses.
        focal_alpha: Float, `alpha` of the two focal losses.

    Returns:
        A `keras.losses.Loss` instance expecting probabilities
        (`from_logits=False`).
    """
    if name == "ce":
        return keras.losses.CategoricalCrossentropy()
    if name == "ce_smooth":
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    if name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(alpha=focal_alpha, gamma=focal_gamma)
    if name == "sigmoid_focal":
        return SigmoidFocalCrossEntropy(alpha=focal_alpha, gamma=focal_gamma)
    raise ValueError(f"Argument `name` must be one of {LOSS_NAMES}. Received: name={name!r}")
