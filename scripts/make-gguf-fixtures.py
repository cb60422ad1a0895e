#!/usr/bin/env python3
"""Reference values for the GGUF reader tests, from the `gguf` Python package (ggml's own).

usage: ~/.cache/corpus-venv/bin/python scripts/make-gguf-fixtures.py MODEL.gguf
(venv: python3 -m venv ~/.cache/corpus-venv && ~/.cache/corpus-venv/bin/pip install gguf numpy)

Writes Tests/TrainerTests/Fixtures/gguf-reference.json:
- `blocks`: for each block type, deterministic random raw blocks (with sane fp16 scales) and
  gguf-py's dequantization of them;
- `model`: metadata, tensor count, and a few dequantized values of the real SmolLM2 GGUF.
"""
import json, sys
import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize

rng = np.random.default_rng(20261122)

def random_blocks(qtype, nblocks):
    from gguf.constants import GGML_QUANT_SIZES
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, block_bytes), dtype=np.uint8)
    def put_half(col, value):
        raw[:, col:col + 2] = np.frombuffer(np.float16(value).tobytes() * nblocks, dtype=np.uint8).reshape(nblocks, 2)
    if qtype in (T.Q8_0, T.Q4_0):
        put_half(0, 0.0123)
    elif qtype == T.Q4_1:
        put_half(0, 0.0123); put_half(2, -0.05)
    elif qtype == T.Q4_K:
        put_half(0, 0.0021); put_half(2, 0.0013)
    elif qtype == T.Q6_K:
        put_half(block_bytes - 2, 0.0017)
    elif qtype == T.F16:
        raw = np.frombuffer(rng.standard_normal(nblocks * block_bytes // 2).astype(np.float16).tobytes(), dtype=np.uint8).reshape(nblocks, block_bytes)
    elif qtype == T.BF16:
        f = rng.standard_normal(nblocks * block_bytes // 2).astype(np.float32)
        raw = np.frombuffer((f.view(np.uint32) >> 16).astype(np.uint16).tobytes(), dtype=np.uint8).reshape(nblocks, block_bytes)
    values = dequantize(raw.reshape(-1), qtype).reshape(-1)
    return {"type": qtype.name, "bytes": raw.reshape(-1).tobytes().hex(), "values": [float(v) for v in values]}

blocks = [random_blocks(T.Q8_0, 2), random_blocks(T.Q4_0, 2), random_blocks(T.Q4_1, 2),
          random_blocks(T.Q4_K, 2), random_blocks(T.Q6_K, 2), random_blocks(T.F16, 16), random_blocks(T.BF16, 16)]

reader = GGUFReader(sys.argv[1])
def field(name):
    f = reader.fields[name]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0].name == "STRING" else v.tolist()[0]
tensors = {t.name: t for t in reader.tensors}
def sample(name, idx):
    t = tensors[name]
    values = dequantize(t.data, t.tensor_type).reshape(-1)
    return {"name": name, "type": t.tensor_type.name, "shape": [int(x) for x in reversed(t.shape.tolist())],
            "indices": idx, "values": [float(values[i]) for i in idx]}
model = {
    "tensor_count": len(reader.tensors),
    "architecture": field("general.architecture"),
    "block_count": field("llama.block_count"),
    "embedding_length": field("llama.embedding_length"),
    "rope_freq_base": field("llama.rope.freq_base"),
    "token_count": len(reader.fields["tokenizer.ggml.tokens"].data),
    "samples": [sample("token_embd.weight", [0, 1, 575, 576, 1000000, 28311551]),
                sample("blk.0.attn_q.weight", [0, 31, 32, 100000, 331775]),
                sample("blk.29.ffn_down.weight", [0, 7, 884735]),
                sample("output_norm.weight", [0, 1, 575])],
}
json.dump({"blocks": blocks, "model": model}, open("Tests/TrainerTests/Fixtures/gguf-reference.json", "w"), indent=0)
print("wrote Tests/TrainerTests/Fixtures/gguf-reference.json")
