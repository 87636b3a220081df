"""The recipe a trial trains with: `aug_flip` names its flips, and the part no trial searches is
what a run prints once (leafsearch/cli/run.py)."""

import numpy as np
import pytest

from leafsearch.training import recipe
from search.errors import UsageError
from search.space import Choice, Fixed, Float, Int, Space


@pytest.mark.parametrize(
    "value, resolved",
    [
        ("none", "none"),
        ("horizontal", "horizontal"),
        ("vertical", "vertical"),
        ("both", "both"),
        (True, "both"),
        (False, "none"),  # the switch of older studies and spaces
    ],
)
def test_aug_flip_names_its_flips_and_older_switches_still_resolve(value, resolved):
    assert recipe.resolve({"aug_flip": value}, "cnn")["aug_flip"] == resolved


def test_the_default_flips_are_the_leaves_both_ways():
    assert recipe.resolve({}, "cnn")["aug_flip"] == recipe.resolve({}, "efficientnet")["aug_flip"] == "both"


def test_an_unknown_flip_is_one_line_naming_the_parameter_and_its_values():
    with pytest.raises(UsageError) as raised:
        recipe.resolve({"aug_flip": "diagonal"}, "cnn")
    assert str(raised.value) == (
        "parameter `aug_flip`: 'diagonal' is not one of none, horizontal, vertical, both (or True/False: both/none)"
    )
    space = Space(aug_flip=Choice(["both", "sideways"]), aug_zoom=Fixed(0.1))
    assert recipe.space_problems(space, "cnn") == [
        "parameter `aug_flip`: 'sideways' is not one of none, horizontal, vertical, both (or True/False: both/none)"
    ]
    assert recipe.space_problems(Space(aug_flip=Fixed(False)), "cnn") == []


def test_a_space_file_with_an_unknown_flip_exits_2_before_anything_is_written(tmp_path, capsys):
    from leafsearch.cli.main import main

    space = tmp_path / "flips.py"
    space.write_text(
        'from search import Fixed, Space, Study\nSPACE = Space(aug_flip=Fixed("upside_down"))\n'
        'STUDY = Study(pipeline="cnn", trials=1, max_epochs=1)\n'
    )
    assert main(["run", str(space), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "parameter `aug_flip`: 'upside_down' is not one of none, horizontal, vertical, both" in err
    )
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "flip, allowed",
    [
        ("horizontal", {"left-right"}),
        ("vertical", {"up-down"}),
        ("none", set()),
        ("both", {"left-right", "up-down", "both axes"}),  # Keras 3.15 draws once for both axes: only "both axes" shows
    ],
)
def test_each_flip_mirrors_the_training_images_only_the_way_it_names(flip, allowed):
    from leafsearch.models.augment import augmentation_layers

    layers = augmentation_layers(
        recipe.resolve({"aug_flip": flip, "aug_rotation": 0.0, "aug_zoom": 0.0}, "cnn"), 4, seed=0
    )
    assert [layer.name for layer in layers] == (["aug_flip"] if allowed else [])
    image = np.arange(4 * 4 * 3, dtype="float32").reshape(4, 4, 3)  # every pixel different: each mirror is told apart
    mirrors = {"none": image, "left-right": image[:, ::-1], "up-down": image[::-1], "both axes": image[::-1, ::-1]}
    batch = np.repeat(image[None], 64, axis=0)
    for layer in layers:
        batch = np.asarray(layer(batch, training=True))
    seen = {name for out in batch for name, mirrored in mirrors.items() if np.array_equal(out, mirrored)}
    assert len(seen) == len({out.tobytes() for out in batch})  # every output is one of the four
    if allowed:
        assert (
            "none" in seen and seen - {"none"} and seen - {"none"} <= allowed
        )  # 64 draws: some flipped, only as named
    else:
        assert seen == {"none"}


def test_the_fixed_part_is_what_no_trial_searches_less_what_no_trial_reads():
    space = Space(
        learning_rate=Float(1e-4, 1e-2, log=True),
        loss=Choice(["ce", "focal"]),
        aug_flip=Fixed("horizontal"),
        aug_background=Fixed(0.0),
        image_size=Fixed(32),
        epochs=Int(5, 50),
    )
    fixed = recipe.fixed_part(space, "cnn", max_epochs=10)
    assert fixed["aug_flip"] == "horizontal" and fixed["image_size"] == 32  # the space's Fixed values
    assert (
        fixed["aug_rotation"] == 0.1 and fixed["aug_zoom"] == 0.1 and fixed["precise_bn"] is True
    )  # the defaults it leaves
    assert not {"learning_rate", "loss", "epochs"} & set(fixed)  # searched
    assert {"focal_gamma", "focal_alpha"} <= set(fixed) and "label_smoothing" not in fixed  # read under focal only
    assert not {"backbone", "weights", "transfer_lr", "finetune_epochs", "unfreeze_blocks"} & set(
        fixed
    )  # EfficientNet's
    assert "backgrounds" not in fixed and "plateau_factor" not in fixed  # aug_background 0, a constant schedule
    assert recipe.fixed_part(Space(image_size=Fixed(32)), "cnn", max_epochs=10)["epochs"] == 10  # as the phases cap it
    efficient = recipe.fixed_part(Space(finetune_epochs=Fixed(0), aug_flip=Fixed(True)), "efficientnet", max_epochs=20)
    assert efficient["aug_flip"] == "both" and efficient["finetune_epochs"] == 0
    assert "finetune_lr" not in efficient and "unfreeze_blocks" not in efficient and "epochs" not in efficient


