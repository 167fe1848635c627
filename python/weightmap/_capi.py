"""The C API (include/weightmap/weightmap.h) declared for ctypes, and the shared library loaded.

The library is found at $WEIGHTMAP_LIBRARY when set, else where `cmake --install` put it
(_library_location.py, written at install), else as libweightmap_c.so.0 through the dynamic
loader's search path.
"""

import ctypes
import os

c_size_t = ctypes.c_size_t
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_uint32 = ctypes.c_uint32
c_int32 = ctypes.c_int32
c_uint64 = ctypes.c_uint64
c_int64 = ctypes.c_int64
c_double = ctypes.c_double
c_float = ctypes.c_float
P = ctypes.POINTER

STATUS_NAMES = {
    0: "ok", 1: "io", 2: "malformed", 3: "unsupported", 4: "unknown_dtype", 5: "not_found",
    6: "duplicate", 7: "invalid_argument", 8: "cancelled", 9: "bad_argument",
    10: "out_of_memory", 11: "internal",
}
DTYPE_AS_STORED = -1
METADATA_STRING = 8
METADATA_ARRAY = 9
METADATA_F32 = 6
METADATA_F64 = 12
METADATA_BOOL = 7
METADATA_SIGNED = {1, 3, 5, 11}
REASON_COUNT_MAX = 64


class SizedStruct(ctypes.Structure):
    """A struct whose first field is its size (set before every call, as the C API asks)."""

    @classmethod
    def new(cls):
        value = cls()
        value.struct_size = ctypes.sizeof(cls)
        return value


class TensorInfo(SizedStruct):
    _fields_ = [("struct_size", c_size_t), ("name", c_char_p), ("dtype", c_uint32),
                ("dtype_name", c_char_p), ("n_dims", c_size_t), ("shape", P(c_uint64)),
                ("file", c_uint32), ("offset", c_uint64), ("nbytes", c_uint64),
                ("contiguous", c_int)]


class MetadataValue(SizedStruct):
    _fields_ = [("struct_size", c_size_t), ("type", c_uint32), ("element_type", c_uint32),
                ("as_int", c_int64), ("as_uint", c_uint64), ("as_double", c_double),
                ("string", c_void_p), ("string_length", c_size_t), ("array_count", c_size_t)]


class Request(SizedStruct):
    _fields_ = [("struct_size", c_size_t), ("name", c_char_p), ("dtype", c_int32),
                ("writes_in_place", c_int), ("optional", c_int),
                ("device_cannot_read_host_memory", c_int), ("alignment", c_uint32)]


PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64, c_size_t, c_size_t)
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class LoadOptions(SizedStruct):
    _fields_ = [("struct_size", c_size_t), ("automatic_v0_1", c_int), ("use_mmap_v0_1", c_int),
                ("allow_copy_on_write", c_int), ("direct_io_v0_1", c_int),
                ("workers", ctypes.c_uint), ("staging_bytes_cap", c_uint64),
                ("cache_flags", c_uint32), ("cache_from_env", c_int), ("progress", PROGRESS_FN),
                ("progress_user_data", c_void_p), ("log", LOG_FN), ("log_user_data", c_void_p),
                ("mode", c_int32)]


# weightmap_load_mode: LoadOptions.mode by the names LoadReport's mode uses.
LOAD_MODES = {"auto": 0, "mmap": 1, "read": 2, "direct": 3}


class TensorData(SizedStruct):
    _fields_ = [("struct_size", c_size_t), ("name", c_char_p), ("dtype", c_uint32),
                ("dtype_name", c_char_p), ("n_dims", c_size_t), ("shape", P(c_uint64)),
                ("data", c_void_p), ("writable", c_void_p), ("nbytes", c_uint64),
                ("mapped", c_int), ("reason", c_char_p), ("reason_sentence", c_char_p)]


class LoadReport(SizedStruct):
    _fields_ = [("struct_size", c_size_t), ("mapped_tensors", c_size_t),
                ("mapped_bytes", c_uint64), ("mapped_files", c_size_t),
                ("loaded_tensors", c_size_t), ("loaded_bytes", c_uint64),
                ("converted_tensors", c_size_t), ("seconds", c_double),
                ("unrequested_tensors", c_size_t), ("unrequested_bytes", c_uint64),
                ("missing_optional", c_size_t), ("workers", ctypes.c_uint),
                ("peak_staging_bytes", c_uint64), ("mode", c_char_p), ("summary", c_char_p),
                ("note_count", c_size_t)]


