"""`RandomCropResize`: the seed's RandomCrop attempt as a layer that keeps the image's size."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="leafsearch")
class RandomCropResize(keras.layers.Layer):
    """In training, crop a random window `1 - fraction` of the side and resize it back (the
    seed's RandomCrop attempt); at inference, the image unchanged.

    Keras' RandomCrop alone changes the output size and, at inference, resizes the whole image,
    which would blur every validation image; it also slices at traced offsets, which XLA cannot
    compile under JAX. So the crop-and-resize is one bilinear affine transform (scale, then shift
    to a window drawn per image), which XLA compiles under JAX.
    """

    def __init__(self, fraction: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"Argument `fraction` must be in (0, 1). Received: fraction={fraction}")
        self.fraction = fraction
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)
        # TensorFlow's kernel for the transform (ImageProjectiveTransformV3) has no XLA version.
        self.supports_jit = keras.backend.backend() != "tensorflow"

    def call(self, inputs, training=None):
        if not training:
            return inputs
        ops = keras.ops
        batch = ops.shape(inputs)[0]
        height, width = inputs.shape[-3], inputs.shape[-2]
        crop_h, crop_w = max(1, round(height * (1 - self.fraction))), max(1, round(width * (1 - self.fraction)))
        # Output pixel centre x maps to input (x + 0.5) * crop / size - 0.5 + offset, as a resize of
        # the window [offset, offset + crop) with half-pixel centres would sample it.
        offset = keras.random.uniform((batch, 2), 0.0, 1.0, seed=self.generator)
        offset_y = ops.floor(offset[:, 0] * (height - crop_h + 1))
        offset_x = ops.floor(offset[:, 1] * (width - crop_w + 1))
        scale_y, scale_x = crop_h / height, crop_w / width
        zeros, ones = ops.zeros((batch,)), ops.ones((batch,))
        transform = ops.stack(
            [
                ones * scale_x,
                zeros,
                offset_x + 0.5 * scale_x - 0.5,
                zeros,
                ones * scale_y,
                offset_y + 0.5 * scale_y - 0.5,
                zeros,
                zeros,
            ],
            axis=1,
        )
        images = ops.cast(inputs, "float32")
        out = ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="nearest")
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fraction": self.fraction, "seed": self.seed}
