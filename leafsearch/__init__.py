"""leafsearch: declarative hyperparameter search for leaf image classification with Keras."""

__version__ = "0.1.0"
