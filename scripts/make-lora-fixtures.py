#!/usr/bin/env python3
"""Reference LoRA losses and gradients from PyTorch + transformers + PEFT for the Swift tests.

Builds four tiny random models written by transformers: a Llama with untied embeddings, a Qwen2
with q/k/v biases and tied embeddings, a Llama 3 (untied head, rope_scaling llama3 with an
original context of 16 so that both the divided and the smoothed wavelengths occur at the
fixture's 12 positions) and a SmolLM2-style Llama (tied embeddings, 2 KV heads), wraps each with a PEFT LoraConfig on all seven projections (dropout 0, B set
to random non-zero values so the gradients of A are non-zero too), runs one fixed batch of two
right-padded sequences of different lengths with a label mask, and writes one safetensors file
per model into Tests/TrainerTests/Fixtures/:

  model.*                                   base weights, Hugging Face names (fp32)
  base_model.model.model.layers.N.*.lora_{A,B}.weight    the adapter, PEFT names
  grad.<adapter key>                        d loss / d that tensor
  batch.ids.I, batch.mask.I                 sequence I (unpadded) and its target mask, as F32
  loss                                      transformers' mean cross-entropy over the targets
  bf16.loss, bf16.grad.<adapter key>        the same under torch.autocast("cpu", bfloat16), the
                                            peer our --compute bf16 imitates (the tests compare
                                            our bf16 error with autocast's, both against fp32)
  __metadata__: config (a subset), config_json (config.json as transformers writes it, read by
  our own config.json parser) and lora (r, alpha, use_rslora) as JSON strings

Our target mask is per position t ("t predicts ids[t+1]"); Hugging Face labels are per
predicted token, so mask[t] = labels[t+1] != -100.

Usage: python scripts/make-lora-fixtures.py [KIND ...]   (needs torch, transformers, peft, safetensors;
KIND: llama, qwen2, llama3, smollm; default all)
"""
import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TrainerTests", "Fixtures")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
COMMON = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=50, max_position_embeddings=64, rms_norm_eps=1e-5,
              rope_theta=10000.0)


LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 16}
MODELS = [(1, "llama", 4, 8.0, False), (2, "qwen2", 4, 6.0, True), (3, "llama3", 4, 8.0, False), (4, "smollm", 2, 4.0, False)]


def build(kind):
    if kind == "llama":
        config = LlamaConfig(**COMMON, tie_word_embeddings=False, attention_bias=False)
        model = LlamaForCausalLM(config)
    elif kind == "llama3":
        config = LlamaConfig(**COMMON, tie_word_embeddings=False, attention_bias=False, rope_scaling=dict(LLAMA3_SCALING))
        model = LlamaForCausalLM(config)
    elif kind == "smollm":
        config = LlamaConfig(**COMMON, tie_word_embeddings=True, attention_bias=False)
        model = LlamaForCausalLM(config)
    else:
        config = Qwen2Config(**COMMON, tie_word_embeddings=True, use_sliding_window=False)
        model = Qwen2ForCausalLM(config)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return config, model.float()


def lora_gradients(peft_model, input_ids, attention, labels, bf16):
    for p in peft_model.parameters():
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = peft_model(input_ids=input_ids, attention_mask=attention, labels=labels)
    out.loss.backward()
    grads = {name.replace(".default", ""): p.grad.detach().float().clone().contiguous()
             for name, p in peft_model.named_parameters() if "lora_" in name}
    return out.loss.detach().float(), grads


def main():
    os.makedirs(OUT, exist_ok=True)
    kinds = sys.argv[1:] or [m[1] for m in MODELS]
    for seed, kind, rank, alpha, rslora in MODELS:
        if kind not in kinds:
            continue
        torch.manual_seed(seed)
        config, model = build(kind)
        base = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                if not (config.tie_word_embeddings and k == "lm_head.weight") and "rotary_emb" not in k}
        lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, use_rslora=rslora, target_modules=TARGETS,
                          bias="none", task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, lora)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.2 * torch.randn_like(p))
        # Two sequences of different lengths, right-padded; targets: a span of each.
        lengths = [12, 9]
        ids = [torch.randint(0, COMMON["vocab_size"], (n,)) for n in lengths]
        masks = [[4 <= t <= 10 for t in range(12)], [2 <= t <= 7 for t in range(9)]]
        T = max(lengths)
        input_ids = torch.zeros(len(ids), T, dtype=torch.long)
        attention = torch.zeros(len(ids), T, dtype=torch.long)
        labels = torch.full((len(ids), T), -100, dtype=torch.long)
        for i, (seq, mask) in enumerate(zip(ids, masks)):
            n = len(seq)
            input_ids[i, :n] = seq
            attention[i, :n] = 1
            for t in range(n - 1):
                if mask[t]:
                    labels[i, t + 1] = seq[t + 1]
        peft_model.train()
        loss, grads = lora_gradients(peft_model, input_ids, attention, labels, bf16=False)
        bf16_loss, bf16_grads = lora_gradients(peft_model, input_ids, attention, labels, bf16=True)
        tensors = dict(base)
        for name, p in peft_model.named_parameters():
            if "lora_" not in name:
                continue
            key = name.replace(".default", "")
            tensors[key] = p.detach().clone().contiguous()
            tensors["grad." + key] = grads[key]
            tensors["bf16.grad." + key] = bf16_grads[key]
        tensors["bf16.loss"] = bf16_loss.reshape(1)
        for i, (seq, mask) in enumerate(zip(ids, masks)):
            tensors[f"batch.ids.{i}"] = seq.float()
            tensors[f"batch.mask.{i}"] = torch.tensor([1.0 if m else 0.0 for m in mask[:len(seq)]])
        tensors["loss"] = loss.reshape(1)
        meta = {
            "config": json.dumps(dict(COMMON, model_type=config.model_type, tie_word_embeddings=config.tie_word_embeddings,
                                      attention_bias=kind == "qwen2")),
            "config_json": config.to_json_string(),
            "lora": json.dumps({"r": rank, "lora_alpha": alpha, "use_rslora": rslora}),
            "loss": repr(loss.item()),
            "bf16_loss": repr(bf16_loss.item()),
            "versions": f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, peft {__import__('peft').__version__}",
        }
        path = os.path.join(OUT, f"lora-{kind}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"{path}: loss {loss.item():.8f} (bf16 autocast {bf16_loss.item():.8f}), {len(tensors)} tensors, {os.path.getsize(path)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
