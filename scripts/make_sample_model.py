#!/usr/bin/python3
"""Writes two small, deterministic sample models for the demo into OUT_DIR:

  tiny-diffusion.safetensors  a Stable-Diffusion-shaped checkpoint (text encoder, UNet, VAE
                              names) with f16, f32 and bf16 tensors and __metadata__, laid out
                              the way Hugging Face's writer does (header padded to 8 bytes).
  tiny-llama.gguf             a llama-shaped GGUF (q8_0, f16, f32 tensors, a 1,000-token
                              vocabulary) written by llama.cpp's gguf-py.

The weights are random; only the layout is realistic. gguf-py must be importable
(PYTHONPATH=.deps/llama.cpp/gguf-py).
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np

SEED = 20240601


def bf16_bytes(values: np.ndarray) -> bytes:
    """numpy has no bfloat16: keep the upper half of each f32 (round to nearest even)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def write_safetensors(path: Path, rng: np.random.Generator) -> None:
    width = 256
    tensors = [
        ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", "F16",
         (1000, width)),
        ("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", "F16",
         (77, width)),
    ]
    for layer in range(2):
        prefix = f"cond_stage_model.transformer.text_model.encoder.layers.{layer}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            tensors.append((f"{prefix}.self_attn.{proj}.weight", "F16", (width, width)))
            tensors.append((f"{prefix}.self_attn.{proj}.bias", "F32", (width,)))
        tensors.append((f"{prefix}.layer_norm1.weight", "F32", (width,)))
        tensors.append((f"{prefix}.mlp.fc1.weight", "F16", (4 * width, width)))
    tensors += [
        ("model.diffusion_model.input_blocks.0.0.weight", "F32", (64, 4, 3, 3)),
        ("model.diffusion_model.input_blocks.0.0.bias", "F32", (64,)),
        ("model.diffusion_model.middle_block.1.proj_in.weight", "BF16", (width, width)),
        ("model.diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q.weight", "BF16",
         (width, width)),
        ("model.diffusion_model.middle_block.1.norm.weight", "F32", (width,)),
        ("model.diffusion_model.out.2.weight", "F32", (4, 64, 3, 3)),
        ("first_stage_model.decoder.conv_in.weight", "F32", (128, 4, 3, 3)),
        ("first_stage_model.decoder.conv_in.bias", "F32", (128,)),
        ("first_stage_model.decoder.mid.attn_1.q.weight", "F16", (128, 128, 1, 1)),
        ("first_stage_model.decoder.norm_out.weight", "F32", (128,)),
    ]

    header: dict = {
        "__metadata__": {
            "format": "pt",
            "modelspec.architecture": "stable-diffusion-v1",
            "modelspec.title": "weightmap demo (random weights)",
        }
    }
    blobs = []
    offset = 0
    for name, dtype, shape in tensors:
        values = rng.standard_normal(shape, dtype=np.float32) * 0.02
        if dtype == "F32":
            blob = values.astype("<f4").tobytes()
        elif dtype == "F16":
            blob = values.astype("<f2").tobytes()
        else:
            blob = bf16_bytes(values)
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)

    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


def write_gguf(path: Path, rng: np.random.Generator) -> None:
    import gguf  # from llama.cpp's gguf-py

    n_vocab, n_embd, n_ff, n_layer = 1000, 256, 512, 2
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("weightmap demo llama (random weights)")
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_block_count(n_layer)
    writer.add_head_count(4)
    writer.add_head_count_kv(4)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(3, n_vocab)])
    writer.add_token_scores([float(-i) for i in range(n_vocab)])
    writer.add_token_types([gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.NORMAL] * (n_vocab - 3))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    def weights(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * 0.02

    q8 = gguf.GGMLQuantizationType.Q8_0

    def add_q8(name: str, values: np.ndarray) -> None:
        # gguf-py derives the element shape from the quantized bytes' shape.
        writer.add_tensor(name, gguf.quants.quantize(values, q8), raw_dtype=q8)

    add_q8("token_embd.weight", weights(n_vocab, n_embd))
    for layer in range(n_layer):
        blk = f"blk.{layer}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{blk}.{proj}.weight", weights(n_embd, n_embd).astype(np.float16))
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        add_q8(f"{blk}.ffn_gate.weight", weights(n_ff, n_embd))
        add_q8(f"{blk}.ffn_up.weight", weights(n_ff, n_embd))
        add_q8(f"{blk}.ffn_down.weight", weights(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    add_q8("output.weight", weights(n_vocab, n_embd))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_safetensors(out_dir / "tiny-diffusion.safetensors", np.random.default_rng(SEED))
    write_gguf(out_dir / "tiny-llama.gguf", np.random.default_rng(SEED + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
