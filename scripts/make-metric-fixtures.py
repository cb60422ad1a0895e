#!/usr/bin/env python3
"""Reference values for the evaluation text metrics (Sources/Trainer/Eval/Metrics.swift).

Writes Tests/TrainerTests/Fixtures/metrics/reference.json: ~60 prediction/reference pairs
(hand-picked Chinese medical and legal answers, English sentences, edge cases, and generated
edits of Chinese answers), each with its tokens and the values computed by the real libraries:

  * ROUGE-L: rouge-score's RougeScorer(["rougeL"]) with a tokenizer object that returns our
    tokens (and, for pure-ASCII texts, also rouge-score's own default tokenizer on the raw text,
    which this script asserts yields the same tokens and numbers);
  * BLEU: sacrebleu.sentence_bleu / corpus_bleu with tokenize="none" on the space-joined tokens
    (defaults otherwise: smooth_method="exp", sentence-level use_effective_order=True,
    corpus-level use_effective_order=False), divided by 100.

Exact match, length ratio and the paired bootstrap are our own definitions (no library defines
them the same way); this script is their second, independent implementation.

Usage (the venv used for every reference script of the project):
  ~/.cache/corpus-peers/venv/bin/pip install rouge-score==0.1.2 sacrebleu==2.6.0
  ~/.cache/corpus-peers/venv/bin/python scripts/make-metric-fixtures.py
"""

import json
import os
import random
import sys
import unicodedata
from importlib.metadata import version

import sacrebleu
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize

# ---------------------------------------------------------------------------------------------
# Tokenization (docs/EVAL_METRICS.md, "Tokens"). Mirrors TextMetrics.tokens in Swift.

# Scripts written without spaces: every letter (or Nl/Nd) code point in these blocks is a token.
CJK_RANGES = [
    (0x1100, 0x11FF),    # Hangul Jamo
    (0x2E80, 0x2FDF),    # CJK Radicals Supplement, Kangxi Radicals
    (0x3005, 0x3007),    # 々 〆 〇
    (0x3021, 0x3029),    # Hangzhou numerals
    (0x3038, 0x303C),    # more Hangzhou numerals, 〻 〼
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x3130, 0x318F),    # Hangul Compatibility Jamo
    (0x31F0, 0x31FF),    # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),    # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xA960, 0xA97F),    # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),    # Hangul Syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0xFF66, 0xFFDC),    # halfwidth Katakana and Hangul (NFKC maps most of them away)
    (0x1B000, 0x1B16F),  # Kana Supplement, Kana Extended-A, Small Kana Extension
    (0x20000, 0x323AF),  # CJK Unified Ideographs Extensions B-H, Compatibility Supplement
]


def is_cjk(ch):
    cp = ord(ch)
    if not any(lo <= cp <= hi for lo, hi in CJK_RANGES):
        return False
    cat = unicodedata.category(ch)
    return cat[0] == "L" or cat in ("Nl", "Nd")


def tokens(text):
    """NFKC; each CJK ideograph/kana/hangul is a token; maximal runs of other letters (L*),
    decimal digits (Nd) and marks (M*, only inside a run) are word tokens, lower-cased code
    point by code point; everything else (punctuation, symbols, whitespace) separates and is
    dropped."""
    out, word = [], []

    def flush():
        if word:
            out.append("".join(word))
            word.clear()

    for ch in unicodedata.normalize("NFKC", text):
        cat = unicodedata.category(ch)
        if is_cjk(ch):
            flush()
            out.append(ch)
        elif cat[0] == "L" or cat == "Nd" or (cat[0] == "M" and word):
            word.append(ch.lower())  # one code point at a time: no context-dependent final sigma
        else:
            flush()
    flush()
    return out


# Unicode White_Space (PropList.txt), the set Swift's Unicode.Scalar.Properties.isWhitespace uses.
WHITE_SPACE = set(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                            0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))
TRAILING = set(".,;:!?。、~") | WHITE_SPACE


