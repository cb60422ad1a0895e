#!/usr/bin/env python3
"""Reference values for the optimizer tests, from PyTorch and transformers themselves.

usage: VENV/bin/python scripts/make-optim-fixtures.py
(venv: python3 -m venv VENV && VENV/bin/pip install torch transformers)

Writes Tests/TrainerTests/Fixtures/optim-reference.json:
- `adamw`: two runs of torch.optim.AdamW (defaults, and other betas/eps/weight decay) over the
  four tensors of a tiny LoRA adapter (1 layer, q_proj and down_proj, r = 2, hidden 4,
  intermediate 6), named by their PEFT keys; per step the gradients, the learning rate and the
  parameters after the step; at the end the step count and both moments.
- `schedules`: learning rates of transformers' cosine, linear and constant schedules with warmup,
  read from the LambdaLR scheduler after each step.
- `clipping`: torch.nn.utils.clip_grad_norm_ on the same tensor shapes with a large and a small
  max_norm: the returned norm and the clipped gradients.

Scalars (learning rates, hyper-parameters, norms) are written as strings (Python's repr):
Foundation's JSONSerialization on Linux reads some doubles one unit in the last place off
(0.00019324722294043558 becomes ...555), and these values must arrive exactly.
"""
import json
from pathlib import Path

import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

OUT = Path(__file__).resolve().parent.parent / "Tests/TrainerTests/Fixtures/optim-reference.json"
SHAPES = {
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": [2, 4],
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": [4, 2],
    "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight": [2, 6],
    "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": [4, 2],
}


def values(t):
    return [float(x) for x in t.detach().flatten().tolist()]


def adamw_run(seed, steps, **kwargs):
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.nn.Parameter(torch.randn(s, generator=g)) for k, s in SHAPES.items()}
    initial = {k: values(p) for k, p in params.items()}
    optimizer = torch.optim.AdamW(list(params.values()), **kwargs)
    rates = [1e-2, 3e-2, 2e-2, 5e-3, 1e-3, 0.0, 4e-2][:steps]
    record = []
    for lr in rates:
        for group in optimizer.param_groups:
            group["lr"] = lr
        grads = {}
        for k, p in params.items():
            p.grad = torch.randn(p.shape, generator=g) * (10 if "lora_B" in k else 0.01)
            grads[k] = values(p.grad)
        optimizer.step()
        record.append({"lr": repr(lr), "gradients": grads, "parameters": {k: values(p) for k, p in params.items()}})
    state = {k: optimizer.state[p] for k, p in params.items()}
    hyper = optimizer.param_groups[0]
    return {
        "hyperparameters": {"beta1": repr(hyper["betas"][0]), "beta2": repr(hyper["betas"][1]), "epsilon": repr(hyper["eps"]),
                            "weight_decay": repr(hyper["weight_decay"])},
        "initial": initial, "steps": record,
        "final_step": int(next(iter(state.values()))["step"].item()),
        "exp_avg": {k: values(s["exp_avg"]) for k, s in state.items()},
        "exp_avg_sq": {k: values(s["exp_avg_sq"]) for k, s in state.items()},
    }


def schedule(kind, peak, warmup, total, steps):
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([p], lr=peak)
    if kind == "cosine":
        s = get_cosine_schedule_with_warmup(optimizer, warmup, total)
    elif kind == "linear":
        s = get_linear_schedule_with_warmup(optimizer, warmup, total)
    else:
        s = get_constant_schedule_with_warmup(optimizer, warmup)
    rates = []
    for _ in range(steps):
        rates.append(repr(s.get_last_lr()[0]))
        optimizer.step()
        s.step()
    return {"decay": kind, "peak": repr(peak), "warmup": warmup, "total": total, "rates": rates}


def clipping(seed, max_norm):
    g = torch.Generator().manual_seed(seed)
    params = {k: torch.nn.Parameter(torch.zeros(s)) for k, s in SHAPES.items()}
    for p in params.values():
        p.grad = torch.randn(p.shape, generator=g)
    before = {k: values(p.grad) for k, p in params.items()}
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
    return {"max_norm": repr(max_norm), "gradients": before, "norm": repr(float(norm)),
            "clipped": {k: values(p.grad) for k, p in params.items()}}


def main():
    fixture = {
        "torch_version": torch.__version__,
        "adamw": [adamw_run(7, 7), adamw_run(8, 5, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)],
        "schedules": [schedule("cosine", 2e-4, 3, 20, 25), schedule("linear", 2e-4, 3, 20, 25),
                      schedule("constant", 2e-4, 3, 20, 8), schedule("cosine", 1e-3, 0, 7, 9),
                      schedule("linear", 5e-5, 10, 10, 12)],
        "clipping": [clipping(9, 1.0), clipping(10, 100.0)],
    }
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
