"""The synthetic leaf set must look like the real one (layout, imbalance, black
background), be reproducible from a seed, and carry class signal."""

import re

import numpy as np
import pytest
from PIL import Image

from leafsearch.data.synthetic import REAL_COUNTS, SPECIES, class_counts, draw_leaf, generate

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaves")
    counts = generate(root, total=168, image_size=SIZE, seed=0)
    return root, counts


def _load(root, species):
    files = sorted((root / species).glob("*.png"))
    return [np.asarray(Image.open(f)) for f in files]


def _corner_means(img: np.ndarray) -> float:
    c = 3
    corners = [img[:c, :c], img[:c, -c:], img[-c:, :c], img[-c:, -c:]]
    return float(np.mean([x.mean() for x in corners]))


# ---------------------------------------------------------------- classes and counts


def test_species_table_matches_real_dataset():
    assert len(SPECIES) == 14
    assert list(SPECIES) == sorted(SPECIES)
    assert set(REAL_COUNTS) == set(SPECIES)
    assert sum(REAL_COUNTS.values()) == 17728


@pytest.mark.parametrize("total", [84, 150, 560, 2000])
def test_class_counts_sum_and_minimum(total):
    counts = class_counts(total)
    assert list(counts) == list(SPECIES)
    assert abs(sum(counts.values()) - total) <= 1
    assert min(counts.values()) >= 6


@pytest.mark.parametrize("total", [150, 560, 2000])
def test_class_counts_keep_the_imbalance(total):
    counts = class_counts(total)
    others = [v for s, v in counts.items() if s != "Tomato"]
    assert counts["Tomato"] > max(others)
    assert counts["Raspberry"] == min(counts.values())
    # ordering by real frequency is preserved (ties allowed where the minimum kicks in)
    by_real = sorted(SPECIES, key=REAL_COUNTS.get)
    assert [counts[s] for s in by_real] == sorted(counts[s] for s in by_real)
    assert counts["Tomato"] / counts["Raspberry"] >= (4 if total < 500 else 15)


def test_class_counts_proportional_when_large():
    counts = class_counts(17728)
    assert counts == REAL_COUNTS


def test_class_counts_rejects_too_small_total():
    with pytest.raises(ValueError, match="too small"):
        class_counts(13 * 6)
    with pytest.raises(ValueError, match="too small"):
        class_counts(40, min_per_class=3)
    assert sum(class_counts(42, min_per_class=3).values()) == 42