def normalize_for_match(text):
    """NFKC, lower-cased code point by code point, White_Space runs collapsed to one space and
    trimmed, then trailing sentence punctuation (. , ; : ! ? 。 、 ~ after NFKC) removed."""
    t = "".join(ch.lower() for ch in unicodedata.normalize("NFKC", text))
    parts, cur = [], []
    for ch in t:
        if ch in WHITE_SPACE:
            if cur:
                parts.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur))
    t = " ".join(parts)
    while t and t[-1] in TRAILING:
        t = t[:-1]
    return t


def length_ratio(p, r):
    if not r:
        return 1.0 if not p else float(len(p))
    return len(p) / len(r)


# ---------------------------------------------------------------------------------------------
# The paired bootstrap, a second implementation of TextMetrics.pairedBootstrap.

MASK = (1 << 64) - 1


class MetricRandom:
    """SplitMix64 (Steele, Lea, Flood 2014; the constants of Vigna's splitmix64.c)."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        """Uniform in [0, n): Lemire's multiply-shift with rejection (arXiv:1805.10941)."""
        m = self.next() * n
        if (m & MASK) < n:
            t = ((1 << 64) - n) % n
            while (m & MASK) < t:
                m = self.next() * n
        return m >> 64


def quantile(sorted_values, q):
    h = (len(sorted_values) - 1) * q
    lo = int(h)
    if lo + 1 >= len(sorted_values):
        return sorted_values[lo]
    return sorted_values[lo] + (h - lo) * (sorted_values[lo + 1] - sorted_values[lo])


def mean(values):
    s = 0.0
    for v in values:
        s += v
    return s / len(values)


def paired_bootstrap(a, b, resamples, seed):
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    rng = MetricRandom(seed)
    means = []
    for _ in range(resamples):
        s = 0.0
        for _ in range(n):
            s += d[rng.below(n)]
        means.append(s / n)
    means.sort()
    return mean(d), quantile(means, 0.025), quantile(means, 0.975)


# ---------------------------------------------------------------------------------------------
# Cases.

