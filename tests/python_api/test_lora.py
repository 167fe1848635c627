"""A LoRA applied in place to a writable model and undone: arrays already handed out show the
patched values, then the file's bytes again, and stay mapped."""

import unittest

import numpy as np

import weightmap
from fixtures import FixtureTestCase, fixture_values, lora_values


class LoraTest(FixtureTestCase):
    def test_apply_and_undo_round_trip(self):
        model = weightmap.open(self.path("model.safetensors"), writable=True)
        weight = model["a.weight"]
        before = weight.tobytes()
        lora = weightmap.read_lora(self.path("lora.safetensors"))
        self.assertEqual(len(lora), 1)

        lora_id = model.apply_lora(lora, 1.0, preset="plain", strict=True)
        down = lora_values(16).reshape(2, 8)  # lora_A
        up = lora_values(8).reshape(4, 2)  # lora_B; no alpha: the scale is the multiplier
        expected = fixture_values(32).reshape(4, 8) + up @ down
        np.testing.assert_allclose(weight, expected, rtol=0, atol=1e-5)
        self.assertNotEqual(weight.tobytes(), before)

        model.undo_lora(lora_id)
        self.assertEqual(weight.tobytes(), before)
        self.assertTrue(model.is_mapped("a.weight"))
        self.assertInsideMapping(weight, self.path("model.safetensors"))

        with self.assertRaises(weightmap.WeightmapError) as raised:
            model.undo_lora(lora_id)
        self.assertEqual(raised.exception.status, "not_found")

        model.apply_lora(lora, 0.5, preset="plain")
        np.testing.assert_allclose(weight, fixture_values(32).reshape(4, 8) + 0.5 * up @ down,
                                   rtol=0, atol=1e-5)
        model.undo_all_loras()
        self.assertEqual(weight.tobytes(), before)


if __name__ == "__main__":
    unittest.main()
