"""weightmap.open(): a model's tensors as read-only NumPy arrays pointing into the mapped
files, with the load report, the reasons tensors were copied, the metadata, and LoRAs applied
and undone in place."""

import collections.abc
import ctypes
import os

from . import _arrays, _capi
from .errors import WeightmapError, check

Reason = collections.namedtuple("Reason", ["name", "sentence"])


def _c_strings(strings):
    array = (ctypes.c_char_p * len(strings))()
    array[:] = [None if s is None else os.fsencode(s) for s in strings]
    return array


def _metadata_value(value, model_handle, key):
    if value.type == _capi.METADATA_STRING:
        return ctypes.string_at(value.string, value.string_length).decode("utf-8", "replace")
    if value.type == _capi.METADATA_ARRAY:
        items = []
        for i in range(value.array_count):
            element = _capi.MetadataValue.new()
            check(_capi.lib.weightmap_model_metadata_element(model_handle, key, i,
                                                             ctypes.byref(element)))
            items.append(_metadata_value(element, model_handle, None)
                         if element.type != _capi.METADATA_ARRAY else None)
        return items
    if value.type == _capi.METADATA_BOOL:
        return bool(value.as_uint)
    if value.type in (_capi.METADATA_F32, _capi.METADATA_F64):
        return value.as_double
    if value.type in _capi.METADATA_SIGNED:
        return value.as_int
    return value.as_uint


class _Callbacks:
    """Python callables as the C API's progress and log callbacks. An exception raised by the
    progress callable cancels the load and is raised again after it."""

    def __init__(self, progress, log):
        self.error = None
        self.progress = _capi.PROGRESS_FN(self._progress) if progress else _capi.PROGRESS_FN()
        self.log = _capi.LOG_FN(self._log) if log else _capi.LOG_FN()
        self._progress_callable = progress
        self._log_callable = log

    def _progress(self, _user, bytes_done, bytes_total, tensors_done, tensors_total):
        try:
            return 1 if self._progress_callable(bytes_done, bytes_total, tensors_done,
                                                tensors_total) else 0
        except BaseException as error:  # noqa: B902: anything raised must not cross into C
            self.error = error
            return 1

    def _log(self, _user, level, line):
        try:
            self._log_callable(("debug", "info", "warning")[level] if level < 3 else "info",
                               line.decode("utf-8", "replace"))
        except BaseException as error:  # noqa: B902
            self.error = self.error or error


