"""A KerasTuner search as a user writes it by hand: RandomSearch over the space of spaces/cnn.py,
early stopping, tf.data from image_dataset_from_directory. The best model scored on the test folder.

    python bench/peers/plain_kerastuner.py TRAIN VAL TEST --trials N --max-epochs E --image-size S --seed SEED --dir DIR
"""

from common import EpochLog, arguments, batched, build_cnn, datasets, early_stopping, finish  # noqa: I001 (first: its clock)

import keras_tuner as kt

args = arguments()

train, val, test, classes = datasets(args.train, args.val, args.test, args.image_size)


class LeafModel(kt.HyperModel):
    def build(self, hp):
        return build_cnn(
            args.image_size,
            classes,
            hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
            hp.Float("dropout", 0.0, 0.5),
            hp.Int("dense_units", 128, 1024, step=128),
            args.seed,
        )

    def fit(self, hp, model, x, validation_data=None, **kwargs):
        x, validation_data = batched(x, validation_data, hp.Choice("batch_size", [8, 16, 32, 64, 128]), args.seed)
        return model.fit(x, validation_data=validation_data, **kwargs)


tuner = kt.RandomSearch(
    LeafModel(),
    objective="val_accuracy",
    max_trials=args.trials,
    seed=args.seed,
    directory=args.dir,
    project_name="plain",
    overwrite=True,
)
tuner.search(train, validation_data=val, epochs=args.max_epochs, callbacks=[early_stopping(), EpochLog()], verbose=0)
best = tuner.oracle.get_best_trials(1)[0]
_, test_accuracy = tuner.get_best_models(1)[0].evaluate(test, verbose=0)
finish(float(best.score), float(test_accuracy), trials=len(tuner.oracle.trials))
