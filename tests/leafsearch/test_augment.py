"""Augmentation layers compile: a layer Keras marks `supports_jit = False` makes `fit` run the
train step op by op under JAX (GPU idle; see bench/README.md)."""

import keras
import numpy as np
import pytest

from leafsearch.models.augment import augmentation_layers
from leafsearch.models.layers import RandomCropResize
from leafsearch.training.recipe import resolve

EVERY_AUGMENTATION = dict(aug_flip=True, aug_rotation=0.2, aug_zoom=0.2, aug_contrast=0.3, aug_crop=0.2, aug_noise=0.05)


def test_under_jax_every_augmentation_layer_may_be_compiled(monkeypatch):
    recipe = resolve({"image_size": 16, **EVERY_AUGMENTATION}, "cnn")
    assert not all(layer.supports_jit for layer in augmentation_layers(recipe, 16, 0))  # Keras' own marks
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert all(layer.supports_jit for layer in augmentation_layers(recipe, 16, 0))


def test_random_crop_resize_draws_a_window_per_image_in_a_graph():
    import tensorflow as tf

    layer = RandomCropResize(0.5, seed=1)
    assert not layer.supports_jit  # TensorFlow's transform kernel has no XLA version: Keras must not ask for XLA
    ramp = np.tile(np.arange(8, dtype="float32")[None, :, None, None], (4, 1, 8, 3))
    out = tf.function(lambda x: layer(x, training=True))(ramp).numpy()
    assert out.shape == ramp.shape
    columns = out[:, :, 0, 0]
    assert (np.diff(columns, axis=1) >= 0).all() and (columns.max(axis=1) - columns.min(axis=1) < 5).all()
    assert len({tuple(np.round(row, 3)) for row in columns}) > 1  # not one window for the whole batch
    np.testing.assert_array_equal(layer(ramp, training=False), ramp)


