#!/usr/bin/env python3
"""Reference LoRA losses and gradients from PyTorch + transformers + PEFT for the Swift tests.

Builds two tiny random models (a Llama with untied embeddings and a Qwen2 with q/k/v biases and
tied embeddings), wraps each with a PEFT LoraConfig on all seven projections (dropout 0, B set
to random non-zero values so the gradients of A are non-zero too), runs one fixed batch of two
right-padded sequences of different lengths with a label mask, and writes one safetensors file
per model into Tests/TrainerTests/Fixtures/:

  model.*                                   base weights, Hugging Face names (fp32)
  base_model.model.model.layers.N.*.lora_{A,B}.weight    the adapter, PEFT names
  grad.<adapter key>                        d loss / d that tensor
  batch.ids.I, batch.mask.I                 sequence I (unpadded) and its target mask, as F32
  loss                                      transformers' mean cross-entropy over the targets
  __metadata__: config (config.json subset) and lora (r, alpha, use_rslora) as JSON strings

Our target mask is per position t ("t predicts ids[t+1]"); Hugging Face labels are per
predicted token, so mask[t] = labels[t+1] != -100.

Usage: python scripts/make-lora-fixtures.py   (needs torch, transformers, peft, safetensors)
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


def build(kind):
    if kind == "llama":
        config = LlamaConfig(**COMMON, tie_word_embeddings=False, attention_bias=False)
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


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, kind, rank, alpha, rslora in [(1, "llama", 4, 8.0, False), (2, "qwen2", 4, 6.0, True)]:
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
        out = peft_model(input_ids=input_ids, attention_mask=attention, labels=labels)
        out.loss.backward()
        tensors = dict(base)
        for name, p in peft_model.named_parameters():
            if "lora_" not in name:
                continue
            key = name.replace(".default", "")
            tensors[key] = p.detach().clone().contiguous()
            tensors["grad." + key] = p.grad.detach().clone().contiguous()
        for i, (seq, mask) in enumerate(zip(ids, masks)):
            tensors[f"batch.ids.{i}"] = seq.float()
            tensors[f"batch.mask.{i}"] = torch.tensor([1.0 if m else 0.0 for m in mask[:len(seq)]])
        tensors["loss"] = out.loss.detach().reshape(1).float()
        meta = {
            "config": json.dumps(dict(COMMON, model_type=kind, tie_word_embeddings=config.tie_word_embeddings,
                                      attention_bias=kind == "qwen2")),
            "lora": json.dumps({"r": rank, "lora_alpha": alpha, "use_rslora": rslora}),
            "loss": repr(out.loss.item()),
            "versions": f"torch {torch.__version__}, transformers {__import__('transformers').__version__}, peft {__import__('peft').__version__}",
        }
        path = os.path.join(OUT, f"lora-{kind}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"{path}: loss {out.loss.item():.8f}, {len(tensors)} tensors, {os.path.getsize(path)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
