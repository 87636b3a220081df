"""Where does a JAX training step spend its time on this GPU? The matrix unit, the augmentation
layers alone, one EfficientNet forward/backward without them. Prints JSON; see bench/README.md."""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jax
import jax.numpy as jnp
import keras
import numpy as np

out = {
    "jax": jax.__version__,
    "default_backend": jax.default_backend(),
    "devices": [d.device_kind for d in jax.devices()],
    "env": {k: v for k, v in os.environ.items() if k.startswith(("JAX", "XLA", "CUDA"))},
}
a = jnp.ones((8192, 8192), jnp.bfloat16)
f = jax.jit(lambda x: x @ x)
f(a).block_until_ready()
t = time.perf_counter()
for _ in range(10):
    r = f(a)
r.block_until_ready()
out["matmul_bf16_tflops"] = round(10 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12, 1)

from leafsearch.models.augment import augmentation_layers  # noqa: E402 - after the backend check above
from leafsearch.training.recipe import resolve  # noqa: E402

x = jnp.asarray(np.random.default_rng(0).integers(0, 255, (32, 380, 380, 3)).astype("float32"))
for name in ["aug_flip", "aug_rotation", "aug_zoom"]:
    recipe = resolve(
        {
            "backbone": "efficientnet_b4",
            "aug_flip": name == "aug_flip",
            "aug_rotation": 0.1 if name == "aug_rotation" else 0.0,
            "aug_zoom": 0.1 if name == "aug_zoom" else 0.0,
        },
        "efficientnet",
    )
    layer = augmentation_layers(recipe, 380, 0)[0]
    inp = keras.Input((380, 380, 3))
    model = keras.Model(inp, layer(inp))
    fn = jax.jit(lambda v, nv, x, model=model: model.stateless_call(v, nv, x, training=True)[0])
    tv, ntv = [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]
    t = time.perf_counter()
    fn(tv, ntv, x).block_until_ready()
    c = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        y = fn(tv, ntv, x)
    y.block_until_ready()
    out[f"{name}_ms_per_batch32_380px"] = round((time.perf_counter() - t) / 10 * 1000, 2)
    out[f"{name}_compile_s"] = round(c, 1)
    print(json.dumps(out), file=sys.stderr, flush=True)
print(json.dumps(out, indent=2))
