"""WeightmapError: every failed C call becomes one, carrying the library's message."""

from . import _capi


class WeightmapError(Exception):
    """A failed weightmap call. `status` is the C API's status name ("io", "malformed",
    "not_found", "cancelled", ...); str() is the message as the library renders it
    ("FILE: sentence (tensor NAME, byte OFFSET)")."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def check(status):
    """Raises WeightmapError for a non-zero status, with this thread's last error message."""
    if status != 0:
        message = _capi.lib.weightmap_last_error().decode("utf-8", "replace")
        raise WeightmapError(_capi.STATUS_NAMES.get(status, "unknown"), message)
