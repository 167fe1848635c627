"""The arrays weightmap.open gives point into the file's mapping: safetensors, GGUF and a
PyTorch .pt checkpoint, no copy."""

import unittest

import numpy as np
import torch

import weightmap
from fixtures import FixtureTestCase, fixture_values


class ZeroCopyTest(FixtureTestCase):
    def check_mapped(self, path, name, expected):
        model = weightmap.open(path)
        array = model[name]
        self.assertTrue(model.is_mapped(name))
        self.assertInsideMapping(array, path)
        np.testing.assert_array_equal(array.ravel(), expected)
        # torch sees the same bytes.
        self.assertEqual(model.to_torch(name).data_ptr(), array.__array_interface__["data"][0])

    def test_safetensors(self):
        self.check_mapped(self.path("model.safetensors"), "a.weight", fixture_values(32))

    def test_gguf(self):
        self.check_mapped(self.path("model.gguf"), "a.weight", fixture_values(32))

    def test_pytorch_checkpoint(self):
        path = self.path("model.pt")
        weight = torch.from_numpy(fixture_values(64).reshape(8, 8).copy())
        torch.save({"layer.weight": weight, "layer.bias": torch.arange(8, dtype=torch.int64)},
                   path)
        self.check_mapped(path, "layer.weight", fixture_values(64))
        model = weightmap.open(path)
        self.assertEqual(model.files(), [(path, "pytorch-zip")])
        self.assertEqual(model["layer.bias"].dtype, np.int64)
        np.testing.assert_array_equal(model["layer.bias"], np.arange(8))


if __name__ == "__main__":
    unittest.main()
