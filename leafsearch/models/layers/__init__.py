"""leafsearch's own Keras layers, one per module: both are augmentations (the builder that
puts them in a model is models/augment.py). Both are registered as `leafsearch>ClassName`, the
name saved models refer to them by, so a model saved before they moved here loads as before."""

from leafsearch.models.layers.background_replace import BackgroundReplace
from leafsearch.models.layers.random_crop_resize import RandomCropResize

__all__ = ["BackgroundReplace", "RandomCropResize"]
