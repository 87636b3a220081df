"""The data a trial trains on: a folder of class sub-folders, decoded once, split 5:1.

``folder`` scans and splits, ``cache`` decodes (once, into a shared ``.npy`` cache), ``batches``
feeds ``model.fit`` and ``synthetic`` draws the built-in leaves. Only the first two are named
here: they need neither Keras nor TensorFlow, so the CLI checks a folder before Keras loads.
"""

from leafsearch.data.cache import LeafData, LoadedImages, class_weights, decode_image, load_images, prepare
from leafsearch.data.folder import IMAGE_EXTENSIONS, ImageFolder, content_id, scan_folder, stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "LeafData",
    "LoadedImages",
    "class_weights",
    "content_id",
    "decode_image",
    "load_images",
    "prepare",
    "scan_folder",
    "stratified_split",
]
