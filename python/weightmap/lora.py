"""LoRA files, read once and applied to any writable model (Model.apply_lora)."""

import ctypes
import os

from . import _capi
from .errors import check


class Lora:
    def __init__(self, path, alpha=None):
        """Reads a LoRA file (safetensors or a GGUF adapter). `alpha` is used for modules
        whose file gives none (PEFT keeps lora_alpha in adapter_config.json)."""
        handle = ctypes.c_void_p()
        alpha_value = ctypes.byref(ctypes.c_float(alpha)) if alpha is not None else None
        check(_capi.lib.weightmap_lora_read(os.fsencode(path), alpha_value, ctypes.byref(handle)))
        self._handle = handle

    def __len__(self):
        count = ctypes.c_size_t()
        check(_capi.lib.weightmap_lora_module_count(self._handle, ctypes.byref(count)))
        return count.value

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle and _capi is not None and _capi.lib is not None:
            _capi.lib.weightmap_lora_free(handle)


def read_lora(path, alpha=None):
    return Lora(path, alpha)
