#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into fuzz/seeds/TARGET/ (docs/RELIABILITY.md).

Every seed is small and written here for this project. The one seed not written here is
fuzz/seeds/tokenizer-json/fuzz-tokenizer.json, which is `corpus-fuzz --print-tokenizer` (the
tokenizer the bpe, chat-template and serve-request targets load); a test checks they agree.
Run from the repository root: python3 scripts/make-fuzz-seeds.py
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "seeds")


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# --- csv -------------------------------------------------------------------------------------
write("csv", "qa.csv", "question,answer,department\n高血压患者能吃党参吗？,可以少量服用，先咨询医生。,内科\nHow long does a fever last?,Three to five days.,general\n")
write("csv", "quoted.csv", 'question,answer\r\n"a, quoted ""question""","an answer\r\nover two lines"\r\n"unterminated,answer\r\nplain,row\r\n')
write("csv", "broken.csv", 'q,a\n"x"y,z\nonly one field\nthree,fields,here\nnul\x00field,b\n\n\n"",""\n')
write("csv", "tabs.tsv", "instruction\tinput\toutput\nTranslate\tbonjour\thello\nSum\t1+2\t3\n")
write("csv", "preference.csv", "prompt,chosen,rejected\nWhat is 2+2?,4,5\nCapital of France?,Paris,\n")
write("csv", "semicolons.csv", "问题;回答;科室\n头疼怎么办;多休息;神经科\r问;答;\r")

# --- json ------------------------------------------------------------------------------------
alpaca = [{"instruction": "Translate", "input": "bonjour", "output": "hello"},
          {"instruction": "感冒了吃什么药？", "input": "", "output": "多喝水，注意休息。", "system": "你是医生", "history": [["hi", "hello"]]}]
write("json", "alpaca.json", json.dumps(alpaca, ensure_ascii=False, indent=1))
sharegpt = [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
                               {"from": "function_call", "value": "{}"}, {"from": "observation", "value": "ok"}]}]
write("json", "sharegpt.json", json.dumps(sharegpt))
write("json", "messages.jsonl", "\n".join(json.dumps(m, ensure_ascii=False) for m in [
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "parts"}]}, {"role": "assistant", "content": None}]},
    {"question": "no messages here", "answer": 1},
]) + "\n\n  \n{broken\n")
write("json", "wrapped.json", '{"data": [{"question": "q1", "answer": "a1", "category": "c"}, {"question": "q2", "answer": ["a", "b"]}], "version": 2}')
write("json", "nested.json", '[[{"prompt": "p", "response": "r"}], [{"prompt": "p2", "response": "r2"}, 3, null, "s"]]')
write("json", "truncated.json", '[{"question": "q", "answer": "a"}, {"question": "cut here')
write("json", "preference.jsonl", '{"prompt": "p", "chosen": "good", "rejected": "bad"}\n{"prompt": "p", "chosen": [{"role": "assistant", "content": "x"}], "rejected": "y"}\n')
write("json", "object.json", '{"title": "t", "ask": "a question", "answer": "\\u00e9\\ud83d\\ude00 escaped"}')

# --- encoding ---------------------------------------------------------------------------------
text = "问题,回答\n高血压患者能吃党参吗？,可以少量服用。\nfever?,rest\n"
write("encoding", "utf8.csv", text)
write("encoding", "utf8-bom.csv", b"\xef\xbb\xbf" + text.encode("utf-8"))
write("encoding", "gb18030.csv", text.encode("gb18030"))
write("encoding", "utf16le-bom.csv", b"\xff\xfe" + text.encode("utf-16-le"))
write("encoding", "utf16be.csv", text.encode("utf-16-be"))
write("encoding", "big5.csv", "問題,回答\n高血壓,可以\n".encode("big5"))
write("encoding", "shift-jis.csv", "質問,回答\n頭痛,休む\n".encode("shift_jis"))
write("encoding", "latin1.csv", "question,answer\ncafé,résumé\n".encode("latin-1"))
write("encoding", "damaged-utf8.csv", text.encode("utf-8") + b"bad \xff\xfe byte,\xe9\x99\n\xf0\x9f\x98,x\n")
write("encoding", "forced-gb18030.bin", b"\x00" + text.encode("gb18030") + b"\x81\x30\xff")

