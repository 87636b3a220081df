"""Tests for leafsearch.losses."""

import json

import keras
import numpy as np
import pytest

from leafsearch.training.losses import SigmoidFocalCrossEntropy, make_loss

EPS = 1e-7  # keras.config.epsilon()

Y_TRUE = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], "float32")
Y_PROB = np.array(
    [
        [0.7, 0.1, 0.1, 0.1],
        [0.2, 0.5, 0.2, 0.1],
        [0.05, 0.05, 0.1, 0.8],
        [0.4, 0.3, 0.2, 0.1],
    ],
    "float32",
)
LOGITS = np.array(
    [[2.0, -1.0, 0.5, -3.0], [-0.5, 1.5, 0.0, 4.0], [1.0, 1.0, -2.0, 0.3], [-4.0, 2.5, 3.0, -0.1]],
    "float32",
)


def np_sigmoid_focal(y, p, alpha, gamma, from_logits=False):
    """Lin et al. (2017), per class, summed over classes (as in tfa)."""
    y = y.astype(np.float64)
    p = p.astype(np.float64)
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    else:
        p = np.clip(p, EPS, 1 - EPS)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = 1.0 if alpha is None else y * alpha + (1 - y) * (1 - alpha)
    return np.sum(alpha_t * (1 - p_t) ** gamma * bce, axis=-1)


def _per_sample(loss, y, p):
    loss = loss.__class__.from_config({**loss.get_config(), "reduction": None})
    return keras.ops.convert_to_numpy(loss(y, p))


def test_sigmoid_focal_by_hand():
    # y=[1, 0], p=[0.8, 0.2]: both terms have p_t = 0.8 and bce = -ln(0.8).
    loss = SigmoidFocalCrossEntropy(alpha=0.25, gamma=2.0, reduction=None)
    got = keras.ops.convert_to_numpy(loss(np.array([[1.0, 0.0]]), np.array([[0.8, 0.2]])))
    expected = (0.25 + 0.75) * 0.2**2 * -np.log(0.8)  # 0.0089257
    np.testing.assert_allclose(got, [expected], rtol=1e-5)
    assert expected == pytest.approx(0.0089257, abs=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.0, 0.25, 0.5, 1.0])
def test_sigmoid_focal_matches_formula(alpha, gamma):
    loss = SigmoidFocalCrossEntropy(alpha=alpha, gamma=gamma)
    expected = np_sigmoid_focal(Y_TRUE, Y_PROB, alpha, gamma)
    np.testing.assert_allclose(_per_sample(loss, Y_TRUE, Y_PROB), expected, rtol=1e-5, atol=1e-7)
    # Default reduction: mean over the batch.
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PROB)), expected.mean(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (None, 0.0), (0.6, 1.5)])
def test_sigmoid_focal_from_logits(alpha, gamma):
    loss = SigmoidFocalCrossEntropy(alpha=alpha, gamma=gamma, from_logits=True)
    np.testing.assert_allclose(
        _per_sample(loss, Y_TRUE, LOGITS),
        np_sigmoid_focal(Y_TRUE, LOGITS, alpha, gamma, from_logits=True),
        rtol=1e-5,
        atol=1e-7,
    )


def test_sigmoid_focal_clips_probabilities():
    loss = SigmoidFocalCrossEntropy(gamma=0.0, alpha=None, reduction=None)
    got = keras.ops.convert_to_numpy(loss(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])))
    assert np.all(np.isfinite(got))
    # Clipped to [eps, 1 - eps] in float32, where 1 - 1e-7 rounds down.
    upper = float(np.float32(1 - EPS))
    np.testing.assert_allclose(got, [-np.log(EPS) - np.log(1 - upper)], rtol=1e-5)


def test_sigmoid_focal_with_sample_weight():
    loss = SigmoidFocalCrossEntropy(reduction="sum")
    weights = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    expected = np.sum(weights * np_sigmoid_focal(Y_TRUE, Y_PROB, 0.25, 2.0))
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PROB, sample_weight=weights)), expected, rtol=1e-5)