HAND = [
    # (group, prediction, reference)
    ("zh", "高血压患者一般可以适量食用党参，但需注意血压变化。", "高血压患者可以少量食用党参，但要监测血压。"),
    ("zh", "建议多喝水，注意休息，必要时服用退烧药。", "多喝水，多休息，体温超过38.5℃时可以服用退烧药。"),
    ("zh", "糖尿病患者应控制饮食，规律服药，定期监测血糖。", "糖尿病患者需要控制饮食、规律用药并定期监测血糖。"),
    ("zh", "孕妇不建议服用布洛芬，尤其是孕晚期。", "孕晚期禁用布洛芬，孕早期和中期也应在医生指导下使用。"),
    ("zh", "胃痛可能与胃炎有关，建议做胃镜检查。", "胃痛的原因很多，常见的有胃炎、胃溃疡等，建议到消化内科就诊，必要时做胃镜。"),
    ("zh", "阿莫西林是一种青霉素类抗生素。", "阿莫西林属于青霉素类抗生素，青霉素过敏者禁用。"),
    ("zh", "建议服用阿司匹林100mg，每日一次。", "阿司匹林 100 mg qd，饭后服用。"),
    ("zh", "CT检查显示肺部有结节，直径约5mm。", "ＣＴ检查提示肺部结节，直径约５ｍｍ，建议定期复查。"),
    ("zh", "感冒一般七天左右自愈。", "普通感冒通常7到10天可以自愈。"),
    ("zh", "血压140/90mmHg属于高血压。", "收缩压≥140mmHg和/或舒张压≥90mmHg即可诊断为高血压。"),
    ("zh", "根据《民法典》第一千零七十九条，夫妻一方要求离婚的，可以向人民法院提起诉讼。",
     "依据《中华人民共和国民法典》第1079条，夫妻一方要求离婚的，可以由有关组织进行调解或者直接向人民法院提起离婚诉讼。"),
    ("zh", "劳动合同到期不续签，用人单位应当支付经济补偿。", "劳动合同期满，用人单位不续订的，应当向劳动者支付经济补偿，但用人单位维持或者提高劳动合同约定条件续订而劳动者不同意续订的除外。"),
    ("zh", "借款合同的诉讼时效为三年。", "民间借贷的诉讼时效期间为三年，自权利人知道或者应当知道权利受到损害以及义务人之日起计算。"),
    ("zh", "交通事故责任由交警部门认定。", "道路交通事故的责任由公安机关交通管理部门认定。"),
    ("zh", "可以申请劳动仲裁。", "可以向劳动争议仲裁委员会申请劳动仲裁。"),
    ("zh", "未成年人不能签合同。", "八周岁以上的未成年人为限制民事行为能力人，可以独立实施纯获利益的民事法律行为。"),
    ("en", "The patient should take the medicine twice a day.", "The patient should take this medicine two times a day."),
    ("en", "Hypertension is a chronic condition.", "Hypertension, or high blood pressure, is a long-term condition."),
    ("en", "the cat is on the mat", "the cat sat on the mat"),
    ("en", "It's not recommended for children under 12.", "It is not recommended for children under 12 years old!"),
    ("en", "Drink plenty of fluids and rest.", "Rest and drink plenty of fluids."),
    ("en", "The contract is void.", "Under Article 153, a contract that violates a mandatory provision of law is void."),
    ("en", "Take 500mg of paracetamol every 6 hours, max 4g/day.", "Paracetamol: 500 mg every 6 hours; do not exceed 4 g per day."),
    ("en", "The Patient HAS Fever.", "the patient has fever"),
    # identical, empty, no overlap
    ("zh", "高血压患者应低盐饮食。", "高血压患者应低盐饮食。"),
    ("en", "Seek medical attention immediately.", "Seek medical attention immediately."),
    ("zh", "", "高血压患者应低盐饮食。"),
    ("zh", "高血压患者应低盐饮食。", ""),
    ("en", "", ""),
    ("zh", "今天天气很好。", "请遵医嘱服药。"),
    ("en", "completely unrelated words here", "the medicine treats infection"),
    ("zh", "。。。！", "好的。"),
    # repeated tokens: clipping
    ("en", "the the the the the the the", "the cat is on the mat"),
    ("zh", "的的的的的的", "我的书的封面"),
    ("zh", "高血压高血压高血压高血压", "高血压是常见病"),
    ("en", "yes yes yes", "yes"),
    # very short: smoothing and effective order
    ("zh", "是", "是的"),
    ("zh", "是的", "是"),
    ("en", "yes", "yes"),
    ("en", "no", "yes"),
    ("zh", "高血压", "高血压病"),
    ("zh", "不能", "可以"),
    ("en", "take aspirin", "take aspirin daily"),
    ("zh", "多喝水", "多喝热水"),
    # other scripts and Unicode details
    ("ja", "高血圧の患者は塩分を控えてください。", "高血圧の方は塩分を控えめにしてください。"),
    ("ko", "고혈압 환자는 소금을 줄여야 합니다.", "고혈압 환자는 염분 섭취를 줄이세요."),
    ("other", "Café naïve résumé", "cafe naive resume"),
    ("other", "ΟΔΟΣ Σοφίας", "οδος σοφιας"),
    ("zh", "高血压　患者\t可以\n吃党参", "高血压患者可以吃党参"),
    ("zh", "①每日一次；②饭后服用", "1每日一次2饭后服用"),
    ("ja", "ｶﾞｲﾄﾞﾗｲﾝに従う", "ガイドラインに従う"),  # halfwidth kana + voiced marks compose under NFKC
]