def test_an_augment_level_sets_the_six_knobs_and_the_seed_level_is_the_defaults():
    strong = recipe.resolve({"augment": "strong"}, "efficientnet")
    assert {knob: strong[knob] for knob in recipe.AUGMENT_KNOBS} == recipe.AUGMENT_PRESETS["strong"]
    assert strong["aug_background"] == 0.0  # a knob of its own
    assert recipe.resolve({"augment": "none", "aug_background": 0.5}, "cnn")["aug_background"] == 0.5
    seed, custom = recipe.resolve({"augment": "seed"}, "efficientnet"), recipe.resolve({}, "efficientnet")
    assert {k: seed[k] for k in recipe.AUGMENT_KNOBS} == {k: custom[k] for k in recipe.AUGMENT_KNOBS}
    # The same pixels before the backbone: a "seed" trial shares its cached views with the defaults'.
    from leafsearch.training.feature_cache import FeatureCache

    rows = np.arange(10)
    assert FeatureCache._view_key(seed, rows) == FeatureCache._view_key(custom, rows)
    assert FeatureCache._view_key(strong, rows) != FeatureCache._view_key(custom, rows)


def test_an_augment_level_and_a_knob_it_sets_are_one_line_naming_both():
    with pytest.raises(UsageError) as raised:
        recipe.resolve({"augment": "none", "aug_zoom": 0.2}, "cnn")
    assert str(raised.value).startswith("parameter `aug_zoom`: `augment` sets aug_flip, aug_rotation")
    assert recipe.resolve({"augment": "custom", "aug_zoom": 0.2}, "cnn")["aug_zoom"] == 0.2
    assert recipe.space_problems(Space(augment=Choice(["none", "seed"]), aug_flip=Fixed("none")), "cnn") == [
        recipe.augment_conflict(["aug_flip"])
    ]
    assert recipe.space_problems(Space(augment=Fixed("custom"), aug_flip=Fixed("none")), "cnn") == []
    assert recipe.space_problems(Space(augment=Choice(["seed", "heavy"])), "cnn") == [
        "parameter `augment`: 'heavy' is not one of custom, none, seed, seed_crop_noise, strong"
    ]
    # What a run prints once: the level, not knobs that no trial reads.
    fixed = recipe.fixed_part(Space(augment=Choice(["none", "strong"])), "efficientnet", max_epochs=5)
    assert not set(recipe.AUGMENT_KNOBS) & set(fixed) and fixed["aug_background"] == 0.0
    assert recipe.fixed_part(Space(augment=Fixed("strong")), "cnn", max_epochs=5)["augment"] == "strong"


def test_pinning_a_knob_of_the_shipped_finetune_space_names_augment_and_exits_2(tmp_path, capsys):
    from pathlib import Path

    from leafsearch.cli.main import main

    finetune = Path(__file__).resolve().parents[2] / "spaces" / "finetune.py"
    results = tmp_path / "results"
    assert main(["run", str(finetune), "--set", "aug_rotation=0", "--results", str(results), "--weights", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--set aug_rotation=0: this space sets aug_rotation through `augment`" in err
    assert "--set augment=none" in err
    assert not results.exists()


def test_photo_share_is_a_share_read_with_background_photos_and_keys_its_own_views(tmp_path, capsys):
    from leafsearch.cli.main import main
    from leafsearch.training.feature_cache import FeatureCache

    with pytest.raises(UsageError, match=r"^parameter `photo_share`: 1\.5 is not a share; give a number from 0 to 1$"):
        recipe.resolve({"photo_share": 1.5}, "cnn")
    assert recipe.space_problems(Space(photo_share=Float(0.0, 2.0)), "cnn") == [
        "parameter `photo_share`: 2.0 is not a share; give a number from 0 to 1"
    ]
    assert recipe.space_problems(Space(photo_share=Choice([0.0, 0.5, 1.0])), "cnn") == []
    # Printed only where a trial reads it: with a folder of photos.
    assert "photo_share" not in recipe.fixed_part(Space(aug_background=Fixed(0.5)), "cnn", max_epochs=5)
    photos = Space(aug_background=Fixed(0.5), backgrounds=Fixed(str(tmp_path)), photo_share=Fixed(0.5))
    assert recipe.fixed_part(photos, "cnn", max_epochs=5)["photo_share"] == 0.5
    # Views of photos alone keep the key they had; a mix draws views of its own.
    rows = np.arange(10)
    alone = recipe.resolve({"aug_background": 0.5, "backgrounds": str(tmp_path), "photo_share": 1.0}, "efficientnet")
    mixed = {**alone, "photo_share": 0.5}
    assert "photo_share" not in FeatureCache._view_key(alone, rows)
    assert FeatureCache._view_key(mixed, rows) != FeatureCache._view_key(alone, rows)
    assert recipe.resolve({"backgrounds": str(tmp_path)}, "cnn")["photo_share"] == 0.5  # half photos by default
    assert FeatureCache._view_key({**mixed, "aug_background": 0.0}, rows) == FeatureCache._view_key(
        recipe.resolve({}, "efficientnet"), rows
    )
    space = tmp_path / "space.py"
    space.write_text(
        "from search import Choice, Fixed, Space, Study\n"
        "SPACE = Space(image_size=Fixed(32), aug_background=Fixed(0.5), photo_share=Choice([0.5, 2]))\n"
        'STUDY = Study(pipeline="cnn", trials=1, max_epochs=1)\n'
    )
    results = tmp_path / "results"
    assert main(["run", str(space), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "parameter `photo_share`: 2 is not a share" in err and not results.exists()
