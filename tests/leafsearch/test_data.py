"""Tests for leafsearch.data: scanning, the 5:1 split, decode-once caching, class weights, tf.data."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leafsearch.data import (
    ImageFolder,
    LeafData,
    class_weights,
    load_images,
    prepare,
    scan_folder,
    stratified_split,
)
from leafsearch.data import cache as decode_cache
from leafsearch.data.batches import make_tf_dataset
from search.errors import UsageError

# One solid colour per class, far apart, so a decoded pixel tells its class.
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def make_folder(root: Path, counts: dict[str, int], size=(20, 16), ext=".png") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(exist_ok=True)
        for i in range(n):
            Image.new("RGB", size, COLORS[c % len(COLORS)]).save(root / name / f"img{i:03d}{ext}")
    return root


@pytest.fixture
def leaves(tmp_path: Path) -> Path:
    # Deliberately not in sorted order of creation.
    return make_folder(tmp_path / "leaves", {"Grape": 12, "Apple": 6, "Corn": 30})


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------------------------
# scan_folder
# --------------------------------------------------------------------------------------------
def test_scan_sorted_classes_and_counts(leaves: Path):
    (leaves / "Apple" / "UPPER.JPG").write_bytes((leaves / "Apple" / "img000.png").read_bytes())
    (leaves / "Apple" / ".DS_Store").write_bytes(b"junk")
    (leaves / ".hidden_class").mkdir()
    (leaves / ".hidden_class" / "x.png").write_bytes(b"junk")
    (leaves / "README.md").write_text("not a class")

    folder = scan_folder(leaves)
    assert isinstance(folder, ImageFolder)
    assert folder.class_names == ("Apple", "Corn", "Grape")
    assert np.bincount(folder.labels).tolist() == [7, 30, 12]
    assert len(folder.paths) == len(folder.labels) == 49
    assert all(folder.class_names[label] == p.parent.name for p, label in zip(folder.paths, folder.labels))
    assert not any(p.name.startswith(".") for p in folder.paths)
    assert folder.ignored == ()


def test_scan_missing_folder(tmp_path: Path):
    with pytest.raises(UsageError) as exc:
        scan_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in one_line(exc)
    assert "does not exist" in str(exc.value)


def test_scan_not_a_directory(tmp_path: Path):
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(UsageError) as exc:
        scan_folder(f)
    assert str(f) in one_line(exc) and "not a directory" in str(exc.value)


def test_scan_no_class_folders(tmp_path: Path):
    root = tmp_path / "flat"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.png")
    (root / ".git").mkdir()
    with pytest.raises(UsageError) as exc:
        scan_folder(root)
    msg = one_line(exc)
    assert str(root) in msg and "one sub-folder per class" in msg and "Apple/*.jpg" in msg


def test_scan_class_without_images(leaves: Path):
    (leaves / "Empty").mkdir()
    (leaves / "Empty" / "notes.txt").write_text("hi")
    with pytest.raises(UsageError) as exc:
        scan_folder(leaves)
    msg = one_line(exc)
    assert "Empty" in msg and "no images" in msg and str(leaves) in msg


def test_scan_single_class(tmp_path: Path):
    root = make_folder(tmp_path / "one", {"Apple": 3})
    with pytest.raises(UsageError) as exc:
        scan_folder(root)
    msg = one_line(exc)
    assert "only one class" in msg and "Apple" in msg and str(root) in msg


# --------------------------------------------------------------------------------------------
# stratified_split
# --------------------------------------------------------------------------------------------
def test_split_stratified_complete_disjoint():
    labels = np.repeat([0, 1, 2, 3], [30, 12, 6, 18])
    train, val = stratified_split(labels, seed=0)
    assert len(np.intersect1d(train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.bincount(labels[val]).tolist() == [5, 2, 1, 3]  # round(n / 6)
    assert np.bincount(labels[train]).tolist() == [25, 10, 5, 15]
    assert train.dtype == val.dtype == np.int64


def test_split_deterministic_per_seed():
    labels = np.repeat([0, 1, 2], [30, 24, 18])
    a = stratified_split(labels, seed=3)
    b = stratified_split(labels, seed=3)
    c = stratified_split(labels, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert np.bincount(labels[c[1]]).tolist() == np.bincount(labels[a[1]]).tolist()


def test_split_tiny_classes():
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3])  # sizes 2, 3, 1, 9
    train, val = stratified_split(labels, seed=0)
    val_counts = np.bincount(labels[val], minlength=4)
    train_counts = np.bincount(labels[train], minlength=4)
    assert val_counts.tolist() == [1, 1, 0, 2]  # >=1 val for n>=2; 9/6=1.5 rounds to 2
    assert train_counts.tolist() == [1, 2, 1, 7]  # >=1 train always
    with pytest.raises(ValueError):
        stratified_split(labels, val_fraction=0.0)


# --------------------------------------------------------------------------------------------
# load_images
# --------------------------------------------------------------------------------------------
def test_load_shape_dtype_and_label_alignment(leaves: Path):
    folder = scan_folder(leaves)
    loaded = load_images(folder, 24, cache_dir=None)
    assert loaded.images.shape == (48, 24, 24, 3) and loaded.images.dtype == np.uint8
    assert loaded.skipped == ()
    assert np.array_equal(loaded.kept, np.arange(48))
    colors = {0: COLORS[1], 1: COLORS[2], 2: COLORS[0]}  # Apple, Corn, Grape in creation colours
    for img, label in zip(loaded.images, loaded.labels):
        assert tuple(img[5, 5]) == colors[int(label)]


def test_load_bilinear_and_rgb_conversion(tmp_path: Path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    checker = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8), mode="L")
    checker.save(root / "a" / "gray.png")
    Image.new("P", (5, 3), 0).save(root / "b" / "palette.gif")
    Image.new("RGBA", (7, 9), (10, 20, 30, 40)).save(root / "b" / "alpha.png")

    loaded = load_images(scan_folder(root), 8, cache_dir=None)
    assert loaded.images.shape == (3, 8, 8, 3)
    gray = loaded.images[0]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    # Bilinear interpolation of a 2x2 checkerboard produces intermediate values (nearest would not).
    values = set(np.unique(gray).tolist())
    assert values - {0, 255}
    expected = np.asarray(checker.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR))
    assert np.array_equal(gray, expected)
    assert tuple(loaded.images[1, 0, 0]) == (10, 20, 30)  # alpha dropped (b/alpha.png sorts first)


def test_load_skips_corrupt_and_non_images_with_one_warning(leaves: Path, tmp_path: Path, caplog):
    rng = np.random.default_rng(0)
    (leaves / "Corn" / "broken.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (leaves / "Grape" / "truncated.png").write_bytes((leaves / "Grape" / "img000.png").read_bytes()[:40])
    (leaves / "Apple" / "notes.txt").write_text("field notes")
    folder = scan_folder(leaves)

    for cache in (None, tmp_path / "cache"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leafsearch.data"):
            loaded = load_images(folder, 16, cache_dir=cache)
        warnings_ = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings_) == 1 and warnings_[0].name == "leafsearch.data"
        msg = warnings_[0].getMessage()
        assert "skipped 3 files" in msg
        assert "Corn/broken.jpg" in msg and "Grape/truncated.png" in msg and "Apple/notes.txt" in msg
        assert len(loaded.images) == len(loaded.labels) == len(loaded.kept) == 48
        assert {p for p, _ in loaded.skipped} == {"Corn/broken.jpg", "Grape/truncated.png", "Apple/notes.txt"}
        assert np.array_equal(loaded.labels, folder.labels[loaded.kept])
        kept_names = {folder.paths[i].name for i in loaded.kept}
        assert "broken.jpg" not in kept_names and "truncated.png" not in kept_names
        colors = {0: COLORS[1], 1: COLORS[2], 2: COLORS[0]}
        assert all(tuple(img[3, 3]) == colors[int(label)] for img, label in zip(loaded.images, loaded.labels))


def _count_decodes(monkeypatch) -> list[int]:
    calls = [0]
    real = decode_cache.decode_image

    def counting(path, size):
        calls[0] += 1
        return real(path, size)

    monkeypatch.setattr(decode_cache, "decode_image", counting)
    return calls


def test_cache_second_call_decodes_nothing(leaves: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    folder = scan_folder(leaves)
    first = load_images(folder, 16, cache)
    assert sorted(p.suffix for p in cache.iterdir() if not p.name.endswith(".lock")) == [".json", ".npy"]
    assert not list(cache.glob("*.tmp"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(Image, "open", no_decoding)
    second = load_images(scan_folder(leaves), 16, cache)
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.kept, second.kept)


def test_cache_invalidation_and_per_size_entries(leaves: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    calls = _count_decodes(monkeypatch)
    entries = lambda: sorted(cache.glob("*.npy"))  # noqa: E731

    load_images(scan_folder(leaves), 16, cache)
    assert calls[0] == 48 and len(entries()) == 1
    load_images(scan_folder(leaves), 16, cache)
    assert calls[0] == 48 and len(entries()) == 1

    load_images(scan_folder(leaves), 20, cache)  # another size: its own entry
    assert calls[0] == 96 and len(entries()) == 2
    assert {np.load(p, mmap_mode="r").shape[1] for p in entries()} == {16, 20}

    target = leaves / "Apple" / "img000.png"  # modified file (new content, size and mtime)
    Image.new("RGB", (21, 17), (1, 2, 3)).save(target)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_images(scan_folder(leaves), 16, cache)
    assert calls[0] == 144 and len(entries()) == 3
    assert tuple(again.images[0, 0, 0]) == (1, 2, 3)

    Image.new("RGB", (10, 10), COLORS[0]).save(leaves / "Grape" / "new.png")  # added file
    added = load_images(scan_folder(leaves), 16, cache)
    assert calls[0] == 144 + 49 and len(entries()) == 4 and len(added.images) == 49

    (leaves / "Grape" / "new.png").unlink()  # removed again: the earlier entry is reused
    load_images(scan_folder(leaves), 16, cache)
    assert calls[0] == 144 + 49 and len(entries()) == 4


def test_cache_interrupted_write_leaves_no_entry(leaves: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache"
    real = decode_cache.decode_image
    calls = [0]

    def dies_midway(path, size):
        calls[0] += 1
        if calls[0] == 20:
            raise KeyboardInterrupt
        return real(path, size)

    monkeypatch.setattr(decode_cache, "decode_image", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        load_images(scan_folder(leaves), 16, cache, workers=1)
    assert not list(cache.glob("*.npy")) and not list(cache.glob("*.json"))
    assert not list(cache.glob("*.tmp"))
    monkeypatch.setattr(decode_cache, "decode_image", real)
    assert load_images(scan_folder(leaves), 16, cache).images.shape == (48, 16, 16, 3)


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def test_prepare_ties_it_together(leaves: Path, tmp_path: Path):
    ld = prepare(leaves, 16, cache_dir=tmp_path / "cache", seed=1)
    assert isinstance(ld, LeafData)
    assert ld.class_names == ("Apple", "Corn", "Grape") and ld.num_classes == 3 and ld.image_size == 16
    assert len(ld.images) == len(ld.labels) == 48
    assert np.array_equal(np.sort(np.concatenate([ld.train_idx, ld.val_idx])), np.arange(48))
    assert np.bincount(ld.labels[ld.val_idx]).tolist() == [1, 5, 2]
    ld2 = prepare(leaves, 16, cache_dir=tmp_path / "cache", seed=1)
    assert np.array_equal(ld.val_idx, ld2.val_idx)


def test_prepare_class_with_only_broken_images(tmp_path: Path):
    root = make_folder(tmp_path / "d", {"Apple": 4, "Corn": 4})
    (root / "Broken").mkdir()
    (root / "Broken" / "x.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(UsageError) as exc:
        prepare(root, 8)
    assert "Broken" in one_line(exc)


# --------------------------------------------------------------------------------------------
# class_weights
# --------------------------------------------------------------------------------------------
def test_class_weights_balanced():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2])  # counts 4, 2, 6; n = 12
    w = class_weights(labels, 3)
    assert w == pytest.approx({0: 12 / 12, 1: 12 / 6, 2: 12 / 18})
    assert class_weights([0, 0, 1], 3) == pytest.approx({0: 3 / 6, 1: 3 / 3, 2: 1.0})
    assert all(isinstance(k, int) and isinstance(v, float) for k, v in w.items())


# --------------------------------------------------------------------------------------------
# make_tf_dataset
# --------------------------------------------------------------------------------------------
def _id_images(n: int, size: int = 4) -> np.ndarray:
    """Image i is filled with the value i, so a batch tells which indices it holds."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 3)).copy()


