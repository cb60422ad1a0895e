"""Peer for "useful tokens/s on a real snapshot" (issue 6): PyTorch + PEFT LoRA training the way a
plain Hugging Face script does it, on a snapshot exported by `corpus snapshot export --format
messages`: the chat template applied by the tokenizer, examples in shuffled order, batches of B
padded to their longest member, loss on every real token, an AdamW step per batch, 2 threads,
fp32. Prints useful (non-padding) tokens/s and all tokens/s over the timed steps.

usage: python peer-padded-lora.py MODEL_DIR GGUF EXPORT_DIR/train.jsonl BATCH STEPS [MAX_LEN]
Written for this project (it measures the peer; corpus itself never runs Python)."""
import json, random, sys, time, resource
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import LoraConfig, get_peft_model

d, g, path, B, S = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
max_len = int(sys.argv[6]) if len(sys.argv) > 6 else 1024
torch.set_num_threads(2); torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(d, gguf_file=g)
pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
rows = [json.loads(l) for l in open(path, encoding="utf-8")]
random.Random(0).shuffle(rows)
def ids_of(messages):
    enc = tok.apply_chat_template(messages, tokenize=True)
    ids = enc["input_ids"] if hasattr(enc, "keys") else enc
    return [int(i) for i in ids][:max_len]
examples = [ids_of(r["messages"]) for r in rows[: B * (S + 1)]]
m = AutoModelForCausalLM.from_pretrained(d, gguf_file=g, dtype=torch.float32)
m = get_peft_model(m, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
m.train()
opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=2e-4)
useful = padded = 0
seconds = 0.0
for s in range(S + 1):
    batch = examples[s * B:(s + 1) * B]
    T = max(len(e) for e in batch)
    ids = torch.tensor([e + [pad] * (T - len(e)) for e in batch])
    mask = torch.tensor([[1] * len(e) + [0] * (T - len(e)) for e in batch])
    labels = ids.masked_fill(mask == 0, -100)
    t0 = time.perf_counter()
    loss = m(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward(); opt.step(); opt.zero_grad()
    dt = time.perf_counter() - t0
    if s >= 1:   # the first step warms up
        seconds += dt
        useful += int(mask.sum())
        padded += ids.numel()
print(f"B={B} steps={S}: useful tokens/s {useful / seconds:.1f}, all tokens/s {padded / seconds:.1f}, "
      f"padding {100 * (1 - useful / padded):.1f}% of the batch")
print("peak RSS MiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
