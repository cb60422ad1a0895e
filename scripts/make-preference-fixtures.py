#!/usr/bin/env python3
"""Reference DPO and GRPO LoRA losses and gradients computed by TRL itself, for the Swift tests.

Same tiny random SmolLM2-style Llama as scripts/make-lora-fixtures.py (tied embeddings, 2 KV heads,
vocab 50, hidden 16, 2 layers, eager attention) with a PEFT LoRA (r 4, alpha 8, dropout 0, all seven
projections). The adapter is created by the TRL trainer itself from a LoraConfig (the "new adapter"
case, so TRL's reference model is the base with the adapter disabled); B is then set to random
non-zero values so that policy != reference, as after some training steps.

Every number comes from TRL's own code path on CPU in fp32: a DPOTrainer / GRPOTrainer is built
on an in-memory dataset with a minimal word-level tokenizer (id 0 "<pad>", 1 "<unk>", 2 "<eos>",
3..49 "w3".."w49"); DPO's batch comes from TRL's own dataset preparation and collator and its loss
from `DPOTrainer.compute_loss`; GRPO's batch comes from `GRPOTrainer._generate_and_score_completions`
(the fixed completions are handed in through TRL's `rollout_func` hook, the fixed rewards through a
reward function, so advantages, reference log-probs and masks are TRL's) and its loss from
`GRPOTrainer.compute_loss`. Gradients are `loss.backward()` on the LoRA parameters. The script
cross-checks each TRL number against an independent per-sequence computation with plain
transformers logits (unpadded, one sequence at a time) and stops if they differ.

Files (Tests/TrainerTests/Fixtures/):

dpo-smollm.safetensors
  model.*, base_model.model.model.layers.N.*.lora_{A,B}.weight, grad.<adapter key>   as in lora-*.safetensors
  dpo.prompt.I, dpo.chosen.I, dpo.rejected.I     pair I's token ids (F32); chosen/rejected are the
                                                 completion only (prompt excluded), each ending in EOS (2)
  dpo.policy_chosen_logps, dpo.policy_rejected_logps,
  dpo.reference_chosen_logps, dpo.reference_rejected_logps   per pair, TRL's summed completion log-probs
  metadata: loss, rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins (TRL's logged
  "rewards/*" metrics of this batch), logps_chosen, logps_rejected (logged "logps/*"), beta, loss_type,
  config, config_json, lora, trl_version, torch_version, versions

grpo-smollm.safetensors
  model.*, adapter, grad.<adapter key>           d loss / d LoRA at beta 0.04 (TRL's default loss_type)
  beta0.grad.<adapter key>                       the same loss with beta 0 (no KL term)
  grpo.prompt.I, grpo.completion.I.J             prompt I, its completion J (F32 ids), G = 4 per prompt
  grpo.rewards                                   (8,) rewards in batch order I*G+J
  grpo.advantages                                (8,) TRL's advantages
  grpo.policy_logps.I.J, grpo.reference_logps.I.J   per completion token log-probs (adapter on / off)
  metadata: loss, loss_beta0, kl, clip_ratio (JSON of TRL's clip_ratio/* metrics), entropy, loss_type,
  scale_rewards, beta, epsilon, epsilon_high, num_iterations, temperature, use_bias_correction_kl,
  config, config_json, lora, trl_version, torch_version, versions

What TRL (1.16.0, the version these files were made with) does -- what the Swift side must do
================================================================================================

DPO (trl/trainer/dpo_trainer.py)
  * Data: for a plain-text (non-conversational) dataset `_prepare_dataset` APPENDS the tokenizer's
    eos_token text to chosen and rejected unless the string already ends with it ("add_eos"); a
    conversational dataset gets its end-of-turn from the chat template instead. prompt_ids =
    tokenize(prompt), chosen_ids = tokenize(prompt + chosen)[len(common prefix):] (the completion
    starts where the tokenized prompt and prompt+completion diverge). Our completions already end in
    EOS so add_eos is a no-op here (checked: TRL's chosen_ids/rejected_ids equal ours).
  * Collator `DataCollatorForPreference`: each sequence is prompt_ids + completion_ids (TRL adds no
    token of its own; the prompt text is tokenized with the tokenizer's default special tokens, so a
    tokenizer that adds BOS gives the prompt a BOS), truncated per sequence to max_length (default 1024, keep_start:
    keeps the first 1024 tokens, so a long completion loses its END, EOS included; examples whose
    prompt alone is >= max_length are dropped); the batch is [all chosen..., all rejected...],
    right-padded; completion_mask = 1 on the completion ids.
  * Log-prob: labels = input_ids with non-completion positions set to -100; the fused LM head scores
    position t's distribution against ids[t+1]; per-sequence logp = SUM over every completion token
    (including the final EOS) of log softmax(logits_t)[ids[t+1]], t from len(prompt)-1 to
    len(seq)-2. The first completion token IS predicted by the last prompt position; nothing else of
    the prompt is. In our mask convention: mask[t] = 1 for len(prompt)-1 <= t <= len(seq)-2.
    It is a sum, not a mean, for "sigmoid" (only "ipo" and "sigmoid_norm" divide by the completion
    length; ld_alpha (LD-DPO) is off by default). Padding changes nothing (right padding, causal).
  * Reference: with a fresh PEFT adapter and ref_model=None, the reference log-probs come from the
    same model under `use_adapter(model, None)` = `disable_adapter()`, i.e. the base model, under
    no_grad. (If you hand TRL an already-wrapped PeftModel instead of a base model + peft_config,
    TRL copies the adapter to a frozen "ref" adapter and uses THAT as reference: the reference is
    then the starting adapter, not the base.)
  * Loss "sigmoid": per pair -logsigmoid(beta * ((pc - rc) - (pr - rr))) with pc/pr the policy
    chosen/rejected logps and rc/rr the reference ones; batch loss = mean over pairs. label_smoothing
    is NOT used by "sigmoid" in this version (only "robust", "exo_pair", "aot*").
  * Metrics: rewards/chosen = mean(beta*(pc-rc)), rewards/rejected = mean(beta*(pr-rr)),
    rewards/accuracies = mean(chosen_reward > rejected_reward) (strict >), rewards/margins =
    mean(chosen_reward - rejected_reward), logps/chosen = mean(pc), logps/rejected = mean(pr).
  * Quirks: TRL's base config defaults bf16=True (mixed precision) when fp16 is unset and
    gradient_checkpointing=True; both are switched off here (numbers are fp32; checkpointing does not
    change them). disable_dropout defaults to True for DPO. precompute_ref_log_probs defaults False.
    The model's forward is patched (add_fused_lm_head) to compute log-probs in vocabulary chunks
    without materialising the logits; it is exact (log-sum-exp), no approximation. There is no
    use_logits_to_keep / prompt-token-in-completion option any more in this version's DPO.

GRPO (trl/trainer/grpo_trainer.py, grpo_config.py)
  * Default loss_type is "dapo": loss = sum over all completion tokens of the batch of per-token loss
    / num_items_in_batch, where num_items_in_batch = total completion tokens of the whole generation
    batch (all processes; here 8 completions, 30 tokens), rescaled by gradient_accumulation_steps /
    steps_per_generation (both 1 by default, steps_per_generation defaults to gradient accumulation).
    (For reference: "grpo" = per-sequence mean then mean over sequences; "bnpo" = sum / tokens of the
    local batch; "dr_grpo" = sum / (batch * max_completion_length).)
  * Advantages (_generate_and_score_completions, multi_objective_aggregation "sum_then_normalize",
    scale_rewards "group" = the default): r = sum of weighted reward functions; mean_g = mean of the
    group's G rewards; std_g = nanstd = UNBIASED (Bessel, /(G-1)) std of the group; A = (r - mean_g) /
    (std_g + 1e-4). A group of equal rewards gets A = 0 exactly. "batch" uses the std over the whole
    batch, "none" does not divide.
  * Per-token log-probs (_get_per_token_logps_and_entropies): sequence = left-padded prompt +
    right-padded completion; labels are the completion ids (prompt and padding -100); log-prob of
    completion token k = log softmax(logits / temperature)[id] at the position before it (the first
    completion token is predicted by the last prompt position) -- the same positions as DPO.
    temperature defaults to 1.0, but note TRL divides the training logits by the SAMPLING
    temperature. Positions are arange over the padded row (transformers does not derive them from
    the attention mask), so a left-padded prompt is shifted; RoPE is relative so the scores are
    unchanged up to rounding (checked against unpadded single-sequence log-probs, < 1e-5).
  * num_iterations 1 with steps_per_generation == gradient_accumulation_steps: old log-probs are not
    computed; old = per_token_logps.detach(), so ratio coef_1 = exp(logp - logp.detach()) = 1 in
    value but carries d logp. importance_sampling_level "token".
  * Per-token loss: -min(coef_1 * A, clamp(coef_1, 1-eps, 1+eps_high) * A) + beta * kl * coef_1,
    with eps = eps_high = 0.2 (epsilon_high defaults to epsilon), kl = exp(ref - logp) - (ref - logp) - 1
    (k3 estimator), and the "* coef_1" because use_bias_correction_kl defaults to True. Gradient of a
    token's loss w.r.t. logp on-policy: -A + beta * (1 - exp(ref - logp) + kl): the bias correction
    ADDS beta * kl to the usual k3 gradient beta * (1 - exp(ref - logp)) (checked here against both).
  * Logged: kl = masked mean of per_token_kl (times coef_1 = 1) over all completion tokens;
    clip_ratio/low_mean, clip_ratio/high_mean, clip_ratio/region_mean (token means of
    coef_1 < 1-eps & A < 0, coef_1 > 1+eps & A > 0, either), clip_ratio/low_min and
    clip_ratio/high_max (min / max over sequences of the per-sequence means); all 0 on-policy.
    entropy = masked mean of the per-token entropy.
  * Reference with beta != 0 and a fresh adapter: adapter disabled (base model), no_grad. With
    beta == 0 (TRL's DEFAULT beta is 0.0) no reference forward happens at all. loss_beta0 here is
    the same trainer and batch with `trainer.beta = 0`.
  * Defaults that matter elsewhere: mask_truncated_completions False (a completion without EOS still
    counts; completion 1.3 here has no EOS), disable_dropout False, bf16 True (switched off here),
    scale_rewards "group", top_entropy_quantile 1.0, entropy_coef 0.

The tensors and metadata values are deterministic (fixed seeds; checked over repeated runs); the
files' bytes are not, because safetensors writes the __metadata__ map in hash order.

Usage: ~/.cache/corpus-peers/bin/python scripts/make-preference-fixtures.py [dpo|grpo ...]
(needs torch, transformers, peft, safetensors, trl, datasets, tokenizers)
"""
import json
import os
import sys
import tempfile
import warnings

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