class Model(collections.abc.Mapping):
    """Tensor name -> read-only NumPy array, in file order. Arrays share the model's storage
    and keep it alive on their own: closing or releasing the model never frees bytes an array
    still shows."""

    def __init__(self, model_handle, load_handle):
        self._model = model_handle
        self._load = load_handle
        self._patcher = None
        self._arrays = {}
        self.metadata = self._read_metadata()

    # --- the mapping ---------------------------------------------------------------------

    def _names(self):
        count = ctypes.c_size_t()
        check(_capi.lib.weightmap_load_tensor_count(self._load, ctypes.byref(count)))
        names = []
        for i in range(count.value):
            data = _capi.TensorData.new()
            check(_capi.lib.weightmap_load_tensor(self._load, i, ctypes.byref(data)))
            names.append(data.name.decode("utf-8", "surrogateescape"))
        return names

    def _index(self, name):
        index = ctypes.c_size_t()
        status = _capi.lib.weightmap_load_find_tensor(
            self._open_load(), name.encode("utf-8", "surrogateescape"), ctypes.byref(index))
        if status == 5:  # not_found
            raise KeyError(name)
        check(status)
        return index.value

    def __getitem__(self, name):
        array = self._arrays.get(name)
        if array is None:
            handle = ctypes.c_void_p()
            check(_capi.lib.weightmap_load_tensor_ref(self._open_load(), self._index(name),
                                                      ctypes.byref(handle)))
            array = _arrays.numpy_array(_arrays.TensorRef(handle))
            self._arrays[name] = array
        return array

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        count = ctypes.c_size_t()
        check(_capi.lib.weightmap_load_tensor_count(self._open_load(), ctypes.byref(count)))
        return count.value

    # --- describing ----------------------------------------------------------------------

    def _data(self, name):
        data = _capi.TensorData.new()
        check(_capi.lib.weightmap_load_tensor(self._open_load(), self._index(name),
                                              ctypes.byref(data)))
        return data

    def dtype_name(self, name):
        """The tensor's weightmap type ("f32", "bf16", "f8_e4m3", "q4_K"): what the array's
        bits are where NumPy has no such type."""
        return self._data(name).dtype_name.decode()

    def is_mapped(self, name):
        return bool(self._data(name).mapped)

    def reasons(self):
        """Tensor name -> Reason(name, sentence) for every tensor weightmap copied rather than
        mapped; mapped tensors are absent."""
        out = {}
        for name in self._names():
            data = self._data(name)
            if not data.mapped and data.reason:
                out[name] = Reason(data.reason.decode(), data.reason_sentence.decode())
        return out

    def report(self):
        """The load report as a dict: counts, bytes, seconds, per-reason counts, the summary
        line and the notes."""
        report = _capi.LoadReport.new()
        check(_capi.lib.weightmap_load_get_report(self._open_load(), ctypes.byref(report)))
        out = {field: getattr(report, field) for field, _ in _capi.LoadReport._fields_
               if field not in ("struct_size", "mode", "summary", "note_count")}
        out["mode"] = report.mode.decode()
        out["summary"] = report.summary.decode()
        reasons = {}
        reason, name = 0, ctypes.c_char_p()
        while _capi.lib.weightmap_reason_describe(reason, ctypes.byref(name), None) == 0:
            count = ctypes.c_size_t()
            check(_capi.lib.weightmap_load_reason_count(self._load, reason, ctypes.byref(count)))
            if count.value:
                reasons[name.value.decode()] = count.value
            reason += 1
        out["reasons"] = reasons
        notes = []
        for i in range(report.note_count):
            note = ctypes.c_char_p()
            check(_capi.lib.weightmap_load_note(self._load, i, ctypes.byref(note)))
            notes.append(note.value.decode("utf-8", "replace"))
        out["notes"] = notes
        return out

    def _read_metadata(self):
        count = ctypes.c_size_t()
        check(_capi.lib.weightmap_model_metadata_count(self._model, ctypes.byref(count)))
        out = {}
        for i in range(count.value):
            key = ctypes.c_char_p()
            check(_capi.lib.weightmap_model_metadata_key(self._model, i, ctypes.byref(key)))
            value = _capi.MetadataValue.new()
            check(_capi.lib.weightmap_model_metadata(self._model, key.value,
                                                     ctypes.byref(value)))
            out[key.value.decode("utf-8", "replace")] = _metadata_value(value, self._model,
                                                                        key.value)
        return out

    def files(self):
        """(path, format) of every file, in the model's order."""
        count = ctypes.c_size_t()
        check(_capi.lib.weightmap_model_file_count(self._model, ctypes.byref(count)))
        out = []
        for i in range(count.value):
            path, format_name = ctypes.c_char_p(), ctypes.c_char_p()
            check(_capi.lib.weightmap_model_file(self._model, i, ctypes.byref(path),
                                                 ctypes.byref(format_name), None))
            out.append((os.fsdecode(path.value), format_name.value.decode()))
        return out

    # --- torch ---------------------------------------------------------------------------

    def to_torch(self, name=None):
        """torch tensors over the same bytes (no copy): one tensor for `name`, else a dict of
        all. bf16 comes as torch.bfloat16; f8 stays uint8 (torch 1.13 has no float8)."""
        if name is not None:
            return _arrays.torch_tensor(self[name], self.dtype_name(name))
        return {n: _arrays.torch_tensor(self[n], self.dtype_name(n)) for n in self._names()}

    # --- releasing -----------------------------------------------------------------------

    def release(self, prefix):
        """Drops the model's handles of the tensors whose names start with `prefix` (one
        component): their mappings go once no array shows them any more."""
        if self._patcher:
            raise WeightmapError("bad_argument",
                                 "undo the LoRAs (undo_all_loras) before releasing tensors")
        check(_capi.lib.weightmap_load_release(self._open_load(), prefix.encode()))
        self._arrays = {n: a for n, a in self._arrays.items() if not n.startswith(prefix)}

    def close(self):
        """Frees the model's handles now; arrays still alive keep their own storage."""
        if self._patcher:
            _capi.lib.weightmap_lora_patcher_free(self._patcher)
            self._patcher = None
        if self._load:
            _capi.lib.weightmap_load_free(self._load)
            self._load = None
        if self._model:
            _capi.lib.weightmap_model_free(self._model)
            self._model = None
        self._arrays = {}

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001: at interpreter exit the module may be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def _open_load(self):
        if not self._load:
            raise WeightmapError("bad_argument", "the model is closed")
        return self._load

    # --- LoRA ----------------------------------------------------------------------------

    def apply_lora(self, lora, multiplier=1.0, preset="auto", strict=False):
        """Patches the tensors `lora` targets in place (W += multiplier * alpha / rank *
        up x down), so arrays already handed out show the patched values. The model must be
        opened with writable=True. `preset`: "auto" (detected from the model's names), "sd1",
        "sd2", "sdxl", "flux", "sd" or "plain". Returns an id for undo_lora."""
        check(_capi.lib.weightmap_lora_match(lora._handle, self._model, preset.encode(),
                                             1 if strict else 0, None, None))
        if not self._patcher:
            patcher = ctypes.c_void_p()
            check(_capi.lib.weightmap_lora_patcher_new(self._open_load(), ctypes.byref(patcher)))
            self._patcher = patcher
        applied = ctypes.c_uint64()
        check(_capi.lib.weightmap_lora_patcher_apply(self._patcher, lora._handle,
                                                     float(multiplier), ctypes.byref(applied)))
        return applied.value

    def undo_lora(self, lora_id):
        """Takes one application out: mapped tensors drop their private pages and show the
        file's bytes again."""
        if not self._patcher:
            raise WeightmapError("not_found", f"LoRA {lora_id} is not applied")
        check(_capi.lib.weightmap_lora_patcher_undo(self._patcher, lora_id))

    def undo_all_loras(self):
        if self._patcher:
            check(_capi.lib.weightmap_lora_patcher_undo_all(self._patcher))
            _capi.lib.weightmap_lora_patcher_free(self._patcher)
            self._patcher = None