def test_generate_rejects_too_small_total_or_size(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        generate(tmp_path, total=20, image_size=32)
    with pytest.raises(ValueError, match="image_size"):
        generate(tmp_path, total=84, image_size=4)


def test_unknown_species_is_rejected():
    with pytest.raises(ValueError, match="Banana"):
        draw_leaf("Banana", np.random.default_rng(0))


# ---------------------------------------------------------------- layout


def test_layout_is_one_folder_per_class(dataset):
    root, counts = dataset
    assert sorted(p.name for p in root.iterdir()) == list(SPECIES)
    assert counts == class_counts(168)
    for species in SPECIES:
        names = sorted(p.name for p in (root / species).iterdir())
        assert names == [f"{species.lower()}_{i:05d}.png" for i in range(counts[species])]


def test_regenerating_smaller_removes_stale_images(tmp_path):
    generate(tmp_path, total=120, image_size=32)
    counts = generate(tmp_path, total=84, image_size=32)
    for species in SPECIES:
        assert len(list((tmp_path / species).glob("*.png"))) == counts[species]


def test_images_are_rgb_at_requested_size(dataset):
    root, _ = dataset
    for species in SPECIES:
        for f in list((root / species).glob("*.png"))[:3]:
            with Image.open(f) as img:
                assert img.mode == "RGB"
                assert img.size == (SIZE, SIZE)
    img = draw_leaf("Grape", np.random.default_rng(1), image_size=48, wild=True)
    assert img.mode == "RGB" and img.size == (48, 48)


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate(tmp_path / "a", total=84, image_size=32, seed=3)
    b = generate(tmp_path / "b", total=84, image_size=32, seed=3)
    assert a == b
    for species in SPECIES:
        for fa in (tmp_path / "a" / species).iterdir():
            assert fa.read_bytes() == (tmp_path / "b" / species / fa.name).read_bytes()


def test_different_seed_gives_different_images(tmp_path):
    generate(tmp_path / "a", total=84, image_size=32, seed=1)
    generate(tmp_path / "b", total=84, image_size=32, seed=2)
    differ = [
        (tmp_path / "a" / s / f).read_bytes() != (tmp_path / "b" / s / f).read_bytes()
        for s in SPECIES
        for f in (f"{s.lower()}_00000.png", f"{s.lower()}_00001.png")
    ]
    assert all(differ)


def test_each_image_has_its_own_rng(dataset):
    """A file depends only on (seed, class, index), not on generation order."""
    root, _ = dataset
    k = SPECIES.index("Peach")
    expected = np.asarray(draw_leaf("Peach", np.random.default_rng([0, k, 2]), SIZE))
    assert np.array_equal(np.asarray(Image.open(root / "Peach" / "peach_00002.png")), expected)


# ---------------------------------------------------------------- appearance


def test_normal_images_have_black_background(dataset):
    root, _ = dataset
    images = [img for s in SPECIES for img in _load(root, s)]
    dark = [_corner_means(img) < 20 for img in images]
    assert np.mean(dark) > 0.9  # a corn blade may cross a corner now and then
    # and the leaf itself is there: a good part of the image is not black
    assert np.mean([(img.max(-1) > 30).mean() for img in images]) > 0.15


def test_wild_images_have_cluttered_background(tmp_path):
    generate(tmp_path, total=84, image_size=32, seed=0, wild=True)
    images = [img for s in SPECIES for img in _load(tmp_path, s)]
    bright = [_corner_means(img) > 30 for img in images]
    assert np.mean(bright) > 0.9


def test_wild_keeps_the_same_leaf():
    plain = np.asarray(draw_leaf("Apple", np.random.default_rng(5), 64), np.int16)
    wild = np.asarray(draw_leaf("Apple", np.random.default_rng(5), 64, wild=True), np.int16)
    leaf = plain.max(-1) > 60
    assert leaf.mean() > 0.1
    # inside the leaf only the sensor noise differs
    assert np.abs(plain[leaf] - wild[leaf]).mean() < 8
    assert np.abs(plain[~leaf] - wild[~leaf]).mean() > 30


def _features(img: np.ndarray) -> np.ndarray:
    """Cheap per-image summary: leaf area, mean leaf colour, brightness spread."""
    mask = img.max(-1) > 25
    leaf = img[mask].astype(float) if mask.any() else np.zeros((1, 3))
    return np.array([mask.mean() * 255, *leaf.mean(0), leaf.mean(-1).std()])


def test_classes_differ_on_average(dataset):
    root, _ = dataset
    feats = {s: np.stack([_features(img) for img in _load(root, s)]) for s in SPECIES}
    means = {s: f.mean(0) for s, f in feats.items()}
    # e.g. citrus greening makes orange leaves yellower than the dark green strawberry
    assert means["Orange"][1] - means["Orange"][2] > means["Strawberry"][1] - means["Strawberry"][2] + 10
    # a nearest-centroid rule on these crude features already beats chance (1/14) by far
    names = list(SPECIES)
    centroids = np.stack([means[s] for s in names])
    scale = np.concatenate(list(feats.values())).std(0) + 1e-9
    hits = total = 0
    for k, s in enumerate(names):
        d = (((feats[s][:, None, :] - centroids[None]) / scale) ** 2).sum(-1)
        hits += int((d.argmin(1) == k).sum())
        total += len(feats[s])
    assert hits / total > 0.25


def test_classes_are_not_trivially_separable_by_colour(dataset):
    """Some classes overlap in mean colour, so shape has to be learnt too."""
    root, _ = dataset
    means = {s: np.stack([_features(img) for img in _load(root, s)])[:, 1:4].mean(0) for s in SPECIES}
    close = [(a, b) for i, a in enumerate(SPECIES) for b in SPECIES[i + 1 :] if np.abs(means[a] - means[b]).max() < 12]
    assert len(close) >= 3


def test_file_names_have_five_digit_index(dataset):
    root, _ = dataset
    for f in (root / "Tomato").iterdir():
        assert re.fullmatch(r"tomato_\d{5}\.png", f.name)


def test_workers_do_not_change_the_files(tmp_path):
    generate(tmp_path / "serial", total=84, image_size=32, seed=4)
    generate(tmp_path / "parallel", total=84, image_size=32, seed=4, workers=2)
    for species in SPECIES:
        for f in (tmp_path / "serial" / species).iterdir():
            assert f.read_bytes() == (tmp_path / "parallel" / species / f.name).read_bytes()
