"""Tests for leafsearch.ranger.Ranger (RAdam + Lookahead)."""

import copy
import json

import keras
import numpy as np
import pytest

from leafsearch.training.ranger import Ranger


def _f32(x):
    """A float hyperparameter as the float32 value the optimizer uses."""
    return float(np.float32(x))


def reference_ranger(
    x0s,
    grads,
    lr=1e-3,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-7,
    sma_threshold=5.0,
    sync_period=6,
    slow_step_size=0.5,
    weight_decay=None,
):
    """RAdam (Liu et al. 2019, Algorithm 2) inside Lookahead (Zhang et al.
    2019, Algorithm 1), in float64 NumPy, with TensorFlow Addons' conventions
    (epsilon added to the bias-corrected sqrt(v), rectified iff
    sma_t >= sma_threshold). `lr` is a float or a function of the 0-based
    step. Returns per-step lists of fast weights, slow weights, and whether
    the step was rectified / synced."""
    beta_1, beta_2 = _f32(beta_1), _f32(beta_2)
    xs = [np.array(x, np.float64) for x in x0s]
    slows = [x.copy() for x in xs]
    ms = [np.zeros_like(x) for x in xs]
    vs = [np.zeros_like(x) for x in xs]
    sma_inf = 2.0 / (1.0 - beta_2) - 1.0
    history = []
    for t, step_grads in enumerate(grads, start=1):
        lr_t = _f32(lr(t - 1) if callable(lr) else lr)
        sma_t = sma_inf - 2.0 * t * beta_2**t / (1.0 - beta_2**t)
        rectified = sma_t >= sma_threshold
        synced = t % sync_period == 0
        for i, g in enumerate(step_grads):
            g = np.asarray(g, np.float64)
            if weight_decay:
                xs[i] = xs[i] - lr_t * weight_decay * xs[i]
            ms[i] = beta_1 * ms[i] + (1.0 - beta_1) * g
            vs[i] = beta_2 * vs[i] + (1.0 - beta_2) * g * g
            m_hat = ms[i] / (1.0 - beta_1**t)
            if rectified:
                v_hat = np.sqrt(vs[i] / (1.0 - beta_2**t))
                r_t = np.sqrt((sma_t - 4.0) / (sma_inf - 4.0) * (sma_t - 2.0) / (sma_inf - 2.0) * sma_inf / sma_t)
                xs[i] = xs[i] - lr_t * r_t * m_hat / (v_hat + epsilon)
            else:
                xs[i] = xs[i] - lr_t * m_hat
            if synced:
                slows[i] = slows[i] + slow_step_size * (xs[i] - slows[i])
                xs[i] = slows[i].copy()
        history.append(([x.copy() for x in xs], [s.copy() for s in slows], rectified, synced))
    return history


def _problem(seed=0, steps=15):
    rng = np.random.default_rng(seed)
    x0s = [
        rng.normal(size=(3, 2)).astype("float32"),
        rng.normal(size=(4,)).astype("float32"),
    ]
    grads = [[rng.normal(size=x.shape).astype("float32") for x in x0s] for _ in range(steps)]
    return x0s, grads


def _run_and_compare(optimizer, ref_kwargs, atol=1e-6):
    x0s, grads = _problem()
    variables = [keras.Variable(x) for x in x0s]
    history = reference_ranger(x0s, grads, **ref_kwargs)
    for step, (step_grads, (ref_xs, ref_slows, _, _)) in enumerate(zip(grads, history), start=1):
        optimizer.apply_gradients(zip(step_grads, variables))
        for var, slow, ref_x, ref_slow in zip(variables, optimizer._slow_weights, ref_xs, ref_slows):
            np.testing.assert_allclose(
                var.numpy(),
                ref_x,
                rtol=1e-6,
                atol=atol,
                err_msg=f"fast weights differ at step {step}",
            )
            np.testing.assert_allclose(
                slow.numpy(),
                ref_slow,
                rtol=1e-6,
                atol=atol,
                err_msg=f"slow weights differ at step {step}",
            )
    return history


def test_matches_reference_default_betas():
    kwargs = dict(lr=0.01, sync_period=4)
    history = _run_and_compare(Ranger(learning_rate=0.01, sync_period=4), kwargs)
    rectified = [h[2] for h in history]
    synced = [h[3] for h in history]
    # With beta_2=0.999, sma_t crosses 5 at step 6: both regimes are covered.
    assert rectified == [False] * 5 + [True] * 10
    assert sum(synced) == 3