import torch
import torch.nn.functional as F
import transformers
import peft
import trl
from datasets import Dataset
from peft import LoraConfig
from safetensors.torch import save_file
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer

transformers.logging.set_verbosity_error()

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TrainerTests", "Fixtures")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
COMMON = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=50, max_position_embeddings=64, rms_norm_eps=1e-5,
              rope_theta=10000.0)
RANK, ALPHA, RSLORA = 4, 8.0, False
PAD, UNK, EOS = 0, 1, 2
DPO_BETA = 0.1
GRPO_BETA, GRPO_EPSILON, GRPO_G = 0.04, 0.2, 4


def build_smollm(seed):
    """The tiny SmolLM2-style Llama of make-lora-fixtures.py, random weights from `seed`."""
    torch.manual_seed(seed)
    config = LlamaConfig(**COMMON, tie_word_embeddings=True, attention_bias=False)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    model = model.float()
    base = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
            if k != "lm_head.weight" and "rotary_emb" not in k}
    meta = {
        "config": json.dumps(dict(COMMON, model_type=config.model_type, tie_word_embeddings=True, attention_bias=False)),
        "config_json": config.to_json_string(),  # before TRL writes pad_token_id into the config
        "lora": json.dumps({"r": RANK, "lora_alpha": ALPHA, "use_rslora": RSLORA}),
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "versions": f"trl {trl.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
    }
    return model, base, meta


