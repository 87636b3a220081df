"""Ranger optimizer: RAdam wrapped in Lookahead, for Keras 3."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="leafsearch")
class Ranger(keras.optimizers.Optimizer):
    """Optimizer that implements Ranger: RAdam inside Lookahead.

    The fast weights are updated with Rectified Adam (RAdam,
    [Liu et al., 2019](https://arxiv.org/abs/1908.03265), "On the Variance of
    the Adaptive Learning Rate and Beyond"). Every `sync_period` steps the
    slow weights move towards the fast weights and the fast weights are reset
    onto them, as in Lookahead
    ([Zhang et al., 2019](https://arxiv.org/abs/1907.08610), "Lookahead
    Optimizer: k steps forward, 1 step back").

    The seed recipe used `tfa.optimizers.Lookahead(
    tfa.optimizers.RectifiedAdam(...))`. TensorFlow Addons is unmaintained
    and does not import with Keras 3, and Keras 3 ships neither optimizer,
    so the combination is written here with `keras.ops` only (it runs on any
    Keras backend). The update follows TensorFlow Addons (without its
    `total_steps` warmup and `amsgrad` options). At step `t = iterations + 1`:

    ```python
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    m_hat = m / (1 - beta_1**t)
    v_hat = sqrt(v / (1 - beta_2**t))
    sma_inf = 2 / (1 - beta_2) - 1
    sma_t = sma_inf - 2 * t * beta_2**t / (1 - beta_2**t)
    r_t = sqrt((sma_t - 4) / (sma_inf - 4) * (sma_t - 2) / (sma_inf - 2)
               * sma_inf / sma_t)
    if sma_t >= sma_threshold:
        var -= lr * r_t * m_hat / (v_hat + epsilon)
    else:
        var -= lr * m_hat
    if t % sync_period == 0:
        slow += slow_step_size * (var - slow)
        var = slow
    ```

    The slow weights start at the variables' values when the optimizer is
    built. `weight_decay` is the base class's decoupled decay,
    `var -= lr * weight_decay * var`, which is what TensorFlow Addons'
    RectifiedAdam applied.

    Args:
        learning_rate: A float, a
            `keras.optimizers.schedules.LearningRateSchedule` instance, or
            a callable that takes no arguments and returns the actual value to
            use. The learning rate. Defaults to `0.001`.
        beta_1: A float. The exponential decay rate for the 1st moment
            estimates. Defaults to `0.9`.
        beta_2: A float. The exponential decay rate for the 2nd moment
            estimates. Defaults to `0.999`.
        epsilon: A small constant for numerical stability, added to the
            bias-corrected `sqrt(v_hat)` (as in TensorFlow Addons, not the
            "epsilon hat" of `keras.optimizers.Adam`). Defaults to `1e-7`,
            TensorFlow Addons' default (the RAdam paper's code uses `1e-8`).
        sma_threshold: A float. The rectified (adaptive) update is used once
            the length of the approximated simple moving average `sma_t`
            reaches this value; before that the update is plain momentum
            SGD. Defaults to `5.0` (TensorFlow Addons' default; the paper
            uses `sma_t > 4`).
        sync_period: A positive int, `k` in the Lookahead paper: the number
            of fast steps between two synchronizations. Defaults to `6`.
        slow_step_size: A float in `[0, 1]`, `alpha` in the Lookahead paper:
            the step size of the slow weights towards the fast weights.
            Defaults to `0.5`.
        name: String. The name to use for momentum accumulator weights
            created by the optimizer.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
        ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps: As in `keras.optimizers.Optimizer`.
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        sma_threshold=5.0,
        sync_period=6,
        slow_step_size=0.5,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="ranger",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            **kwargs,
        )
        if not 0.0 <= beta_1 < 1.0:
            raise ValueError(f"Argument `beta_1` must be in [0, 1). Received: beta_1={beta_1}")
        if not 0.0 <= beta_2 < 1.0:
            raise ValueError(f"Argument `beta_2` must be in [0, 1). Received: beta_2={beta_2}")
        if isinstance(sync_period, bool) or not isinstance(sync_period, int):
            raise ValueError(f"Argument `sync_period` must be an integer. Received: sync_period={sync_period}")
        if sync_period < 1:
            raise ValueError(f"Argument `sync_period` must be >= 1. Received: sync_period={sync_period}")
        if not 0.0 <= slow_step_size <= 1.0:
            raise ValueError(f"Argument `slow_step_size` must be in [0, 1]. Received: slow_step_size={slow_step_size}")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.sma_threshold = sma_threshold
        self.sync_period = sync_period
        self.slow_step_size = slow_step_size

    def build(self, var_list):
        """Initialize optimizer variables.

        Ranger has 3 types of variables: momentums, velocities and slow
        weights (initialized to the variables' current values).

        Args:
            var_list: list of model variables to build Ranger variables on.
        """
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._slow_weights = []
        for var in var_list:
            if self._overwrite_variable_with_gradient(var):
                self._slow_weights.append(None)
            else:
                self._slow_weights.append(
                    self.add_variable_from_reference(
                        var,
                        name="slow",
                        initializer=ops.convert_to_tensor(var),
                    )
                )

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        beta_1_power = ops.power(beta_1, local_step)
        beta_2_power = ops.power(beta_2, local_step)

        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        slow = self._slow_weights[index]

        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - beta_1))
        self.assign_add(
            v,
            ops.multiply(ops.subtract(ops.square(gradient), v), 1 - beta_2),
        )

        # RAdam: rectify the adaptive step while the variance of the
        # adaptive learning rate is intractable (sma_t < sma_threshold).
        m_hat = ops.divide(m, 1 - beta_1_power)
        v_hat = ops.sqrt(ops.divide(v, 1 - beta_2_power))
        sma_inf = 2.0 / (1.0 - beta_2) - 1.0
        sma_t = sma_inf - 2.0 * local_step * beta_2_power / (1 - beta_2_power)
        # Clamped at 0 so that the branch not taken holds no NaN.
        r_t = ops.sqrt(
            ops.maximum(
                (sma_t - 4.0) / (sma_inf - 4.0) * (sma_t - 2.0) / (sma_inf - 2.0) * sma_inf / sma_t,
                0.0,
            )
        )
        rectified = ops.greater_equal(sma_t, ops.cast(self.sma_threshold, dtype))
        step = ops.where(
            rectified,
            ops.divide(ops.multiply(r_t, m_hat), ops.add(v_hat, self.epsilon)),
            m_hat,
        )
        fast = ops.subtract(variable, ops.multiply(lr, step))

        # Lookahead: every `sync_period` steps, slow += alpha * (fast - slow)
        # and the fast weights restart from the slow ones.
        sync = ops.equal(ops.mod(self.iterations + 1, self.sync_period), 0)
        slow_step_size = ops.cast(self.slow_step_size, dtype)
        synced = ops.add(slow, ops.multiply(slow_step_size, ops.subtract(fast, slow)))
        self.assign(slow, ops.where(sync, synced, slow))
        self.assign(variable, ops.where(sync, synced, fast))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "sma_threshold": self.sma_threshold,
                "sync_period": self.sync_period,
                "slow_step_size": self.slow_step_size,
            }
        )
        return config
