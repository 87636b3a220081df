"""An Optuna search as a user writes it by hand: TPE with MedianPruner and a per-epoch pruning
callback, early stopping, tf.data from image_dataset_from_directory, the best model kept and scored
on the test folder.

    python bench/peers/plain_optuna.py TRAIN VAL TEST --trials N --max-epochs E --image-size S --seed SEED --dir DIR
"""

import os

import keras
import optuna
from common import EpochLog, arguments, batched, build_cnn, datasets, early_stopping, finish

args = arguments()
optuna.logging.set_verbosity(optuna.logging.WARNING)

train, val, test, classes = datasets(args.train, args.val, args.test, args.image_size)
best_model = os.path.join(args.dir, "best.keras")
os.makedirs(args.dir, exist_ok=True)


class Pruning(keras.callbacks.Callback):
    def __init__(self, trial):
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch, logs=None):
        self.trial.report(logs["val_accuracy"], epoch)
        if self.trial.should_prune():
            self.model.stop_training = True
            self.trial.set_user_attr("pruned", True)


def objective(trial):
    model = build_cnn(
        args.image_size,
        classes,
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        trial.suggest_float("dropout", 0.0, 0.5),
        trial.suggest_int("dense_units", 128, 1024, step=128),
        args.seed,
    )
    x, v = batched(train, val, trial.suggest_categorical("batch_size", [8, 16, 32, 64, 128]), args.seed)
    history = model.fit(
        x,
        validation_data=v,
        epochs=args.max_epochs,
        verbose=0,
        callbacks=[early_stopping(), EpochLog(), Pruning(trial)],
    )
    if trial.user_attrs.get("pruned"):
        raise optuna.TrialPruned()
    score = max(history.history["val_accuracy"])
    if score > max((t.value for t in study.trials if t.value is not None), default=-1.0):
        model.save(best_model)  # as trained (EarlyStopping restores the best epoch when it stops early)
    return score


study = optuna.create_study(
    direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed), pruner=optuna.pruners.MedianPruner()
)
study.optimize(objective, n_trials=args.trials)
_, test_accuracy = keras.models.load_model(best_model).evaluate(test, verbose=0)
finish(float(study.best_value), float(test_accuracy), trials=len(study.trials))
