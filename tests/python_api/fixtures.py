"""Fixtures of the Python binding's tests, made in a temporary directory per test case by
tests/capi/write_fixtures (the library's own writers: model.safetensors, model.gguf,
lora.safetensors, malformed.safetensors; see that file) and by torch.save (model.pt)."""

import os
import subprocess
import tempfile
import unittest

import numpy as np


def fixture_values(count):
    """Element i of every model tensor, as write_fixtures writes it."""
    i = np.arange(count)
    return ((i % 17) * 0.25 - 2.0).astype(np.float32)


def lora_values(count):
    i = np.arange(count)
    return ((i % 5) * 0.125 - 0.25).astype(np.float32)


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def mapping_of(path):
    """(start, end) of every range of this process's address space that maps `path`."""
    real = os.path.realpath(path)
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].strip() == real:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((start, end))
    return ranges


class FixtureTestCase(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory(prefix="weightmap_python_")
        self.dir = self._dir.name
        subprocess.run([os.environ["WEIGHTMAP_TEST_FIXTURE_WRITER"], self.dir], check=True)

    def tearDown(self):
        self._dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertInsideMapping(self, array, path):
        pointer = array.__array_interface__["data"][0]
        ranges = mapping_of(path)
        self.assertTrue(ranges, f"{path} is not mapped")
        self.assertTrue(any(start <= pointer and pointer + array.nbytes <= end
                            for start, end in ranges),
                        f"array at {pointer:#x} is outside {path}'s mappings {ranges}")
