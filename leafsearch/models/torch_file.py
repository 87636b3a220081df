"""A PyTorch state dict (`torch.save` of a dict of tensors) read as NumPy arrays, without torch
and without running anything the file names.

Written here because no maintained library does this without torch: `torch.load` needs torch,
and `pickle.load` runs whatever callable a pickle names (`os.system` included), which is why
torch itself added `weights_only=True`. This reader is that idea with NumPy: an unpickler whose
`find_class` knows the handful of names a state dict needs (an ordered dict, the tensor
rebuilders, the storage types) and refuses every other one *before* the pickle can call it.

Both layouts `torch.save` has written are read: the legacy one (torch < 1.6: a magic number, two
small pickles, the state-dict pickle, a pickle of storage keys, then each storage's raw bytes
after its element count) and the zip one (`archive/data.pkl`, `archive/data/<key>`).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
LEGACY_PROTOCOL = 1001

# torch's storage types -> NumPy dtypes (little-endian, as every torch.save on x86/ARM writes).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class UnsafeFileError(ValueError):
    """The file is not a plain state dict, or names something this reader will not run."""


class _Storage:
    """A storage named by the pickle; its bytes arrive later (legacy) or from the zip."""

    def __init__(self, key: str, dtype: str, numel: int):
        self.key, self.dtype, self.numel = key, np.dtype(dtype), numel
        self.array: np.ndarray | None = None


class _View:
    """A legacy storage view: `numel` elements of `base` from element `offset`."""

    def __init__(self, base: _Storage, offset: int, numel: int):
        self.base, self.offset, self.numel = base, offset, numel


class _Tensor:
    """A tensor waiting for its storage's bytes: `materialize` makes the NumPy array."""

    def __init__(self, storage, offset: int, size: tuple, stride: tuple):
        if isinstance(storage, _View):
            storage, offset = storage.base, offset + storage.offset
        if not isinstance(storage, _Storage):
            raise UnsafeFileError("a tensor whose storage is not a storage")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)

    def materialize(self) -> np.ndarray:
        flat = self.storage.array
        if flat is None:
            raise UnsafeFileError(f"storage {self.storage.key} has no data in the file")
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1 if all(self.size) else 0
        if needed > flat.size:
            raise UnsafeFileError(f"a tensor of shape {self.size} runs past its storage {self.storage.key}")
        if not all(self.size):
            return np.zeros(self.size, flat.dtype)
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], self.size, tuple(s * item for s in self.stride), writeable=False
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2): requires_grad, hooks and metadata are of no use here."""
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_ignored):
    """torch._utils._rebuild_parameter: an nn.Parameter is its tensor."""
    return data


class _StorageType:
    """What the pickle gets for `torch.FloatStorage` and its kin: only its name is used."""

    def __init__(self, name: str):
        self.dtype = _STORAGE_DTYPES[name]


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"the pickle names {module}.{name}, which a state dict of tensors never needs; refused unread"
            ) from None

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or not saved_id or saved_id[0] not in ("storage", b"storage"):
            raise UnsafeFileError(f"a persistent id that is not a storage: {str(saved_id)[:60]}")
        storage_type, key, _location, numel, *view = saved_id[1:]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeFileError("a storage of an unknown type")
        key = key.decode() if isinstance(key, bytes) else str(key)
        storage = self.storages.setdefault(key, _Storage(key, storage_type.dtype, int(numel)))
        if view and view[0] is not None:  # legacy views: (view_key, offset, view_size)
            _view_key, offset, view_size = view[0]
            return _View(storage, int(offset), int(view_size))
        return storage


def _unpickle(data: bytes, storages: dict[str, _Storage]):
    return _StateDictUnpickler(io.BytesIO(data), storages).load()


def _read_legacy(raw: bytes) -> tuple[object, dict[str, _Storage]]:
    stream = io.BytesIO(raw)
    header = _StateDictUnpickler(stream, {})
    if header.load() != LEGACY_MAGIC:
        raise UnsafeFileError("not a torch.save file (wrong magic number)")
    if header.load() != LEGACY_PROTOCOL:
        raise UnsafeFileError("an unknown torch.save protocol version")
    header.load()  # sys_info: endianness and type sizes
    storages: dict[str, _Storage] = {}
    result = _StateDictUnpickler(stream, storages).load()
    keys = _StateDictUnpickler(stream, {}).load()
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise UnsafeFileError("the storage keys do not match the storages the state dict uses")
    for key in keys:
        storage = storages[str(key)]
        count = int.from_bytes(stream.read(8), "little")
        data = stream.read(count * storage.dtype.itemsize)
        if count < storage.numel or len(data) != count * storage.dtype.itemsize:
            raise UnsafeFileError(f"storage {key} is cut short (the file is truncated)")
        storage.array = np.frombuffer(data, storage.dtype)
    return result, storages


def _read_zip(path: Path) -> tuple[object, dict[str, _Storage]]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise UnsafeFileError("a zip file without exactly one data.pkl: not a torch.save file")
        root = pickles[0].removesuffix("data.pkl")
        storages: dict[str, _Storage] = {}
        result = _unpickle(archive.read(pickles[0]), storages)
        for key, storage in storages.items():
            data = archive.read(f"{root}data/{key}")
            if len(data) < storage.numel * storage.dtype.itemsize:
                raise UnsafeFileError(f"storage {key} is cut short (the file is truncated)")
            storage.array = np.frombuffer(data, storage.dtype, count=len(data) // storage.dtype.itemsize)
    return result, storages


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """name -> array for every tensor of a `torch.save`d state dict; raises UnsafeFileError (one
    line) for anything else, before any of it is run."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            result, _ = _read_zip(path)
        else:
            result, _ = _read_legacy(path.read_bytes())
    except UnsafeFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, zipfile.BadZipFile) as error:
        raise UnsafeFileError(f"not a readable torch.save file ({type(error).__name__}: {str(error)[:80]})") from None
    if isinstance(result, dict) and "state_dict" in result and isinstance(result["state_dict"], dict):
        result = result["state_dict"]  # a training checkpoint that wraps its state dict
    if not isinstance(result, dict) or not all(isinstance(v, _Tensor) for v in result.values()):
        raise UnsafeFileError("the file holds something other than a dict of tensors")
    return {str(name): tensor.materialize() for name, tensor in result.items()}