def leaf_on_black(size=32, seed=0):
    """A drawn leaf (a green ellipse with veins of noise) on a noisy black background, and its own mask."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    mask_image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask_image).ellipse((size * 0.2, size * 0.3, size * 0.8, size * 0.75), fill=255)
    mask = np.asarray(mask_image) > 0
    image = rng.integers(0, 12, (size, size, 3)).astype(np.uint8)  # black, as a camera sees it
    leaf = np.stack(
        [rng.integers(40, 90, (size, size)), rng.integers(120, 200, (size, size)), rng.integers(30, 70, (size, size))],
        -1,
    )
    image[mask] = leaf[mask]
    image[mask & (rng.uniform(size=(size, size)) < 0.02)] = 0  # a few pure-black leaf pixels
    return image, mask


def interior(image):
    """The leaf pixels of a drawn `image` farther than masks.RIM px from its background: its own
    in every replacement (the rim lets the new background show through, as the black did)."""
    from numpy.lib.stride_tricks import sliding_window_view

    from leafsearch.data.masks import RIM, leaf_masks

    background = np.pad(~leaf_masks(image[None])[0][0], RIM, constant_values=False)
    return ~sliding_window_view(background, (2 * RIM + 1, 2 * RIM + 1)).any(axis=(-1, -2)) & ~(image == 0).all(axis=-1)


def test_the_mask_covers_the_leaf_and_a_photo_without_black_background_is_not_usable():
    from leafsearch.data import masks

    image, truth = leaf_on_black()
    photo = np.random.default_rng(1).integers(60, 255, (32, 32, 3)).astype(np.uint8)
    found, usable = masks.leaf_masks(np.stack([image, photo]))
    inter, union = (found[0] & truth).sum(), (found[0] | truth).sum()
    assert inter / union > 0.95 and usable.tolist() == [True, False]


def test_background_replacement_changes_only_the_background_and_is_off_at_inference():
    from leafsearch.data import masks
    from leafsearch.models.layers import BackgroundReplace

    image, truth = leaf_on_black()
    marked = masks.MarkedImages(image[None])[np.array([0])].astype("float32")
    layer = BackgroundReplace(1.0, seed=3)
    out = np.asarray(layer(marked, training=True))
    leaf = interior(image)
    assert leaf.sum() > 50  # not an empty test: the inside of the ellipse, away from its black specks
    np.testing.assert_array_equal(out[0][leaf], image[leaf])  # the leaf's pixels are its own
    assert (out[0][~truth] != 0).any(axis=-1).mean() > 0.9 and out[0][~truth].std() > 5  # a new, varied background
    np.testing.assert_array_equal(np.asarray(layer(marked, training=False)), marked)
    again = BackgroundReplace.from_config(layer.get_config())
    assert (again.share, again.seed, again.photos) == (1.0, 3, None)


def test_background_photos_come_from_the_folder_given(tmp_path):
    from PIL import Image

    from leafsearch.data import masks
    from leafsearch.models.layers import BackgroundReplace

    Image.fromarray(np.full((20, 20, 3), (200, 30, 30), np.uint8)).save(tmp_path / "red.png")
    image, truth = leaf_on_black()
    marked = masks.MarkedImages(image[None])[np.array([0])].astype("float32")
    out = np.asarray(BackgroundReplace(1.0, photos=str(tmp_path), seed=0, clutter=0.0)(marked, training=True))
    np.testing.assert_allclose(out[0][~truth].mean(axis=0), [200, 30, 30], atol=1)


def test_a_few_background_photos_give_many_backgrounds_cropped_at_random(tmp_path):
    from PIL import Image

    from leafsearch.data.background_photos import BANK, photo_bank

    half = np.zeros((40, 80, 3), np.uint8)
    half[:, 40:] = (0, 0, 250)  # left half black, right half blue: a crop's blue share says where it was cut
    Image.fromarray(half).save(tmp_path / "halves.png")
    (tmp_path / "notes.txt").write_text("not an image")
    bank = photo_bank(str(tmp_path), 8, seed=0)
    assert bank.shape == (BANK, 8, 8, 3) and bank.dtype == np.uint8
    blue = (bank[..., 2] > 125).mean(axis=(1, 2))
    assert blue.min() == 0.0 and blue.max() == 1.0 and len(np.unique(blue)) > 5
    np.testing.assert_array_equal(bank, photo_bank(str(tmp_path), 8, seed=0))  # fixed per seed


def test_a_new_background_shows_through_the_leafs_rim_as_the_black_did(tmp_path):
    """A rim pixel at half the leaf's brightness (half leaf, half black) becomes half leaf, half
    new background, in the layer and in the wild validation copy alike; the inside stays."""
    from PIL import Image

    from leafsearch.data import masks
    from leafsearch.models.layers import BackgroundReplace

    Image.fromarray(np.full((20, 20, 3), (0, 0, 240), np.uint8)).save(tmp_path / "blue.png")
    image = np.zeros((24, 24, 3), np.uint8)
    image[6:18, 6:18] = (50, 100, 50)  # the rim: half as bright as the leaf
    image[7:17, 7:17] = (100, 200, 100)
    marked = masks.MarkedImages(image[None])[np.array([0])].astype("float32")
    out = np.asarray(BackgroundReplace(1.0, photos=str(tmp_path), seed=0, clutter=0.0)(marked, training=True))[0]
    np.testing.assert_allclose(out[6, 10], (50, 100, 170), atol=1)
    np.testing.assert_array_equal(out[12, 12], (100, 200, 100))
    np.testing.assert_allclose(out[0, 0], (0, 0, 240), atol=1)
    opacity = masks.rim_opacity(image[None], ~masks.leaf_masks(image[None])[0])[0]
    assert (opacity[6, 10], opacity[12, 12], opacity[0, 0]) == (0.5, 1.0, 0.0)


def test_clutter_puts_another_leaf_of_the_batch_behind_the_leaf(tmp_path):
    from PIL import Image

    from leafsearch.data import masks
    from leafsearch.models.layers import BackgroundReplace

    Image.fromarray(np.full((20, 20, 3), (30, 30, 200), np.uint8)).save(tmp_path / "blue.png")
    image, truth = leaf_on_black()
    red = np.zeros_like(image)
    red[2:-2, 2:-2] = (220, 20, 20)  # a leaf that fills its image, on a black border
    batch = masks.MarkedImages(np.stack([image, red]))[np.array([0, 1])].astype("float32")
    leaf = interior(image)

    def background_colours(clutter):
        out = np.asarray(BackgroundReplace(1.0, photos=str(tmp_path), seed=0, clutter=clutter)(batch, training=True))
        np.testing.assert_array_equal(out[0][leaf], image[leaf])  # the leaf itself stays as it was
        behind = out[0][~truth]
        return (behind[:, 0] > behind[:, 2]).mean()  # the share of the background that is red, not blue

    assert background_colours(0.0) == 0.0
    assert background_colours(1.0) > 0.5  # the red leaf of the batch, magnified, lies behind the first


def test_the_wild_validation_copy_is_the_same_for_every_trial():
    from leafsearch.data import masks

    image, truth = leaf_on_black()
    images = np.stack([image, image])
    first, second = masks.with_backgrounds(images, seed=0), masks.with_backgrounds(images, seed=0)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, masks.with_backgrounds(images, seed=1))
    leaf = interior(image)  # a pure-black leaf pixel looks like background
    np.testing.assert_array_equal(first[0][leaf], image[leaf])


def hard_eroded(mask: np.ndarray, px: int = 2) -> np.ndarray:
    """The head's gate: over one half (a steep hard sigmoid, 0 below 0.497 and 1 above 0.503),
    less a `px`-pixel rim (a min-pool whose "same" padding ignores the outside)."""
    kept = np.clip((1000.0 * mask - 500.0 + 3.0) / 6.0, 0.0, 1.0)
    padded = np.pad(kept, ((0, 0), (px, px), (px, px)), constant_values=1.0)
    window = range(2 * px + 1)
    return np.min(
        [padded[:, dy : dy + mask.shape[1], dx : dx + mask.shape[2]] for dy in window for dx in window], axis=0
    )


def test_the_leaf_mask_head_is_trained_on_the_true_mask_and_gates_at_inference_only():
    """Its loss is the head's binary cross-entropy against the leaf of the marked image, added in
    training and never at inference. The gate is the true mask in training (the classifier learns
    on leaves on black; the head's for a share) and the head's at inference, hard and less the
    leaf's one-pixel rim (the head's two)."""
    from leafsearch.models.cnn import build_cnn

    recipe = resolve(
        {"image_size": 16, "leaf_mask": True, "aug_flip": False, "aug_rotation": 0.0, "aug_zoom": 0.0}, "cnn"
    )
    model = build_cnn(recipe, 3, seed=0)
    images = np.zeros((4, 16, 16, 3), "float32")
    images[:, 4:12, 5:10] = [[[60.0, 140.0, 30.0]]]  # a leaf on its marked black background
    images[1, 4:12, 5:10] = [[[90.0, 40.0, 130.0]]]
    truth = (images.max(-1) > 0).astype("float32")
    head = keras.Model(model.input, model.get_layer("mask_logit").output)
    predicted = keras.ops.convert_to_numpy(head(images, training=True))[..., 0].clip(1e-7, 1 - 1e-7)  # batch statistics
    expected = -(truth * np.log(predicted) + (1 - truth) * np.log(1 - predicted)).mean()
    gate = keras.Model(model.input, model.get_layer("mask_apply").output)
    interior = np.zeros_like(truth)
    interior[:, 5:11, 6:9] = 1.0  # the leaf less its rim
    supervision = model.get_layer("fit_mask_loss")
    supervision.own = 0.0  # every image through its true mask
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gate(images, training=True)), images * interior[..., None])
    supervision.own = 1.0  # every image through the head's own mask (hard, eroded, as at inference)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(gate(images, training=True)),
        images * hard_eroded(predicted)[..., None],
        rtol=1e-3,
        atol=0.05,
    )
    supervision.own = 0.5
    model(images, training=True)
    [loss] = model.losses
    np.testing.assert_allclose(float(loss), expected, rtol=1e-3)
    model(images, training=False)
    assert model.losses == []
    predicted = keras.ops.convert_to_numpy(head(images))[..., 0]  # moving statistics
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(gate(images)), images * hard_eroded(predicted)[..., None], rtol=1e-3, atol=0.05
    )


def test_a_photo_share_of_the_new_backgrounds_are_photos_and_the_rest_procedural(tmp_path):
    from PIL import Image

    from leafsearch.data import masks
    from leafsearch.models.layers import BackgroundReplace

    Image.fromarray(np.full((20, 20, 3), (200, 30, 30), np.uint8)).save(tmp_path / "red.png")
    image, truth = leaf_on_black()
    marked = masks.MarkedImages(np.repeat(image[None], 64, axis=0))[np.arange(64)].astype("float32")

    def red_share(photo_share):
        layer = BackgroundReplace(1.0, photos=str(tmp_path), seed=0, clutter=0.0, photo_share=photo_share)
        out = np.asarray(layer(marked, training=True))
        return np.mean([np.allclose(o[~truth].mean(axis=0), [200, 30, 30], atol=1) for o in out]), layer

    assert red_share(0.0)[0] == 0.0 and red_share(1.0)[0] == 1.0
    share, layer = red_share(0.5)
    assert 0.3 < share < 0.7  # per image, not per batch
    assert BackgroundReplace.from_config(layer.get_config()).photo_share == 0.5
    with pytest.raises(ValueError, match="photo_share"):
        BackgroundReplace(0.5, photo_share=1.5)