GENERATOR_BASES = [
    "高血压患者应坚持低盐低脂饮食，适量运动，戒烟限酒，并按时服用降压药物。",
    "糖尿病患者出现伤口不愈合时，应及时到内分泌科就诊，控制血糖后再处理创面。",
    "当事人对一审判决不服的，有权在判决书送达之日起十五日内向上一级人民法院提起上诉。",
    "房屋租赁合同未约定租期的，视为不定期租赁，双方均可以随时解除合同，但应当在合理期限之前通知对方。",
    "儿童发热超过三十八点五度时，可以在医生指导下使用对乙酰氨基酚或布洛芬退热。",
]
FILLERS = list("的了是在和也就都而及与或但需要可能建议应该")


def perturb(rng, text):
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        op = rng.choice(["delete", "substitute", "insert", "swap", "repeat", "truncate"])
        if not chars:
            break
        i = rng.randrange(len(chars))
        if op == "delete":
            del chars[i]
        elif op == "substitute":
            chars[i] = rng.choice(FILLERS)
        elif op == "insert":
            chars.insert(i, rng.choice(FILLERS))
        elif op == "swap" and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == "repeat":
            j = min(len(chars), i + rng.randint(1, 4))
            chars[i:i] = chars[i:j]
        elif op == "truncate" and len(chars) > 6:
            chars = chars[: rng.randint(len(chars) // 2, len(chars))]
    return "".join(chars)


# Characters whose tokenization depends on Unicode tables (NFKC, categories, case mapping): mixed
# at random to check that Swift and Python agree beyond the hand-picked cases.
UNICODE_POOL = list("高血压患者の한국ＡＢｃ１２３ＸⅫ①²½ﬁÉéÅǅİΣσς·・ー々〇〆，。、！？；：（）《》“”…—～％℃㎎\u3000\u00a0\t\n"
                    "e\u0301a\u0308\u200b\u200d\U0001F600\U00020000\u0e01\u0e32\ufb01\u2160ｶﾞﾊﾟ") + \
               ["mg", "CT", "Hello", "ΟΔΟΣ", "straße", "100", "3.5", "e-mail", " ", " ", " "]


def unicode_mix_cases():
    rng = random.Random(5)
    cases = []
    for _ in range(6):
        ref = "".join(rng.choice(UNICODE_POOL) for _ in range(rng.randint(5, 25)))
        pred = "".join(rng.choice(UNICODE_POOL) if rng.random() < 0.3 else ch for ch in ref)
        cases.append(("unicode-mix", pred, ref))
    return cases


def generated_cases():
    rng = random.Random(20261202)
    cases = []
    for k in range(15):
        ref = GENERATOR_BASES[k % len(GENERATOR_BASES)]
        cases.append(("zh-generated", perturb(rng, ref), ref))
    return cases + unicode_mix_cases()


class OurTokenizer:
    """The tokenizer object rouge-score accepts (anything with .tokenize(text))."""

    def tokenize(self, text):
        return tokens(text)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "Tests", "TrainerTests", "Fixtures", "metrics")
    os.makedirs(out_dir, exist_ok=True)

    ours = rouge_scorer.RougeScorer(["rougeL"], tokenizer=OurTokenizer())
    default = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    bleu_sentence = sacrebleu.BLEU(tokenize="none", effective_order=True)  # sentence_bleu's settings

    cases = []
    for group, pred, ref in HAND + generated_cases():
        pt, rt = tokens(pred), tokens(ref)
        rl = ours.score(ref, pred)["rougeL"]  # rouge-score takes (target, prediction)
        sb = sacrebleu.sentence_bleu(" ".join(pt), [" ".join(rt)], tokenize="none")
        stats = bleu_sentence._extract_corpus_statistics([" ".join(pt)], [[" ".join(rt)]])[0]
        case = {
            "group": group,
            "prediction": pred,
            "reference": ref,
            "prediction_tokens": pt,
            "reference_tokens": rt,
            "rougeL": {"precision": rl.precision, "recall": rl.recall, "f": rl.fmeasure},
            "bleu": sb.score / 100.0,
            "bleu_stats": [int(x) for x in stats],  # sys_len, ref_len, correct[1..4], total[1..4]
            "exact_match": normalize_for_match(pred) == normalize_for_match(ref),
            "normalized_prediction": normalize_for_match(pred),
            "normalized_reference": normalize_for_match(ref),
            "length_ratio": length_ratio(pt, rt),
        }
        # The same numbers bit for bit (float.hex), since JSON parsers may round decimals by an ulp.
        case["hex"] = {"rouge_precision": float(rl.precision).hex(), "rouge_recall": float(rl.recall).hex(),
                       "rouge_f": float(rl.fmeasure).hex(), "bleu": case["bleu"].hex(),
                       "length_ratio": case["length_ratio"].hex()}
        if pred.isascii() and ref.isascii():
            # On ASCII text our tokens are rouge-score's own tokenizer's (no stemming).
            assert rouge_tokenize.tokenize(pred, None) == pt, (pred, pt)
            assert rouge_tokenize.tokenize(ref, None) == rt, (ref, rt)
            d = default.score(ref, pred)["rougeL"]
            assert d.fmeasure == rl.fmeasure, (pred, ref)
            case["rougeL_default_tokenizer"] = d.fmeasure
        cases.append(case)

    def corpus(selected):
        hyps = [" ".join(c["prediction_tokens"]) for c in selected]
        refs = [" ".join(c["reference_tokens"]) for c in selected]
        return sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score / 100.0

    indices = {
        "all": list(range(len(cases))),
        "zh": [i for i, c in enumerate(cases) if c["group"].startswith("zh")],
        "en": [i for i, c in enumerate(cases) if c["group"] == "en"],
        "short": [i for i, c in enumerate(cases) if len(c["prediction_tokens"]) < 4],
    }
    corpora = []
    for k, v in indices.items():
        value = corpus([cases[i] for i in v])
        corpora.append({"name": k, "cases": v, "bleu": value, "bleu_hex": value.hex()})

    rng = random.Random(99)
    a = [rng.random() for _ in range(40)]
    b = [x - 0.1 + rng.uniform(-0.2, 0.2) for x in a]
    rl = [c["rougeL"]["f"] for c in cases]
    bl = [c["bleu"] for c in cases]
    bootstrap = []
    for name, xa, xb, resamples, seed in [
        ("random-40", a, b, 1000, 42),
        ("rougeL-vs-bleu", rl, bl, 1000, 7),
        ("tiny", [1.0, 0.0, 0.5], [0.5, 0.5, 0.5], 200, 2**64 - 1),
    ]:
        delta, low, high = paired_bootstrap(xa, xb, resamples, seed)
        bootstrap.append({"name": name, "a": xa, "b": xb, "resamples": resamples, "seed": str(seed),
                          "delta": delta, "low": low, "high": high,
                          "hex": {"delta": delta.hex(), "low": low.hex(), "high": high.hex()}})
    rng_check = MetricRandom(0)
    first = [str(rng_check.next()) for _ in range(3)]

    doc = {
        "generator": "scripts/make-metric-fixtures.py",
        "versions": {"python": sys.version.split()[0], "unicodedata": unicodedata.unidata_version,
                     "rouge-score": version("rouge-score"), "sacrebleu": sacrebleu.__version__},
        "settings": {
            "rouge": "RougeScorer(['rougeL'], tokenizer=<our tokens>); score(reference, prediction)",
            "sentence_bleu": "sacrebleu.sentence_bleu(' '.join(pred_tokens), [' '.join(ref_tokens)], tokenize='none')"
                             " (smooth_method='exp', use_effective_order=True) / 100",
            "corpus_bleu": "sacrebleu.corpus_bleu(hyps, [refs], tokenize='none')"
                           " (smooth_method='exp', use_effective_order=False) / 100",
        },
        "cases": cases,
        "corpora": corpora,
        "bootstrap": bootstrap,
        "splitmix64_seed0_first3": first,
    }
    path = os.path.join(out_dir, "reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{path}: {len(cases)} cases, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
