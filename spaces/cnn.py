"""The seed's first attempt: a plain CNN (5 x conv + ReLU + batch norm + max-pool, flatten,
dense, dropout, softmax), searching what the seed found mattered most: batch size and learning
rate, then dropout, dense units and early-stopping patience. Defaults are the seed's values.
"""

from search import Choice, Fixed, Float, Int, Space, Study

SPACE = Space(
    batch_size=Choice([8, 16, 32, 64, 128], default=64),
    learning_rate=Float(1e-4, 1e-2, log=True, default=1e-3),
    dropout=Float(0.0, 0.5, default=0.3),
    dense_units=Int(128, 1024, step=128, default=512),
    patience=Int(3, 12, default=10),
    # The seed trained at 256 px; 128 px keeps a CPU study quick. `--image-size 256` overrides.
    image_size=Fixed(128),
    # The leaves' augmentations (a leaf upside down is still that leaf). For other images set what
    # fits them: a 6 upside down is a 9, so digits want aug_flip=Fixed("none") and little rotation.
    aug_flip=Fixed("both"),
    aug_rotation=Fixed(0.1),
    aug_zoom=Fixed(0.1),
    leaf_mask=Fixed("none"),  # "scratch" or "lite0" (on ImageNet features): a head that finds the leaf
)

STUDY = Study(pipeline="cnn", metric="val_accuracy", direction="maximize", trials=20, max_epochs=30)
