"""Errors become WeightmapError (or KeyError for a missing name), never an abort."""

import unittest

import weightmap
from fixtures import FixtureTestCase


class ErrorsTest(FixtureTestCase):
    def test_a_missing_file(self):
        with self.assertRaises(weightmap.WeightmapError) as raised:
            weightmap.open(self.path("absent.safetensors"))
        self.assertEqual(raised.exception.status, "io")
        self.assertIn("absent.safetensors", str(raised.exception))

    def test_a_malformed_file(self):
        with self.assertRaises(weightmap.WeightmapError) as raised:
            weightmap.open(self.path("malformed.safetensors"))
        self.assertEqual(raised.exception.status, "malformed")
        self.assertTrue(str(raised.exception).startswith(self.path("malformed.safetensors")))

    def test_a_missing_tensor_is_a_key_error(self):
        model = weightmap.open(self.path("model.safetensors"))
        with self.assertRaises(KeyError):
            model["no.such.weight"]
        self.assertIsNone(model.get("no.such.weight"))

    def test_a_closed_model(self):
        model = weightmap.open(self.path("model.safetensors"))
        model.close()
        with self.assertRaises(weightmap.WeightmapError) as raised:
            model["a.weight"]
        self.assertEqual(raised.exception.status, "bad_argument")

    def test_an_unknown_lora_preset(self):
        model = weightmap.open(self.path("model.safetensors"), writable=True)
        with self.assertRaises(weightmap.WeightmapError) as raised:
            model.apply_lora(weightmap.read_lora(self.path("lora.safetensors")), preset="nope")
        self.assertEqual(raised.exception.status, "not_found")
        self.assertIn("nope", str(raised.exception))

    def test_a_lora_on_a_read_only_model(self):
        model = weightmap.open(self.path("model.safetensors"))
        with self.assertRaises(weightmap.WeightmapError) as raised:
            model.apply_lora(weightmap.read_lora(self.path("lora.safetensors")), preset="plain")
        self.assertEqual(raised.exception.status, "invalid_argument")
        self.assertIn("a.weight", str(raised.exception))

    def test_a_missing_lora_file(self):
        with self.assertRaises(weightmap.WeightmapError) as raised:
            weightmap.read_lora(self.path("absent-lora.safetensors"))
        self.assertEqual(raised.exception.status, "io")


if __name__ == "__main__":
    unittest.main()