def _dtype_id(name):
    dtype = ctypes.c_uint32()
    check(_capi.lib.weightmap_dtype_from_name(name.encode(), ctypes.byref(dtype)))
    return dtype.value


def open(path_or_paths, prefixes=None, writable=False, mode="mmap", cache=None,
         convert=None, progress=None, log=None):  # noqa: A001: weightmap.open, as named
    """Opens model files (a path, or a list of paths with optional name `prefixes`) and maps
    every tensor as stored. `mode` is the load mode: "mmap" (map what can be mapped), "read"
    (read every tensor into a buffer), "direct" (read with O_DIRECT) or "auto" (weightmap
    chooses per file; see docs/loading.md). `writable=True` maps tensors copy-on-write so LoRAs can patch
    them. `convert` maps stored type names to wanted ones ({"bf16": "f32"}: NumPy floats for
    bf16 tensors, which are then copied and converted; reasons() says dtype_differs). `cache`
    is a WEIGHTMAP_MMAP_FLAGS-style string ("populate,dontneed"). `progress` (bytes_done,
    bytes_total, tensors_done, tensors_total) returns True to cancel; `log` (level, line) gets
    the summary line. Raises WeightmapError."""
    if mode not in _capi.LOAD_MODES:
        raise ValueError(f"mode is {mode!r}; give one of {', '.join(_capi.LOAD_MODES)}")
    paths = [path_or_paths] if isinstance(path_or_paths, (str, bytes, os.PathLike)) \
        else list(path_or_paths)
    if prefixes is not None and len(prefixes) != len(paths):
        raise ValueError("give one prefix per path")
    model = ctypes.c_void_p()
    check(_capi.lib.weightmap_open(_c_strings(paths),
                                   _c_strings(prefixes) if prefixes is not None else None,
                                   len(paths), ctypes.byref(model)))
    try:
        options = _capi.LoadOptions.new()
        check(_capi.lib.weightmap_load_options_init(ctypes.byref(options)))
        options.mode = _capi.LOAD_MODES[mode]
        if cache:
            flags = ctypes.c_uint32()
            check(_capi.lib.weightmap_cache_policy_parse(cache.encode(), ctypes.byref(flags)))
            options.cache_flags = flags.value
        callbacks = _Callbacks(progress, log)
        options.progress = callbacks.progress
        options.log = callbacks.log
        requests = None
        count = 0
        wanted = {_dtype_id(stored): _dtype_id(to) for stored, to in (convert or {}).items()}
        if writable or wanted:
            tensor_count = ctypes.c_size_t()
            check(_capi.lib.weightmap_model_tensor_count(model, ctypes.byref(tensor_count)))
            count = tensor_count.value
            requests = (_capi.Request * count)()
            for i in range(count):
                info = _capi.TensorInfo.new()
                check(_capi.lib.weightmap_model_tensor_info(model, i, ctypes.byref(info)))
                requests[i].struct_size = ctypes.sizeof(_capi.Request)
                check(_capi.lib.weightmap_request_init(ctypes.byref(requests[i]), None))
                # Assigned through the field, ctypes keeps the name's bytes alive with the
                # array (a pointer passed to request_init would point into a temporary).
                requests[i].name = info.name
                requests[i].writes_in_place = 1 if writable else 0
                if info.dtype in wanted:
                    requests[i].dtype = wanted[info.dtype]
        load = ctypes.c_void_p()
        status = _capi.lib.weightmap_load_model(model, requests, count, ctypes.byref(options),
                                                ctypes.byref(load))
        if callbacks.error is not None:
            raise callbacks.error
        check(status)
    except BaseException:
        _capi.lib.weightmap_model_free(model)
        raise
    return Model(model, load)
