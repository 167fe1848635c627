"""weightmap.open: names to read-only arrays with the right dtype, shape and values, the
metadata, the report and reasons, lifetimes, torch views, releasing, and callbacks."""

import gc
import unittest

import numpy as np
import torch

import weightmap
from fixtures import FixtureTestCase, bf16_bits_to_f32, fixture_values


class OpenTest(FixtureTestCase):
    def test_names_map_to_arrays_of_the_file_type_shape_and_values(self):
        model = weightmap.open(self.path("model.safetensors"))
        self.assertEqual(list(model), ["a.weight", "b.weight", "c.bias"])
        self.assertEqual(len(model), 3)
        a, b, c = model["a.weight"], model["b.weight"], model["c.bias"]
        self.assertEqual((a.dtype, a.shape), (np.float32, (4, 8)))
        self.assertEqual((b.dtype, b.shape), (np.float16, (8, 4)))
        np.testing.assert_array_equal(a.ravel(), fixture_values(32))
        np.testing.assert_array_equal(b.ravel().astype(np.float32), fixture_values(32))
        # bf16: the raw bits as uint16, named by dtype_name.
        self.assertEqual((c.dtype, c.shape), (np.uint16, (8,)))
        self.assertEqual(model.dtype_name("c.bias"), "bf16")
        np.testing.assert_array_equal(bf16_bits_to_f32(c), fixture_values(8))
        self.assertIn("a.weight", model)
        self.assertNotIn("z", model)

    def test_arrays_are_read_only(self):
        model = weightmap.open(self.path("model.safetensors"))
        with self.assertRaises(ValueError):
            model["a.weight"][0, 0] = 1.0

    def test_metadata_of_safetensors_and_gguf(self):
        self.assertEqual(weightmap.open(self.path("model.safetensors")).metadata,
                         {"title": "capi fixture"})
        metadata = weightmap.open(self.path("model.gguf")).metadata
        self.assertEqual(metadata["general.name"], "capi fixture")
        self.assertEqual(metadata["capi.answer"], 42)
        self.assertEqual(metadata["capi.scale"], 0.5)
        self.assertEqual(metadata["capi.list"], [1, 2, 3])

    def test_report_and_reasons_of_a_mapped_load(self):
        model = weightmap.open(self.path("model.safetensors"))
        report = model.report()
        self.assertEqual(report["mapped_tensors"], 3)
        self.assertEqual(report["loaded_tensors"], 0)
        self.assertEqual(report["reasons"], {})
        self.assertIn("memory-mapped 3 tensors in 1 files", report["summary"])
        self.assertEqual(model.reasons(), {})
        self.assertTrue(model.is_mapped("a.weight"))

    def test_reasons_say_why_tensors_were_copied(self):
        model = weightmap.open(self.path("model.safetensors"), mode="read")
        reasons = model.reasons()
        self.assertEqual(sorted(reasons), ["a.weight", "b.weight", "c.bias"])
        self.assertEqual(reasons["a.weight"].name, "mapping_disabled")
        self.assertIn("disabled", reasons["a.weight"].sentence)
        self.assertEqual(model.report()["reasons"], {"mapping_disabled": 3})
        np.testing.assert_array_equal(model["a.weight"].ravel(), fixture_values(32))

    def test_the_load_mode_is_reported_and_checked(self):
        for mode in ("auto", "mmap", "read", "direct"):
            model = weightmap.open(self.path("model.safetensors"), mode=mode)
            self.assertEqual(model.report()["mode"], mode)
            self.assertEqual(model.is_mapped("a.weight"), mode in ("auto", "mmap"), mode)
        with self.assertRaisesRegex(ValueError, "auto, mmap, read, direct"):
            weightmap.open(self.path("model.safetensors"), mode="mmap+direct")

    def test_convert_gives_numpy_floats_for_bf16(self):
        model = weightmap.open(self.path("model.safetensors"), convert={"bf16": "f32"})
        bias = model["c.bias"]
        self.assertEqual((bias.dtype, bias.shape), (np.float32, (8,)))
        np.testing.assert_array_equal(bias, fixture_values(8))
        self.assertEqual(model.dtype_name("c.bias"), "f32")
        self.assertEqual(model.reasons()["c.bias"].name, "dtype_differs")
        self.assertTrue(model.is_mapped("a.weight"))  # the other types stay mapped
        self.assertEqual(model.report()["converted_tensors"], 1)
        with self.assertRaises(weightmap.WeightmapError) as raised:
            weightmap.open(self.path("model.safetensors"), convert={"bf16": "f7"})
        self.assertEqual(raised.exception.status, "unknown_dtype")

    def test_an_array_outlives_its_model(self):
        model = weightmap.open(self.path("model.safetensors"))
        a = model["a.weight"]
        model.close()
        del model
        gc.collect()
        np.testing.assert_array_equal(a.ravel(), fixture_values(32))

    def test_to_torch_shares_the_bytes(self):
        model = weightmap.open(self.path("model.safetensors"))
        tensors = model.to_torch()
        self.assertEqual(tensors["a.weight"].data_ptr(),
                         model["a.weight"].__array_interface__["data"][0])
        self.assertEqual(tensors["a.weight"].dtype, torch.float32)
        self.assertEqual(tensors["b.weight"].dtype, torch.float16)
        bias = model.to_torch("c.bias")
        self.assertEqual(bias.dtype, torch.bfloat16)
        self.assertEqual(bias.data_ptr(), model["c.bias"].__array_interface__["data"][0])
        np.testing.assert_array_equal(bias.float().numpy(), fixture_values(8))

    def test_prefixes_and_releasing_a_component(self):
        model = weightmap.open([self.path("model.safetensors"), self.path("model.gguf")],
                               prefixes=["te.", "vae."])
        self.assertEqual(len(model), 6)
        held = model["te.a.weight"]
        model.release("te.")
        self.assertEqual(sorted(model), ["vae.a.weight", "vae.b.weight", "vae.c.bias"])
        with self.assertRaises(KeyError):
            model["te.a.weight"]
        np.testing.assert_array_equal(held.ravel(), fixture_values(32))

    def test_a_progress_callback_cancels(self):
        calls = []

        def cancel(bytes_done, bytes_total, tensors_done, tensors_total):
            calls.append((bytes_done, bytes_total, tensors_done, tensors_total))
            return True

        with self.assertRaises(weightmap.WeightmapError) as raised:
            weightmap.open(self.path("model.safetensors"), mode="read", progress=cancel)
        self.assertEqual(raised.exception.status, "cancelled")
        self.assertIn("cancel", str(raised.exception))
        self.assertGreaterEqual(len(calls), 1)
        self.assertEqual(calls[0][3], 3)

    def test_an_exception_in_the_progress_callback_cancels_and_is_raised(self):
        def fail(*_):
            raise RuntimeError("the engine gave up")

        with self.assertRaisesRegex(RuntimeError, "the engine gave up"):
            weightmap.open(self.path("model.safetensors"), mode="read", progress=fail)

    def test_the_log_callback_gets_the_summary_line(self):
        lines = []
        weightmap.open(self.path("model.safetensors"), log=lambda level, line:
                       lines.append((level, line)))
        self.assertTrue(any(level == "info" and "memory-mapped" in line
                            for level, line in lines), lines)

    def test_version(self):
        self.assertRegex(weightmap.version(), r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    unittest.main()
