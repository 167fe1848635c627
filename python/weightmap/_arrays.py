"""NumPy arrays over weightmap's storage without a copy, and their torch views.

bf16 and f8: NumPy has no such types, and Debian ships no ml_dtypes, so a bf16 tensor is a
uint16 array of its raw bits and an f8 (e4m3, e5m2, e8m0) tensor a uint8 array; the model's
dtype_name() says what the bits are. to_torch() turns bf16 into torch.bfloat16 without a copy
(a view of the same bytes); torch 1.13 has no float8, so f8 stays uint8 there too. Block types
(quantized, f6, f4) are a 1-D uint8 array of their bytes.
"""

import ctypes
import warnings

import numpy as np

from . import _capi
from .errors import check

_NUMPY_DTYPES = {
    "f32": np.float32, "f16": np.float16, "f64": np.float64,
    "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64,
    "bool": np.bool_, "c64": np.complex64,
    "bf16": np.uint16, "f8_e4m3": np.uint8, "f8_e5m2": np.uint8, "f8_e8m0": np.uint8,
}


class TensorRef:
    """Owns one weightmap_tensor handle: the tensor's mapping or buffer lives while this does.
    Every array over the tensor holds it (through its base), so an array never dangles."""

    def __init__(self, handle):
        self._handle = handle

    def data(self):
        data = _capi.TensorData.new()
        check(_capi.lib.weightmap_tensor_data_get(self._handle, ctypes.byref(data)))
        return data

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle and _capi is not None and _capi.lib is not None:
            _capi.lib.weightmap_tensor_free(handle)


def numpy_array(ref):
    """A read-only array over the tensor's bytes (no copy); its base keeps `ref` alive."""
    data = ref.data()
    dtype_name = data.dtype_name.decode()
    shape = tuple(data.shape[i] for i in range(data.n_dims))
    numpy_dtype = _NUMPY_DTYPES.get(dtype_name)
    if numpy_dtype is None:
        numpy_dtype, shape = np.uint8, (data.nbytes,)
    if data.nbytes == 0:
        array = np.empty(shape, dtype=numpy_dtype)
    else:
        raw = (ctypes.c_uint8 * data.nbytes).from_address(data.data)
        raw.weightmap_tensor = ref  # the array's base holds the raw buffer, which holds ref
        array = np.frombuffer(raw, dtype=numpy_dtype).reshape(shape)
    array.flags.writeable = False
    return array


def torch_tensor(array, dtype_name):
    """The same bytes as a torch tensor (no copy); bf16 becomes torch.bfloat16."""
    import torch

    if array.dtype in (np.uint16, np.uint32, np.uint64) and dtype_name != "bf16":
        raise TypeError(f"torch has no {dtype_name} type; use the NumPy array")
    source = array.view(np.int16) if dtype_name == "bf16" else array
    with warnings.catch_warnings():
        # torch warns that it cannot mark a tensor read-only; the bytes are a read-only
        # mapping or weightmap's buffer, and writing through the tensor is the caller's choice.
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(source)
    return tensor.view(torch.bfloat16) if dtype_name == "bf16" else tensor