def test_sigmoid_focal_arguments_validated():
    with pytest.raises(ValueError, match=r"`gamma` must be >= 0. Received: gamma=-1"):
        SigmoidFocalCrossEntropy(gamma=-1)
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\]"):
        SigmoidFocalCrossEntropy(alpha=1.5)
    with pytest.raises(ValueError, match=r"Received: alpha=-0.1"):
        SigmoidFocalCrossEntropy(alpha=-0.1)


def _smooth(y, label_smoothing):
    return y * (1 - label_smoothing) + label_smoothing / y.shape[-1]


def _np_ce(y, p):
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(y * np.log(p), axis=-1)


def _np_categorical_focal(y, p, alpha, gamma):
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(alpha * (1 - p) ** gamma * y * np.log(p), axis=-1)


def test_make_loss_ce():
    loss = make_loss("ce", label_smoothing=0.3)  # ignored by "ce"
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.label_smoothing == 0.0 and not loss.from_logits
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PROB)), _np_ce(Y_TRUE, Y_PROB).mean(), rtol=1e-5)


@pytest.mark.parametrize("label_smoothing", [0.1, 0.2])
def test_make_loss_ce_smooth(label_smoothing):
    loss = make_loss("ce_smooth", label_smoothing=label_smoothing)
    assert isinstance(loss, keras.losses.CategoricalCrossentropy)
    assert loss.label_smoothing == label_smoothing
    expected = _np_ce(_smooth(Y_TRUE, label_smoothing), Y_PROB).mean()
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PROB)), expected, rtol=1e-5)
    # By hand for one sample: y=[1, 0], p=[0.8, 0.2], smoothing 0.2 -> y=[0.9,
    # 0.1].
    two = make_loss("ce_smooth", label_smoothing=0.2)
    assert float(two(np.array([[1.0, 0.0]]), np.array([[0.8, 0.2]]))) == (
        pytest.approx(-(0.9 * np.log(0.8) + 0.1 * np.log(0.2)), rel=1e-5)
    )


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (1.0, 0.0), (0.5, 3.0)])
def test_make_loss_focal(alpha, gamma):
    loss = make_loss("focal", focal_gamma=gamma, focal_alpha=alpha)
    assert isinstance(loss, keras.losses.CategoricalFocalCrossentropy)
    assert (loss.alpha, loss.gamma) == (alpha, gamma)
    expected = _np_categorical_focal(Y_TRUE, Y_PROB, alpha, gamma).mean()
    np.testing.assert_allclose(float(loss(Y_TRUE, Y_PROB)), expected, rtol=1e-5)


def test_make_loss_sigmoid_focal():
    loss = make_loss("sigmoid_focal", focal_gamma=1.0, focal_alpha=0.4)
    assert isinstance(loss, SigmoidFocalCrossEntropy)
    assert (loss.alpha, loss.gamma, loss.from_logits) == (0.4, 1.0, False)


def test_make_loss_unknown_name():
    with pytest.raises(
        ValueError,
        match=r"one of \('ce', 'ce_smooth', "
        r"'focal', 'sigmoid_focal'\). Received: name='hinge'",
    ):
        make_loss("hinge")


def test_config_round_trip():
    loss = SigmoidFocalCrossEntropy(alpha=0.4, gamma=1.5, from_logits=True, reduction="sum", name="sfl")
    config = loss.get_config()
    assert config == {"name": "sfl", "reduction": "sum", "alpha": 0.4, "gamma": 1.5, "from_logits": True}
    assert SigmoidFocalCrossEntropy.from_config(config).get_config() == config
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(loss)))
    assert serialized["registered_name"] == ("leafsearch>SigmoidFocalCrossEntropy")
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is SigmoidFocalCrossEntropy
    assert revived.get_config() == config


def _softmax_model():
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )


def test_in_softmax_model_and_saved(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5)).astype("float32") * 3
    y = keras.utils.to_categorical(rng.integers(0, 4, 8), 4)
    model = _softmax_model()
    model.compile(optimizer="sgd", loss=SigmoidFocalCrossEntropy(alpha=0.3))
    # The loss inside evaluate() (compiled graph, softmax output) is the
    # formula on the predicted probabilities, not on the softmax's logits.
    probs = model.predict(x, verbose=0)
    expected = np_sigmoid_focal(y, probs, 0.3, 2.0).mean()
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "focal.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, SigmoidFocalCrossEntropy)
    assert loaded.loss.get_config() == model.loss.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
