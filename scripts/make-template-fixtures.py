#!/usr/bin/env python3
"""Writes Tests/TrainerTests/Fixtures/chat-templates.json: conversations rendered by model families'
Jinja chat templates, the way transformers' apply_chat_template renders them (jinja2 sandbox with
trim_blocks and lstrip_blocks), so the Swift templates can be compared with the real thing.

    ~/.cache/corpus-venv/bin/python scripts/make-template-fixtures.py [SmolLM2.gguf]

Templates: SmolLM2's own (read from the test model's GGUF), Qwen2-Instruct's, Meta Llama 3
Instruct's and Mistral-7B-Instruct-v0.1's (the published tokenizer_config.json chat_template
strings, written out below). The Jinja texts are kept in the fixture so the Swift test can also
check that each is recognized as the right template.
"""
import json
import os
import sys

import gguf
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/corpus/models/SmolLM2-135M-Instruct.Q4_1.gguf")

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
         "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
          "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% for message in messages %}"
           "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
           "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
           "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
           "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
           "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a careful doctor."},
     {"role": "user", "content": "头痛怎么办？"},
     {"role": "assistant", "content": "多休息，多喝水。如果持续三天以上，请就医。"}],
    [{"role": "user", "content": "  Spaces around  "},
     {"role": "assistant", "content": "\n Answer with spaces \n"},
     {"role": "user", "content": "And a second question?"},
     {"role": "assistant", "content": "A second answer."}],
]


def render(template, messages, generation, bos, eos):
    def raise_exception(message):
        raise ValueError(message)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=generation,
                                            bos_token=bos, eos_token=eos)


def main():
    reader = gguf.GGUFReader(MODEL)
    field = reader.fields["tokenizer.chat_template"]
    smollm2 = bytes(field.parts[field.data[0]]).decode("utf-8")
    templates = {
        "smollm2": (smollm2, "chatml", "", "<|im_end|>"),
        "qwen2": (QWEN2, "chatml", "", "<|im_end|>"),
        "llama3": (LLAMA3, "llama3", "<|begin_of_text|>", "<|eot_id|>"),
        "mistral": (MISTRAL, "mistral", "<s>", "</s>"),
    }
    out = {"source": "scripts/make-template-fixtures.py (jinja2 sandbox, trim_blocks, lstrip_blocks)",
           "conversations": CONVERSATIONS, "templates": {}}
    for name, (jinja, kind, bos, eos) in templates.items():
        rendered = []
        for i, conversation in enumerate(CONVERSATIONS):
            for generation in (False, True):
                if name == "mistral" and any(m["role"] == "system" for m in conversation):
                    continue  # Mistral v0.1's template refuses system messages
                if generation and conversation[-1]["role"] == "assistant":
                    continue
                rendered.append({"conversation": i, "generation_prompt": generation,
                                 "text": render(jinja, conversation, generation, bos, eos)})
        out["templates"][name] = {"jinja": jinja, "kind": kind, "bos": bos, "eos": eos, "rendered": rendered}
    path = os.path.join(ROOT, "Tests", "TrainerTests", "Fixtures", "chat-templates.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
