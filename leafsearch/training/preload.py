"""Imported once by the fork server that starts each trial's process (see search/trial_exec.py):
Keras, quietly, and the training code, so that every trial's process starts with them loaded."""

from leafsearch.runtime import import_keras_quietly

import_keras_quietly()

import leafsearch.training.loop  # noqa: E402,F401 - imported for the fork server's children
import leafsearch.training.objective  # noqa: E402,F401
