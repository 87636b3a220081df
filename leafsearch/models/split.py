"""An EfficientNet trial's model cut in two where its frozen part ends: the part below the cut
computes features that do not change while a phase trains (so they can be computed once and
shared, training/feature_cache.py), and the part above trains on them.

The two parts are Keras sub-models of the trial's own model (Keras 3 builds a functional model
between any two tensors of a graph), so they share its layers and variables: what the upper part
learns is the full model's weights, which checkpoints, `evaluate` and `export` read as before.

A cut is named by where it sits: `POOLED` after the head's global average pooling (transfer
learning: the whole backbone is frozen, and pooling has no weights), or `block<N>` at the input of
the backbone's block N (fine-tuning with `unfreeze_blocks = 8 - N`: blocks below N stay frozen).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from leafsearch.models.efficientnet import BACKBONE_LAYER, MAX_BLOCKS, check_unfreeze_blocks

POOLED = "pooled"
CACHEABLE_PHASES = ("transfer", "finetune")  # training/phases.py's EfficientNet phases
HEAD_POOL = "head_pool"  # build_efficientnet's first head layer


def cut_for(phase: str, unfreeze_blocks: int) -> str:
    """Where the frozen part of `phase` ("transfer" or "finetune") ends."""
    if phase == "transfer":
        return POOLED
    check_unfreeze_blocks(unfreeze_blocks)
    return f"block{MAX_BLOCKS + 1 - unfreeze_blocks}"


def _block_input(backbone: keras.Model, cut: str):
    """The tensor entering the backbone's block `cut` ("block6": block6a's first layer's input)."""
    prefix = f"{cut}a_"
    for layer in backbone.layers:
        if layer.name.startswith(prefix):
            return layer.input
    raise ValueError(f"the backbone {backbone.name!r} has no layer named {prefix}*")


def lower_part(model: keras.Model, cuts: str | Sequence[str]) -> keras.Model:
    """Backbone input (0-255 images, augmented or not) -> the features at `cuts` (one cut: its
    tensor; several: a list, all from one forward pass), run in inference mode (the frozen layers'
    batch norm and drop connect as in the full model, whose backbone runs with training=False)."""
    backbone = model.get_layer(BACKBONE_LAYER)
    outputs = []
    for cut in [cuts] if isinstance(cuts, str) else cuts:
        if cut == POOLED:
            outputs.append(keras.layers.GlobalAveragePooling2D(name=f"cache_pool_{len(outputs)}")(backbone.output))
        else:
            outputs.append(_block_input(backbone, cut))
    return keras.Model(backbone.input, outputs[0] if isinstance(cuts, str) else outputs, name="frozen_part")


def upper_part(model: keras.Model, cut: str) -> keras.Model:
    """Features at `cut` -> the full model's outputs, through the very layers of `model` above the
    cut (so training it trains `model`); the backbone's part in inference mode, as in `model`."""
    pool = model.get_layer(HEAD_POOL)
    if cut == POOLED:
        head = keras.Model(pool.output, model.output, name="head")
        inputs = keras.Input(shape=tuple(pool.output.shape[1:]), name="features")
        return keras.Model(inputs, head(inputs), name="trains_on_features")
    backbone = model.get_layer(BACKBONE_LAYER)
    start = _block_input(backbone, cut)
    blocks = keras.Model(start, backbone.output, name="top_blocks")
    head = keras.Model(pool.input, model.output, name="head")
    inputs = keras.Input(shape=tuple(start.shape[1:]), name="features")
    return keras.Model(inputs, head(blocks(inputs, training=False)), name="trains_on_features")
