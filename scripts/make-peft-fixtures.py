#!/usr/bin/env python3
"""Fixtures for the LoRA adapter tests, made by PEFT itself, and a checker of our own output.

usage:
  python scripts/make-peft-fixtures.py                 # writes Tests/TrainerTests/Fixtures/peft/
  python scripts/make-peft-fixtures.py --check DIR     # checks folders written by our Swift code
(venv: python3 -m venv VENV && VENV/bin/pip install torch transformers peft safetensors)

Fixture mode builds a tiny random Llama with transformers (hidden 16, 2 layers, 4 heads, 2 KV heads,
intermediate 32, vocab 64, tied embeddings, fp32) and two PEFT LoRA adapters on it:
  adapter-all     LoraConfig(r=4, lora_alpha=8, all seven projections)
  adapter-rslora  LoraConfig(r=2, lora_alpha=3, lora_dropout=0.05, use_rslora=True, q/v/down only)
with lora_B set to nonzero random values (PEFT initializes it to zero), saved by save_pretrained;
adapter-all-bf16 is adapter-all cast to bfloat16 and saved again. For each adapter, PEFT's
merge_and_unload() result is saved as merged.safetensors (the adapted projections only), and
reference.json holds the logits of the unmerged PEFT model and of the merged model for a fixed
input. base/ is the tiny model (config.json, model.safetensors, generation_config.json).

Check mode (DIR/base, when present, is the base model instead of the fixture's; DIR/logits.json,
when present, holds our forward's logits of DIR/merged, compared with PEFT's) reads DIR/adapter (written by LoRAAdapter.write) with PeftModel.from_pretrained on the
fixture's base model and checks that every lora weight PEFT loaded equals the file's, that the
configuration reads back, that PEFT reports no missing or unexpected keys, and, when DIR/merged
(written by LoRAMerge.writeMergedModel) exists, that transformers loads it and that its weights
equal PEFT's merge_and_unload rounded to the folder's dtype (fp32: within 1e-6) and its logits
PEFT's within 1e-5 (fp32) or 5e-2 (16-bit).
"""
import argparse, json, os, sys, warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/TrainerTests/Fixtures/peft"
INPUT_IDS = [1, 7, 42, 3, 63, 0, 15, 28, 9, 50]
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_config():
    return LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=64, max_position_embeddings=128, rms_norm_eps=1e-5,
                       tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=None)


def logits(model, ids=None):
    with torch.no_grad():
        return model(torch.tensor([ids or INPUT_IDS])).logits[0].double().flatten().tolist()


def make_base():
    torch.manual_seed(20261202)
    model = LlamaForCausalLM(tiny_config()).float().eval()
    with torch.no_grad():  # transformers initializes norms to one: make them random so they matter
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    model.save_pretrained(OUT / "base", safe_serialization=True)
    return model


def load_base():
    return AutoModelForCausalLM.from_pretrained(OUT / "base", dtype=torch.float32).eval()