def _load_library():
    path = os.environ.get("WEIGHTMAP_LIBRARY")
    if path:
        return ctypes.CDLL(path)
    try:  # written by `cmake --install`: the library's path relative to this package
        from ._library_location import LIBRARY
    except ImportError:
        return ctypes.CDLL("libweightmap_c.so.0")
    return ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY))


lib = _load_library()

# name: (return type, argument types). Handles are opaque: void pointers.
_SIGNATURES = {
    "weightmap_status_name": (c_char_p, [c_int]),
    "weightmap_last_error": (c_char_p, []),
    "weightmap_version": (c_char_p, []),
    "weightmap_dtype_name": (c_int, [c_uint32, P(c_char_p)]),
    "weightmap_dtype_from_name": (c_int, [c_char_p, P(c_uint32)]),
    "weightmap_open": (c_int, [P(c_char_p), P(c_char_p), c_size_t, P(c_void_p)]),
    "weightmap_model_free": (None, [c_void_p]),
    "weightmap_model_file_count": (c_int, [c_void_p, P(c_size_t)]),
    "weightmap_model_file": (c_int, [c_void_p, c_size_t, P(c_char_p), P(c_char_p),
                                     P(c_uint64)]),
    "weightmap_model_tensor_count": (c_int, [c_void_p, P(c_size_t)]),
    "weightmap_model_tensor_info": (c_int, [c_void_p, c_size_t, P(TensorInfo)]),
    "weightmap_model_find_tensor": (c_int, [c_void_p, c_char_p, P(c_size_t)]),
    "weightmap_model_metadata_count": (c_int, [c_void_p, P(c_size_t)]),
    "weightmap_model_metadata_key": (c_int, [c_void_p, c_size_t, P(c_char_p)]),
    "weightmap_model_metadata": (c_int, [c_void_p, c_char_p, P(MetadataValue)]),
    "weightmap_model_metadata_element": (c_int, [c_void_p, c_char_p, c_size_t,
                                                 P(MetadataValue)]),
    "weightmap_cache_policy_parse": (c_int, [c_char_p, P(c_uint32)]),
    "weightmap_request_init": (c_int, [P(Request), c_char_p]),
    "weightmap_load_options_init": (c_int, [P(LoadOptions)]),
    "weightmap_load_model": (c_int, [c_void_p, c_void_p, c_size_t, P(LoadOptions),
                                     P(c_void_p)]),
    "weightmap_load_free": (None, [c_void_p]),
    "weightmap_load_tensor_count": (c_int, [c_void_p, P(c_size_t)]),
    "weightmap_load_find_tensor": (c_int, [c_void_p, c_char_p, P(c_size_t)]),
    "weightmap_load_tensor": (c_int, [c_void_p, c_size_t, P(TensorData)]),
    "weightmap_load_tensor_ref": (c_int, [c_void_p, c_size_t, P(c_void_p)]),
    "weightmap_tensor_data_get": (c_int, [c_void_p, P(TensorData)]),
    "weightmap_tensor_free": (None, [c_void_p]),
    "weightmap_load_release": (c_int, [c_void_p, c_char_p]),
    "weightmap_reason_describe": (c_int, [c_uint32, P(c_char_p), P(c_char_p)]),
    "weightmap_load_get_report": (c_int, [c_void_p, P(LoadReport)]),
    "weightmap_load_reason_count": (c_int, [c_void_p, c_uint32, P(c_size_t)]),
    "weightmap_load_note": (c_int, [c_void_p, c_size_t, P(c_char_p)]),
    "weightmap_lora_read": (c_int, [c_char_p, P(c_float), P(c_void_p)]),
    "weightmap_lora_free": (None, [c_void_p]),
    "weightmap_lora_module_count": (c_int, [c_void_p, P(c_size_t)]),
    "weightmap_lora_match": (c_int, [c_void_p, c_void_p, c_char_p, c_int, P(c_size_t),
                                     P(c_size_t)]),
    "weightmap_lora_target": (c_int, [c_void_p, c_size_t, P(c_char_p)]),
    "weightmap_lora_patcher_new": (c_int, [c_void_p, P(c_void_p)]),
    "weightmap_lora_patcher_free": (None, [c_void_p]),
    "weightmap_lora_patcher_apply": (c_int, [c_void_p, c_void_p, c_float, P(c_uint64)]),
    "weightmap_lora_patcher_undo": (c_int, [c_void_p, c_uint64]),
    "weightmap_lora_patcher_undo_all": (c_int, [c_void_p]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _function = getattr(lib, _name)
    _function.restype = _restype
    _function.argtypes = _argtypes
