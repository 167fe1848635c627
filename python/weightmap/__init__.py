"""weightmap for Python: model files (safetensors, GGUF, PyTorch .pt/.ckpt) opened as
read-only NumPy arrays that point into the mapped files, over weightmap's C API (ctypes; no
compiled extension). See docs/python.md."""

from . import _capi
from .errors import WeightmapError
from .lora import Lora, read_lora
from .model import Model, Reason, open  # noqa: A004: weightmap.open is the entry point

__all__ = ["Lora", "Model", "Reason", "WeightmapError", "open", "read_lora", "version"]


def version():
    """The version of the weightmap library in use."""
    return _capi.lib.weightmap_version().decode()