# --- gguf ------------------------------------------------------------------------------------


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf(metadata, tensors, alignment=32):
    """metadata: [(key, type, payload bytes)]; tensors: [(name, dims, ggml type, data bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, kind, payload in metadata:
        out += gguf_string(key) + struct.pack("<I", kind) + payload
    offset = 0
    datas = b""
    for name, dims, kind, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", kind, offset)
        padded = data + b"\x00" * ((-len(data)) % alignment)
        datas += padded
        offset += len(padded)
    out += b"\x00" * ((-len(out)) % alignment)
    return out + datas


def u32(v):
    return struct.pack("<I", v)


def strings(values):
    return struct.pack("<IQ", 8, len(values)) + b"".join(gguf_string(v) for v in values)


def f32(values):
    return b"".join(struct.pack("<f", v) for v in values)


vocab = ["<unk>", "a", "b", "c", "ab", "abc", "\u0120", "\u0120a", "x", "y"]
meta = [("general.architecture", 8, gguf_string("llama")), ("llama.embedding_length", 4, u32(8)),
        ("llama.feed_forward_length", 4, u32(16)), ("llama.block_count", 4, u32(1)),
        ("llama.attention.head_count", 4, u32(2)), ("llama.attention.head_count_kv", 4, u32(1)),
        ("llama.context_length", 4, u32(64)), ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
        ("tokenizer.ggml.model", 8, gguf_string("gpt2")), ("tokenizer.ggml.pre", 8, gguf_string("gpt2")),
        ("tokenizer.ggml.tokens", 9, strings(vocab)), ("tokenizer.ggml.merges", 9, strings(["a b", "ab c", "\u0120 a"])),
        ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 10) + b"".join(struct.pack("<i", 3 if i == 0 else 1) for i in range(10))),
        ("tokenizer.ggml.eos_token_id", 4, u32(0))]
tensors = [("token_embd.weight", [8, 10], 0, f32([(i % 7) / 4 for i in range(80)])),
           ("output_norm.weight", [8], 0, f32([1.0] * 8)),
           ("blk.0.attn_q.weight", [8, 8], 0, f32([(i % 5) / 8 for i in range(64)])),
           ("blk.0.attn_k.weight", [8, 4], 1, struct.pack("<32e", *[(i % 3) / 2 for i in range(32)]))]
write("gguf", "tiny-llama.gguf", gguf(meta, tensors))
# Block formats: one Q8_0 block (scale f16 + 32 int8), one Q4_0 block (f16 + 16 bytes), one Q4_1 block.
q8 = struct.pack("<e", 0.5) + bytes(range(32))
q4_0 = struct.pack("<e", 0.25) + bytes(range(16))
q4_1 = struct.pack("<ee", 0.25, -1.0) + bytes(range(16, 32))
write("gguf", "quantized.gguf", gguf([("general.alignment", 4, u32(64)), ("general.name", 8, gguf_string("q"))],
                                     [("q8", [32], 8, q8), ("q4_0", [32], 2, q4_0), ("q4_1", [32], 3, q4_1),
                                      ("bf16", [4], 30, struct.pack("<4H", 0x3F80, 0x4000, 0xBF80, 0)), ("big", [2, 2, 2, 2], 0, f32([0.5] * 16))], alignment=64))
nested = [("arr", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 4, 2) + u32(1) + u32(2) + struct.pack("<IQ", 12, 1) + struct.pack("<d", 1.5)),
          ("many", 9, struct.pack("<IQ", 7, 3) + b"\x01\x00\x01"), ("i64", 11, struct.pack("<q", -5)), ("u64", 10, struct.pack("<Q", 7))]
write("gguf", "metadata-kinds.gguf", gguf(nested, []))
write("gguf", "truncated.gguf", gguf(meta, tensors)[:300])

# --- safetensors ------------------------------------------------------------------------------


def safetensors(entries, metadata=None):
    header = {}
    data = b""
    for name, dtype, shape, payload in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


write("safetensors", "adapter.safetensors", safetensors([
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [2, 4], f32([0.1 * i for i in range(8)])),
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "F32", [4, 2], f32([0.0] * 8)),
], {"format": "pt", "corpus.run_id": "7"}))
write("safetensors", "dtypes.safetensors", safetensors([
    ("f16", "F16", [2, 2], struct.pack("<4e", 1, 2, 3, 4)), ("bf16", "BF16", [3], struct.pack("<3H", 0x3F80, 0x4000, 0x4040)),
    ("i64", "I64", [1], struct.pack("<q", 9)), ("empty", "F32", [0, 3], b""), ("scalar", "F32", [], f32([2.5]))]))
write("safetensors", "wrong-size.safetensors", safetensors([("t", "F32", [3, 3], f32([1.0] * 4))]))

# --- peft-config ------------------------------------------------------------------------------
peft = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "bias": "none",
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "fan_in_fan_out": False, "use_rslora": False,
        "use_dora": False, "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None, "inference_mode": True}
write("peft-config", "adapter_config.json", json.dumps(peft, indent=2))
write("peft-config", "rslora.json", json.dumps({"r": 8.0, "lora_alpha": 16, "use_rslora": True, "target_modules": ["q_proj", "v_proj", "q_proj"]}))
write("peft-config", "refused.json", json.dumps({"peft_type": "LORA", "r": 4, "target_modules": "all-linear", "use_dora": True,
                                                 "rank_pattern": {"q_proj": 8}, "bias": "lora_only", "lora_alpha": "x"}))

# --- tokenizer-json (besides fuzz-tokenizer.json) ---------------------------------------------
smol_vocab = {c: i for i, c in enumerate(["a", "b", "c", "ab", "abc", "\u0120", "\u0120a", "1", "2", "<|im_end|>"])}
write("tokenizer-json", "sequence-digits.json", json.dumps({
    "added_tokens": [{"id": 9, "content": "<|im_end|>", "special": True}, {"id": 10, "content": "<tool>", "special": False}],
    "normalizer": None, "decoder": {"type": "ByteLevel"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}]},
    "model": {"type": "BPE", "vocab": smol_vocab, "merges": [["a", "b"], "ab c", "\u0120 a"], "unk_token": "a"}}, ensure_ascii=False))
write("tokenizer-json", "split-qwen.json", json.dumps({
    "added_tokens": [], "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
    "model": {"type": "BPE", "vocab": {"x": 0, "y": 1, "xy": 2}, "merges": ["x y"], "ignore_merges": True}}))

# --- bpe ------------------------------------------------------------------------------------
write("bpe", "english.txt", "The patient asked whether the tablets can be taken with food.\nIt's 12:30, isn't it? They'll say 1234567 times.\n")
write("bpe", "chinese.txt", "高血压患者能吃党参吗？可以少量服用，但是应该先咨询医生。")
write("bpe", "specials.txt", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<|im_end|><|endoftext|><|im_")
write("bpe", "mixed.txt", "café é e\u0301 \U0001F600\U0001F469\u200d\U0001F4BB  \t\r\n\n   x\u00a0y\u3000z ＡＢＣ１２３ ١٢٣ 'S 'LL")
write("bpe", "bytes.bin", bytes(range(256)))

# --- chat-template ------------------------------------------------------------------------------
def chat(selector, jinja, messages):
    parts = [jinja] if selector % 6 in (4, 5) else []
    parts += [chr(role) + content for role, content in messages]
    return bytes([selector]) + b"\x00".join(p.encode("utf-8") for p in parts)


conversation = [(0, "You are a doctor."), (1, "头疼怎么办？"), (2, "多休息。"), (1, "Thanks"), (2, "")]
for k, name in enumerate(["chatml", "llama3", "mistral", "alpaca"]):
    write("chat-template", name + ".bin", chat(k, "", conversation))
chatml_jinja = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
write("chat-template", "recognize-chatml.bin", chat(4, chatml_jinja, [(1, "hi"), (2, "hello")]))
write("chat-template", "recognize-llama3.bin", chat(5, "{{ bos_token }}<|start_header_id|>{{ role }}<|end_header_id|>\n\n{{ content | trim }}<|eot_id|>", [(3, "dev"), (1, " spaced \n"), (2, "a")]))
write("chat-template", "recognize-mistral.bin", chat(4, "[INST] {{ m }} [/INST]", [(0, "sys"), (0, "sys2"), (4, "tool"), (2, "x")]))
write("chat-template", "recognize-alpaca.bin", chat(5, "### Instruction:\n{{ x }}\n\n### Response:\n", [(1, "q"), (2, "a"), (2, "b")]))

# --- check-config -------------------------------------------------------------------------------
write("check-config", "sections.json", json.dumps({
    "length": {"min_prompt_chars": 4, "max_answer_chars": 2000, "max_answer_tokens": 512},
    "near_duplicates": {}, "repetition": {"ngram": 5, "max_ngram_repetition": 0.4},
    "boilerplate": {"min_records": 10, "min_share": 0.01}, "advisory": ["pii"], "skip": ["language_mismatch"],
    "exact_duplicates": {"on": "prompt"}, "echo": {"min_length_ratio": 2}}, indent=1))
write("check-config", "empty.json", "{}")
write("check-config", "invalid.json", json.dumps({"length": {"min_prompt_chars": -1}, "repetition": {"max_dominant_character_share": 1e300},
                                                   "unknown": 1, "skip": ["nothing"], "pii": {"kinds": ["email", "ssn"]}}))
write("check-config", "types.json", '{"length": {"min_prompt_chars": 2.5, "max_prompt_chars": "10"}, "filler": {"openings": [1, null]}}')

# --- serve-request ------------------------------------------------------------------------------
write("serve-request", "chat.json", json.dumps({"model": "base", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "头疼怎么办？"}],
                                                 "max_tokens": 16, "temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\n\n", "<|im_end|>"],
                                                 "stream": True, "stream_options": {"include_usage": True}}, ensure_ascii=False))
write("serve-request", "parts.json", json.dumps({"model": "base", "messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                                                  {"role": "assistant", "content": None}, {"role": "user", "content": "c"}],
                                                  "max_completion_tokens": 8, "n": 1, "logprobs": False, "response_format": {"type": "text"}, "logit_bias": {}}))
write("serve-request", "completion-ids.json", json.dumps({"model": "base", "prompt": [[1, 2, 3]], "max_tokens": 4, "stop": "x", "echo": False}))
write("serve-request", "completion-text.json", json.dumps({"model": "base", "prompt": "The patient asked", "temperature": 0, "presence_penalty": 0}))
write("serve-request", "refused.json", json.dumps({"model": "other", "messages": [{"role": "tool", "content": "x"}], "n": 2, "tools": [{}],
                                                    "max_tokens": 1.5, "seed": 1e30, "temperature": 3, "top_p": 0, "stop": ["", "a", "b", "c", "d"]}))
write("serve-request", "huge-max-tokens.json", '{"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9223372036854775807}')
print("seeds written to", os.path.normpath(ROOT))