def lora_config():
    return LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, use_rslora=RSLORA, target_modules=TARGETS,
                      bias="none", task_type="CAUSAL_LM")


def tokenizer():
    """Word-level tokenizer: ids are the vocabulary; text "w7 w12 <eos>" is [7, 12, 2]."""
    vocab = {"<pad>": PAD, "<unk>": UNK, "<eos>": EOS}
    vocab.update({f"w{i}": i for i in range(3, COMMON["vocab_size"])})
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")


def text(ids):
    return " ".join("<eos>" if i == EOS else f"w{i}" for i in ids)


def randomize_b(peft_model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def adapter_tensors(peft_model, prefix=""):
    out = {}
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            out[prefix + key] = (p.detach() if not prefix else p.grad.detach()).float().clone().contiguous()
    return out


def zero_grads(model):
    for p in model.parameters():
        p.grad = None


def token_logps(model, ids):
    """Independent check: log p(ids[t+1] | ids[..t]) for t = 0..n-2 from plain logits, one unpadded sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False, fused_lm_head=False).logits[0].float()
    return F.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1)


def args_common(tmp):
    return dict(output_dir=tmp, report_to="none", use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
                seed=0, dataloader_num_workers=0, logging_steps=1, save_strategy="no")


def close(a, b, tol, what):
    a, b = float(a), float(b)
    if abs(a - b) > tol * max(1.0, abs(b)):
        raise SystemExit(f"cross-check failed: {what}: {a} vs {b}")


# ---------------------------------------------------------------------------------------------- DPO

def make_dpo(tmp):
    model, base, meta = build_smollm(seed=10)
    g = torch.Generator().manual_seed(110)

    def ids(n, eos):
        body = torch.randint(3, COMMON["vocab_size"], (n,), generator=g).tolist()
        return body[:-1] + [EOS] if eos else body

    # (prompt length, chosen length, rejected length): different prompt and answer lengths
    shapes = [(5, 4, 6), (3, 7, 2), (8, 3, 3)]
    pairs = [(ids(p, False), ids(c, True), ids(r, True)) for p, c, r in shapes]
    dataset = Dataset.from_dict({
        "prompt": [text(p) for p, _, _ in pairs],
        "chosen": [" " + text(c) for _, c, _ in pairs],
        "rejected": [" " + text(r) for _, _, r in pairs],
    })
    args = DPOConfig(**args_common(tmp), beta=DPO_BETA, loss_type=["sigmoid"], label_smoothing=0.0,
                     precompute_ref_log_probs=False, per_device_train_batch_size=len(pairs))
    trainer = DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer(),
                         peft_config=lora_config())
    peft_model = trainer.model
    assert isinstance(peft_model, peft.PeftModel) and trainer.ref_model is None
    assert "ref" not in peft_model.peft_config, "TRL made a 'ref' adapter: the reference would not be the base"
    randomize_b(peft_model, seed=211)

    # TRL's own preprocessing must give back exactly our ids (EOS already present: add_eos is a no-op).
    rows = [trainer.train_dataset[i] for i in range(len(pairs))]
    for (p, c, r), row in zip(pairs, rows):
        assert row["prompt_ids"] == p and row["chosen_ids"] == c and row["rejected_ids"] == r, (row, p, c, r)
    batch = trainer.data_collator([{k: row[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in rows])

    # Capture the per-token log-probs of TRL's two forwards inside _compute_loss (policy, then reference).
    captured = []
    hook = peft_model.register_forward_hook(lambda m, a, out: captured.append(out.log_probs.detach().clone()))
    peft_model.train()
    zero_grads(peft_model)
    loss = trainer.compute_loss(peft_model, batch)
    loss.backward()
    hook.remove()
    assert len(captured) == 2
    n = len(pairs)
    policy = captured[0].sum(1)
    reference = captured[1].sum(1)
    pc, pr, rc, rr = policy[:n], policy[n:], reference[:n], reference[n:]
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    # Cross-checks: TRL's loss and metrics from the captured sums, and the sums from plain logits.
    margin = DPO_BETA * ((pc - rc) - (pr - rr))
    close(loss.item(), (-F.logsigmoid(margin)).mean().item(), 1e-6, "DPO loss")
    close(metrics["rewards/chosen"], (DPO_BETA * (pc - rc)).mean().item(), 1e-6, "rewards/chosen")
    close(metrics["rewards/margins"], margin.mean().item(), 1e-6, "rewards/margins")
    for i, (p, c, r) in enumerate(pairs):
        for completion, trl_policy, trl_ref in ((c, pc[i], rc[i]), (r, pr[i], rr[i])):
            seq = p + completion
            ours = token_logps(peft_model, seq)[len(p) - 1:].sum()  # positions len(p)-1 ... len(seq)-2
            with peft_model.disable_adapter():
                ours_ref = token_logps(peft_model, seq)[len(p) - 1:].sum()
            close(trl_policy, ours, 1e-5, f"DPO policy logp pair {i}")
            close(trl_ref, ours_ref, 1e-5, f"DPO reference logp pair {i}")

    tensors = dict(base)
    tensors.update(adapter_tensors(peft_model))
    tensors.update(adapter_tensors(peft_model, prefix="grad."))
    for i, (p, c, r) in enumerate(pairs):
        tensors[f"dpo.prompt.{i}"] = torch.tensor(p, dtype=torch.float32)
        tensors[f"dpo.chosen.{i}"] = torch.tensor(c, dtype=torch.float32)
        tensors[f"dpo.rejected.{i}"] = torch.tensor(r, dtype=torch.float32)
    tensors["dpo.policy_chosen_logps"] = pc.float().contiguous()
    tensors["dpo.policy_rejected_logps"] = pr.float().contiguous()
    tensors["dpo.reference_chosen_logps"] = rc.float().contiguous()
    tensors["dpo.reference_rejected_logps"] = rr.float().contiguous()
    meta.update({
        "loss": repr(loss.item()),
        "rewards_chosen": repr(metrics["rewards/chosen"]),
        "rewards_rejected": repr(metrics["rewards/rejected"]),
        "rewards_accuracies": repr(metrics["rewards/accuracies"]),
        "rewards_margins": repr(metrics["rewards/margins"]),
        "logps_chosen": repr(metrics["logps/chosen"]),
        "logps_rejected": repr(metrics["logps/rejected"]),
        "beta": repr(DPO_BETA),
        "loss_type": "sigmoid",
    })
    path = os.path.join(OUT, "dpo-smollm.safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"{path}: loss {loss.item():.8f}, rewards chosen {metrics['rewards/chosen']:.6f} rejected "
          f"{metrics['rewards/rejected']:.6f} accuracy {metrics['rewards/accuracies']:.4f} margin "
          f"{metrics['rewards/margins']:.6f}; {len(tensors)} tensors, {os.path.getsize(path)} bytes", file=sys.stderr)


# --------------------------------------------------------------------------------------------- GRPO

def make_grpo(tmp):
    model, base, meta = build_smollm(seed=11)
    g = torch.Generator().manual_seed(111)

    def ids(n, eos=True):
        body = torch.randint(3, COMMON["vocab_size"], (n,), generator=g).tolist()
        return body[:-1] + [EOS] if eos else body

    prompts = [ids(4, eos=False), ids(6, eos=False)]
    # completion 1.3 ends without EOS (a truncated generation): it still counts (mask_truncated_completions False)
    completions = [[ids(3), ids(5), ids(2), ids(6)], [ids(4), ids(2), ids(5), ids(3, eos=False)]]
    rewards = [[1.0, 0.0, 0.5, 0.25], [0.7, 0.7, 0.7, 0.7]]  # group 1: equal rewards, advantages 0
    flat = [(i, j) for i in range(len(prompts)) for j in range(GRPO_G)]
    assert len({tuple(completions[i][j]) for i, j in flat}) == len(flat)
    reward_of = {tuple(completions[i][j]): rewards[i][j] for i, j in flat}
    prompt_index = {text(p): i for i, p in enumerate(prompts)}

    def rollout(batch_prompts, trainer):
        seen = [0] * len(prompts)
        out = {"prompt_ids": [], "completion_ids": [], "logprobs": None}
        for prompt in batch_prompts:
            i = prompt_index[prompt]
            out["prompt_ids"].append(list(prompts[i]))
            out["completion_ids"].append(list(completions[i][seen[i]]))
            seen[i] += 1
        return out

    def fixed_reward(prompts, completions, completion_ids, **kwargs):
        return [reward_of[tuple(c)] for c in completion_ids]

    dataset = Dataset.from_dict({"prompt": [text(p) for p in prompts]})
    args = GRPOConfig(**args_common(tmp), beta=GRPO_BETA, epsilon=GRPO_EPSILON, num_iterations=1,
                      num_generations=GRPO_G, per_device_train_batch_size=len(flat), max_completion_length=16)
    trainer = GRPOTrainer(model=model, reward_funcs=fixed_reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer(), peft_config=lora_config(), rollout_func=rollout)
    peft_model = trainer.model
    assert isinstance(peft_model, peft.PeftModel) and trainer.ref_model is None
    assert "ref" not in peft_model.peft_config
    randomize_b(peft_model, seed=211)
    peft_model.train()
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's loop sets for gradient_accumulation_steps=1

    # Inputs as TRL's RepeatSampler yields them: each prompt G times in a row.
    inputs = [{"prompt": text(prompts[i])} for i, _ in flat]
    batch = trainer._generate_and_score_completions(inputs)
    assert "old_per_token_logps" not in batch  # num_iterations 1: old = current, detached
    mask = batch["completion_mask"]
    for k, (i, j) in enumerate(flat):
        n = len(completions[i][j])
        assert batch["completion_ids"][k, :n].tolist() == completions[i][j] and mask[k].sum().item() == n
        assert batch["prompt_ids"][k][batch["prompt_mask"][k].bool()].tolist() == prompts[i]
    advantages = batch["advantages"].detach().clone()
    ref = batch["ref_per_token_logps"].detach().clone()

    zero_grads(peft_model)
    trainer._metrics["train"].clear()
    loss = trainer.compute_loss(peft_model, batch)
    loss.backward()
    grads = adapter_tensors(peft_model, prefix="grad.")
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}

    trainer.beta = 0.0  # the same trainer and batch without the KL term
    zero_grads(peft_model)
    loss0 = trainer.compute_loss(peft_model, batch)
    loss0.backward()
    grads0 = adapter_tensors(peft_model, prefix="grad.")
    trainer.beta = GRPO_BETA

    with torch.no_grad():
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        attention = torch.cat([batch["prompt_mask"], mask], 1)
        policy, _, _ = trainer._get_per_token_logps_and_entropies(peft_model, input_ids, attention,
                                                                  batch["completion_ids"].size(1))

    # Cross-checks: advantages, per-token log-probs from unpadded plain logits, the loss formula, and
    # the gradient of that formula (with and without the KL bias correction).
    r = torch.tensor(rewards).view(-1, GRPO_G)
    expected_adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=True, keepdim=True) + 1e-4)).view(-1)
    assert torch.allclose(advantages, expected_adv, atol=1e-6), (advantages, expected_adv)
    assert torch.all(advantages[GRPO_G:] == 0)
    for k, (i, j) in enumerate(flat):
        seq, n, p = prompts[i] + completions[i][j], len(completions[i][j]), len(prompts[i])
        ours = token_logps(peft_model, seq)[p - 1:]
        with peft_model.disable_adapter():
            ours_ref = token_logps(peft_model, seq)[p - 1:]
        assert torch.allclose(policy[k, :n], ours, atol=1e-5), (policy[k, :n], ours)
        assert torch.allclose(ref[k, :n], ours_ref, atol=1e-5), (ref[k, :n], ours_ref)
    m = mask.float()
    kl = torch.exp(ref - policy) - (ref - policy) - 1
    A = advantages.unsqueeze(1)
    close(loss.item(), (((-A + GRPO_BETA * kl) * m).sum() / m.sum()).item(), 1e-6, "GRPO loss")
    close(loss0.item(), ((-A * m).sum() / m.sum()).item(), 1e-6, "GRPO loss beta 0")
    close(metrics["kl"], ((kl * m).sum() / m.sum()).item(), 1e-6, "GRPO kl")

    def formula_grads(bias_correction):
        zero_grads(peft_model)
        logp, _, _ = trainer._get_per_token_logps_and_entropies(peft_model, input_ids, attention,
                                                                batch["completion_ids"].size(1))
        ratio = torch.exp(logp - logp.detach())
        k3 = torch.exp(ref - logp) - (ref - logp) - 1
        per_token = -ratio * A + GRPO_BETA * k3 * (ratio if bias_correction else 1)
        ((per_token * m).sum() / m.sum()).backward()
        return adapter_tensors(peft_model, prefix="grad.")

    def worst(a, b):
        return max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in b)

    with_bc, without_bc = formula_grads(True), formula_grads(False)
    if worst(with_bc, grads) > 1e-5:
        raise SystemExit(f"cross-check failed: GRPO gradients vs formula: {worst(with_bc, grads)}")
    print(f"GRPO: formula with KL bias correction matches TRL's gradients to {worst(with_bc, grads):.2e}; "
          f"without it they differ by {worst(without_bc, grads):.2e}", file=sys.stderr)

    tensors = dict(base)
    tensors.update(adapter_tensors(peft_model))
    tensors.update(grads)
    tensors.update({"beta0." + k: v for k, v in grads0.items()})
    for i, p in enumerate(prompts):
        tensors[f"grpo.prompt.{i}"] = torch.tensor(p, dtype=torch.float32)
    for k, (i, j) in enumerate(flat):
        n = len(completions[i][j])
        tensors[f"grpo.completion.{i}.{j}"] = torch.tensor(completions[i][j], dtype=torch.float32)
        tensors[f"grpo.policy_logps.{i}.{j}"] = policy[k, :n].float().contiguous()
        tensors[f"grpo.reference_logps.{i}.{j}"] = ref[k, :n].float().contiguous()
    tensors["grpo.rewards"] = torch.tensor([rewards[i][j] for i, j in flat], dtype=torch.float32)
    tensors["grpo.advantages"] = advantages.float().contiguous()
    clip = {k: v for k, v in metrics.items() if k.startswith("clip_ratio/")}
    meta.update({
        "loss": repr(loss.item()),
        "loss_beta0": repr(loss0.item()),
        "kl": repr(metrics["kl"]),
        "clip_ratio": json.dumps(clip),
        "entropy": repr(metrics["entropy"]),
        "loss_type": trainer.loss_type,
        "scale_rewards": trainer.scale_rewards,
        "beta": repr(GRPO_BETA),
        "epsilon": repr(trainer.epsilon_low),
        "epsilon_high": repr(trainer.epsilon_high),
        "num_iterations": str(trainer.num_iterations),
        "temperature": repr(trainer.temperature),
        "use_bias_correction_kl": json.dumps(bool(args.use_bias_correction_kl)),
        "num_items_in_batch": str(int(batch["num_items_in_batch"].item())),
    })
    path = os.path.join(OUT, "grpo-smollm.safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"{path}: loss_type {trainer.loss_type}, scale_rewards {trainer.scale_rewards}, loss {loss.item():.8f}, "
          f"loss beta 0 {loss0.item():.8f}, kl {metrics['kl']:.8f}, clip {clip}, advantages "
          f"{[round(a, 6) for a in advantages.tolist()]}; {len(tensors)} tensors, {os.path.getsize(path)} bytes",
          file=sys.stderr)


def main():
    os.makedirs(OUT, exist_ok=True)
    kinds = sys.argv[1:] or ["dpo", "grpo"]
    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory(prefix="corpus-trl-") as tmp:
        if "dpo" in kinds:
            make_dpo(tmp)
        if "grpo" in kinds:
            make_grpo(tmp)


if __name__ == "__main__":
    main()
