#!/usr/bin/env python3
"""Writes examples/grpo/dosage_zh.jsonl: Chinese questions with checkable answers, written for
this project (no third-party text), for the GRPO worked example in docs/TRAINING.md.

Each line is {"question": ..., "answer": ...}: a short medication-arithmetic or plain
arithmetic question ("患者每次服用 2 片，每天 3 次，连续 5 天，一共需要多少片？") and its worked
answer as an equation ("2 × 3 × 5 = 30片"); half are plain sums and products ("计算：17 + 25 = ？",
"计算：6 × 7 = ？"). The reward `extract:=\\s*(\\d+)` compares the first number after an "=" in
the model's answer with the one in the reference, so an answer is right when its equation gives
the correct figure; one without an equation, or with a wrong result, scores 0.

Deterministic (seeded); rerunning writes the same bytes.

Usage: python3 scripts/make-grpo-example.py [OUT]   (default examples/grpo/dosage_zh.jsonl)
"""
import json
import os
import random
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "grpo", "dosage_zh.jsonl")

DRUGS = ["阿莫西林", "布洛芬", "二甲双胍", "氨氯地平", "维生素C", "奥美拉唑", "头孢克肟", "对乙酰氨基酚"]
UNITS = ["片", "粒", "袋"]


def questions(rng):
    out = []
    for _ in range(60):
        dose, times, days = rng.randint(1, 3), rng.randint(2, 4), rng.randint(2, 7)
        drug, unit = rng.choice(DRUGS), rng.choice(UNITS)
        total = dose * times * days
        out.append((f"患者服用{drug}，每次{dose}{unit}，每天{times}次，连续{days}天，一共需要多少{unit}？",
                    f"{dose} × {times} × {days} = {total}{unit}"))
    for _ in range(40):
        mg, count = rng.choice([100, 125, 200, 250, 500]), rng.randint(2, 4)
        drug = rng.choice(DRUGS)
        out.append((f"{drug}每片{mg}毫克，一次吃{count}片，一次一共多少毫克？", f"{mg} × {count} = {mg * count}毫克"))
    for _ in range(100):
        if rng.random() < 0.5:
            a, b = rng.randint(2, 30), rng.randint(2, 30)
            out.append((f"计算：{a} + {b} = ？", f"{a} + {b} = {a + b}"))
        else:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            out.append((f"计算：{a} × {b} = ？", f"{a} × {b} = {a * b}"))
    rng.shuffle(out)
    return out


def main():
    rng = random.Random(20261203)
    rows = questions(rng)
    os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for q, a in rows:
            f.write(json.dumps({"question": q, "answer": a}, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(rows)} questions to {OUT}")


if __name__ == "__main__":
    main()