def _epoch_ids(ds) -> list[int]:
    return [int(v) for imgs, _ in ds for v in imgs.numpy()[:, 0, 0, 0]]


def test_tf_dataset_batches_and_one_hot():
    images = _id_images(40)
    labels = np.arange(40) % 4
    indices = np.arange(3, 40, 2)  # 19 items
    ds = make_tf_dataset(images, labels, indices, num_classes=4, batch_size=8, shuffle=False, seed=0)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [8, 8, 3]
    assert batches[0][0].shape[1:] == (4, 4, 3) and batches[0][0].dtype.name == "uint8"
    assert batches[0][1].shape == (8, 4) and batches[0][1].dtype.name == "float32"
    assert ds.element_spec[0].shape.as_list() == [None, 4, 4, 3]
    assert _epoch_ids(ds) == indices.tolist()
    for imgs, onehot in batches:
        ids = imgs.numpy()[:, 0, 0, 0]
        assert np.array_equal(onehot.numpy(), np.eye(4, dtype=np.float32)[labels[ids]])


def test_tf_dataset_shuffles_each_epoch_seeded(tmp_path: Path):
    images = _id_images(60)
    np.save(tmp_path / "imgs.npy", images)
    mm = np.load(tmp_path / "imgs.npy", mmap_mode="r")
    labels = np.arange(60) % 3
    indices = np.arange(0, 60, 1)[5:55]
    ds = make_tf_dataset(mm, labels, indices, 3, batch_size=16, shuffle=True, seed=7)
    e1, e2 = _epoch_ids(ds), _epoch_ids(ds)
    assert sorted(e1) == sorted(e2) == indices.tolist()  # each index exactly once per epoch
    assert e1 != e2 and e1 != indices.tolist()
    same = make_tf_dataset(mm, labels, indices, 3, batch_size=16, shuffle=True, seed=7)
    assert _epoch_ids(same) == e1
    other = make_tf_dataset(mm, labels, indices, 3, batch_size=16, shuffle=True, seed=8)
    assert _epoch_ids(other) != e1


def test_tf_dataset_feeds_keras_fit(leaves: Path):
    import keras

    ld = prepare(leaves, 16)
    ds = make_tf_dataset(ld.images, ld.labels, ld.train_idx, ld.num_classes, 8, shuffle=True, seed=0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(ld.num_classes, activation="softmax")(x))
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    weights = class_weights(ld.labels[ld.train_idx], ld.num_classes)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False, class_weight=weights)
    assert np.isfinite(history.history["loss"][0])