def make_adapter(name, config, seed, bf16=None):
    torch.manual_seed(seed)
    peft_model = get_peft_model(load_base(), config).eval()
    with torch.no_grad():
        for pname, p in peft_model.named_parameters():
            if "lora_B" in pname:
                p.copy_(0.2 * torch.randn_like(p))
    folder = OUT / name
    peft_model.peft_config["default"].base_model_name_or_path = "tiny-llama-base"
    peft_model.save_pretrained(folder)
    (folder / "README.md").unlink(missing_ok=True)  # PEFT's empty model card
    if bf16:
        copy = PeftModel.from_pretrained(load_base(), folder).to(torch.bfloat16)
        copy.save_pretrained(OUT / bf16)
        (OUT / bf16 / "README.md").unlink(missing_ok=True)
    unmerged = logits(peft_model)
    merged = peft_model.merge_and_unload().eval()
    adapted = {k: v.contiguous() for k, v in merged.state_dict().items()
               if any(f".{t}." in k for t in config.target_modules)}
    save_file(adapted, folder / "merged.safetensors", metadata={"format": "pt"})
    reference = {"input_ids": INPUT_IDS, "vocab_size": 64, "peft_logits": unmerged, "merged_logits": logits(merged),
                 "base_logits": logits(load_base())}
    (folder / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")


def make_fixtures():
    if OUT.exists():
        import shutil
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    make_base()
    make_adapter("adapter-all", LoraConfig(r=4, lora_alpha=8, target_modules=ALL, task_type="CAUSAL_LM"), 1,
                 bf16="adapter-all-bf16")
    make_adapter("adapter-rslora", LoraConfig(r=2, lora_alpha=3, lora_dropout=0.05, use_rslora=True,
                                              target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"), 2)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total} bytes)")


def check(directory):
    directory = Path(directory)
    failures = []
    # DIR/base (a real model written by the Swift test) replaces the fixture's base when present.
    base_dir = directory / "base" if (directory / "base").exists() else OUT / "base"
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    ours_logits_file = directory / "logits.json"
    input_ids = INPUT_IDS
    if ours_logits_file.exists():
        ours_reference = json.loads(ours_logits_file.read_text())
        input_ids = ours_reference["input_ids"]
    adapter_dir = directory / "adapter"
    ours = load_file(adapter_dir / "adapter_model.safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = PeftModel.from_pretrained(base, adapter_dir).eval()
    for w in caught:
        text = str(w.message)
        if "missing" in text.lower() or "unexpected" in text.lower():
            failures.append(f"PEFT warned: {text}")
    config = peft_model.peft_config["default"]
    saved = json.loads((adapter_dir / "adapter_config.json").read_text())
    for key in ["r", "lora_alpha", "use_rslora", "bias", "fan_in_fan_out"]:
        if getattr(config, key) != saved[key]:
            failures.append(f"config {key}: PEFT has {getattr(config, key)}, file has {saved[key]}")
    if sorted(config.target_modules) != sorted(saved["target_modules"]):
        failures.append(f"target_modules: PEFT has {sorted(config.target_modules)}")
    loaded = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
    compared = 0
    for key, tensor in ours.items():
        inner = key.replace(".weight", ".default.weight")
        if inner not in loaded:
            failures.append(f"{key}: PEFT has no {inner}")
            continue
        if not torch.equal(loaded[inner], tensor):
            failures.append(f"{key}: PEFT loaded different values")
        compared += 1
    if compared != len(loaded):
        failures.append(f"PEFT's model has {len(loaded)} lora weights, the file {len(ours)}")
    print(f"adapter: {compared} tensors equal to PEFT's loaded weights; r={config.r} alpha={config.lora_alpha} "
          f"rslora={config.use_rslora} targets={sorted(config.target_modules)}")
    peft_logits = torch.tensor(logits(peft_model, input_ids))
    if ours_logits_file.exists():
        ours_swift = torch.tensor([float(x) for x in ours_reference["logits"]], dtype=torch.float64)
        diff = (ours_swift - peft_logits).abs().max().item()
        scale = peft_logits.abs().max().item()
        print(f"our forward of our merged folder vs PEFT's adapter logits: max difference {diff:.3g} (logits up to {scale:.3g})")
        if diff > 1e-3 * max(1.0, scale):
            failures.append(f"our logits differ from PEFT's by {diff}")
    merged_peft = peft_model.merge_and_unload().eval()
    merged_dir = directory / "merged"
    if merged_dir.exists():
        ours_merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
        dtype = ours_merged.dtype  # transformers 5 loads in config.json's dtype
        print(f"merged: transformers loaded {merged_dir} as {type(ours_merged).__name__}, dtype {dtype}")
        # PEFT's fp32 merge rounded to the folder's dtype must equal our weights exactly.
        a, b = merged_peft.state_dict(), ours_merged.state_dict()
        worst = 0.0
        for key in a:
            if key not in b:
                failures.append(f"merged: {key} missing from our folder")
                continue
            worst = max(worst, (a[key].to(dtype).float() - b[key].float()).abs().max().item())
        extra = set(b) - set(a)
        if extra:
            failures.append(f"merged: unexpected tensors {sorted(extra)[:5]}")
        if worst > (1e-6 if dtype == torch.float32 else 0):
            failures.append(f"merged weights differ from PEFT's merge_and_unload (in {dtype}) by {worst}")
        ours_logits = torch.tensor(logits(ours_merged.float(), input_ids))
        diff = (ours_logits - peft_logits).abs().max().item()
        print(f"merged: max |weight - PEFT merge_and_unload in {dtype}| = {worst:.3g}; "
              f"max |logit - PEFT adapter logit| = {diff:.3g}")
        if diff > (1e-5 if dtype == torch.float32 else 5e-2) * max(1.0, peft_logits.abs().max().item()):
            failures.append(f"merged logits differ from PEFT's by {diff}")
    for f in failures:
        print("FAIL:", f)
    print("check:", "OK" if not failures else f"{len(failures)} failure(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="DIR", help="check DIR/adapter (and DIR/merged) written by our Swift code")
    args = parser.parse_args()
    sys.exit(check(args.check) if args.check else make_fixtures())