def test_matches_reference_other_hyperparameters():
    kwargs = dict(
        beta_1=0.8,
        beta_2=0.99,
        epsilon=1e-5,
        sma_threshold=4.5,
        sync_period=3,
        slow_step_size=0.3,
        weight_decay=0.1,
    )
    history = _run_and_compare(Ranger(learning_rate=0.05, **kwargs), dict(lr=0.05, **kwargs))
    rectified = [h[2] for h in history]
    assert any(rectified) and not all(rectified)
    assert sum(h[3] for h in history) == 5


def test_matches_reference_with_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)
    _run_and_compare(
        Ranger(learning_rate=schedule, sync_period=5),
        dict(lr=lambda step: 0.05 * 0.5 ** (step / 3), sync_period=5),
    )


def test_first_steps_by_hand():
    # Step 1 is never rectified (sma_1 = 1) and m_hat = g, so the fast step
    # is x - lr * g; with sync_period=1 Lookahead then halves it (alpha=0.5).
    var = keras.Variable(np.array([1.0, -2.0], "float32"))
    optimizer = Ranger(learning_rate=0.1, sync_period=1, slow_step_size=0.5)
    optimizer.apply_gradients([(np.array([1.0, 4.0], "float32"), var)])
    np.testing.assert_allclose(var.numpy(), [0.95, -2.2], rtol=1e-6)
    np.testing.assert_allclose(optimizer._slow_weights[0].numpy(), [0.95, -2.2], rtol=1e-6)
    # Step 2 with the same gradient: m_hat = g again, no sync (period 2).
    var = keras.Variable(np.array([1.0, -2.0], "float32"))
    optimizer = Ranger(learning_rate=0.1, sync_period=2)
    for _ in range(2):
        optimizer.apply_gradients([(np.array([1.0, 4.0], "float32"), var)])
    # fast = x - 2 * lr * g = [0.8, -2.8]; sync: slow = x + 0.5 * (fast - x).
    np.testing.assert_allclose(var.numpy(), [0.9, -2.4], rtol=1e-6)


def test_slow_weights_start_at_variable_values():
    var = keras.Variable(np.array([3.0, 4.0], "float32"))
    optimizer = Ranger()
    optimizer.build([var])
    np.testing.assert_array_equal(optimizer._slow_weights[0].numpy(), [3, 4])
    # momentum, velocity, slow, plus the iteration counter and learning rate.
    assert len(optimizer.variables) == 5


def _tiny_classifier():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def _tiny_data(n=64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4)).astype("float32")
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, keras.utils.to_categorical(labels, 3)


def test_trains_tiny_model():
    keras.utils.set_random_seed(0)
    x, y = _tiny_data()
    model = _tiny_classifier()
    model.compile(
        optimizer=Ranger(learning_rate=0.02),
        loss="categorical_crossentropy",
    )
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.7 * before


def test_arguments_validated():
    with pytest.raises(ValueError, match=r"`sync_period` must be >= 1. Received: sync_period=0"):
        Ranger(sync_period=0)
    with pytest.raises(ValueError, match="`sync_period` must be an integer"):
        Ranger(sync_period=2.5)
    with pytest.raises(ValueError, match=r"`slow_step_size` must be in \[0, 1\]"):
        Ranger(slow_step_size=1.5)
    with pytest.raises(ValueError, match=r"`beta_2` must be in \[0, 1\)"):
        Ranger(beta_2=1.0)


def _assert_config_round_trip(instance):
    config = instance.get_config()
    # Optimizer.from_config deserializes a schedule in place: pass a copy.
    revived = instance.__class__.from_config(copy.deepcopy(config))
    assert json.dumps(revived.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(instance)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(instance)
    assert json.dumps(revived.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    return config


def test_config_round_trip():
    config = _assert_config_round_trip(
        Ranger(
            learning_rate=0.02,
            beta_1=0.8,
            beta_2=0.99,
            epsilon=1e-6,
            sma_threshold=4.0,
            sync_period=5,
            slow_step_size=0.25,
            weight_decay=1e-4,
            clipnorm=1.0,
        )
    )
    assert config["sync_period"] == 5
    assert config["slow_step_size"] == 0.25
    assert config["sma_threshold"] == 4.0
    assert config["weight_decay"] == 1e-4
    assert keras.saving.get_registered_name(Ranger) == "leafsearch>Ranger"
    # With a learning-rate schedule.
    _assert_config_round_trip(
        Ranger(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9))
    )


def test_save_and_load_model(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = _tiny_data(16)
    model = _tiny_classifier()
    model.compile(
        optimizer=Ranger(learning_rate=0.01, sync_period=2),
        loss="categorical_crossentropy",
    )
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "ranger.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, Ranger)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The optimizer state (iterations, moments, slow weights) is restored:
    # one more step (a Lookahead sync step) gives the same weights.
    assert int(loaded.optimizer.iterations.numpy()) == 1
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
