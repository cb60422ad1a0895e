#!/usr/bin/env python3
"""Writes a small PEFT LoRA adapter for SmolLM2-135M (the test model) with deterministic values,
using the Python standard library only (no torch, no safetensors package).

usage:
  python3 scripts/make-test-adapter.py OUT_DIR [--seed N] [--all-targets] [--strength F]

OUT_DIR gets the two files PEFT's save_pretrained writes (docs/ADAPTERS.md):
  adapter_config.json        LORA, r 4, lora_alpha 8, q_proj and v_proj, CAUSAL_LM
  adapter_model.safetensors  F32 tensors, names sorted, for every one of the 30 layers:
      base_model.model.model.layers.{L}.self_attn.q_proj.lora_A.weight  [4, 576]
      base_model.model.model.layers.{L}.self_attn.q_proj.lora_B.weight  [576, 4]
      base_model.model.model.layers.{L}.self_attn.v_proj.lora_A.weight  [4, 576]
      base_model.model.model.layers.{L}.self_attn.v_proj.lora_B.weight  [192, 4]
(SmolLM2-135M: hidden 576, 9 heads and 3 KV heads of 64, so q_proj is 576 -> 576 and v_proj
576 -> 192.) With --all-targets the adapter covers all seven projections (q, k, v, o, gate, up,
down; intermediate size 1536), e.g. to check the Q/K row order of a GGUF LoRA; --strength F
multiplies both ranges by F (default 1), for an adapter that moves the model further. The values come from a 64-bit linear congruential generator seeded by --seed
(default 1), uniform in [-0.02, 0.02] for lora_A and [-0.05, 0.05] for lora_B: far from PEFT's
zero-initialized B, so the adapter changes the model's answers (with seed 1 the test model
answers "What is the capital of France?" in French verse instead of "The capital of France is
Paris."; seed 0 happens to leave short answers as they were). The same seed always gives the
same bytes, so the same SHA-256; different seeds give different adapters.

The safetensors layout: an 8-byte little-endian header length, the JSON header (each tensor's
dtype, shape and data_offsets, plus __metadata__ {"format": "pt"}), padded with spaces to a
multiple of 8 bytes, then the raw little-endian float32 data in header order.

Exit codes: 0 written; 2 bad arguments (argparse); 1 the folder could not be written.
"""
import argparse
import json
import os
import sys
from array import array

LAYERS = 30
HIDDEN = 576          # in-features of q_proj and v_proj
KV_OUT = 3 * 64       # v_proj out-features: 3 KV heads of 64
RANK = 4
ALPHA = 8
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
A_SCALE = 0.02
B_SCALE = 0.05


class LCG:
    """Knuth's MMIX 64-bit linear congruential generator; uniform() uses the high 53 bits."""

    def __init__(self, seed):
        self.state = (seed * 0x9E3779B97F4A7C15 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF

    def uniform(self, scale):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        unit = (self.state >> 11) / float(1 << 53)   # [0, 1)
        return (2.0 * unit - 1.0) * scale


FFN = 1536           # intermediate size
# (module path, in-features, out-features) of each projection an adapter may cover.
PROJECTIONS = {
    "q_proj": ("self_attn.q_proj", HIDDEN, HIDDEN), "k_proj": ("self_attn.k_proj", HIDDEN, KV_OUT),
    "v_proj": ("self_attn.v_proj", HIDDEN, KV_OUT), "o_proj": ("self_attn.o_proj", HIDDEN, HIDDEN),
    "gate_proj": ("mlp.gate_proj", HIDDEN, FFN), "up_proj": ("mlp.up_proj", HIDDEN, FFN), "down_proj": ("mlp.down_proj", FFN, HIDDEN),
}


def tensors(seed, targets, strength=1.0):
    """(name, shape, values) for every LoRA weight, names sorted as PEFT writes them."""
    rng = LCG(seed)
    a_scale, b_scale = A_SCALE * strength, B_SCALE * strength
    out = []
    for layer in range(LAYERS):
        for target in targets:
            path, in_features, out_features = PROJECTIONS[target]
            prefix = f"base_model.model.model.layers.{layer}.{path}"
            a = array("f", (rng.uniform(a_scale) for _ in range(RANK * in_features)))
            b = array("f", (rng.uniform(b_scale) for _ in range(out_features * RANK)))
            out.append((prefix + ".lora_A.weight", [RANK, in_features], a))
            out.append((prefix + ".lora_B.weight", [out_features, RANK], b))
    out.sort(key=lambda t: t[0])
    return out


def safetensors_bytes(items):
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, values in items:
        size = 4 * len(values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    parts = [len(text).to_bytes(8, "little"), text]
    for _, _, values in items:
        if sys.byteorder != "little":
            values = array("f", values)
            values.byteswap()
        parts.append(values.tobytes())
    return b"".join(parts)


def config(targets):
    return {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": BASE_MODEL,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": ALPHA,
        "lora_dropout": 0.0,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": RANK,
        "rank_pattern": {},
        "revision": None,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }


def write_atomically(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description="Write a deterministic PEFT LoRA adapter for SmolLM2-135M.")
    parser.add_argument("out_dir", help="the adapter folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pseudo-random values (default 1)")
    parser.add_argument("--all-targets", action="store_true", help="all seven projections instead of q_proj and v_proj")
    parser.add_argument("--strength", type=float, default=1.0, help="multiplies the value ranges (default 1)")
    args = parser.parse_args()
    targets = list(PROJECTIONS) if args.all_targets else ["q_proj", "v_proj"]
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        write_atomically(os.path.join(args.out_dir, "adapter_model.safetensors"), safetensors_bytes(tensors(args.seed, targets, args.strength)))
        write_atomically(os.path.join(args.out_dir, "adapter_config.json"),
                         json.dumps(config(targets), indent=2, sort_keys=True).encode("utf-8"))
    except OSError as error:
        print(f"error: cannot write the adapter into {args.out_dir}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
