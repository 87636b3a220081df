"""Imported once by the fork server that starts each trial's process (search/execution/executor.py):
Keras, quietly, and the training code, so that every trial's process starts with them loaded.

Then the objects imported so far are frozen out of the garbage collector's reach (`gc.freeze`,
the fork-server idiom its documentation gives): they live as long as the process, and a full
collection over TensorFlow's half a million of them costs 0.3 s, which Keras' `clear_session`
paid at the start of every trial and the collector again during training."""

import gc

from leafsearch.runtime import import_keras_quietly

import_keras_quietly()

import leafsearch.training.loop  # noqa: E402 - imported for the fork server's children
import leafsearch.training.objective  # noqa: E402,F401

gc.freeze()
