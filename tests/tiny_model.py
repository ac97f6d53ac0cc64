"""A tiny but real chat model for fast tests: a trained sentencepiece tokenizer and random weights.

`build_tiny_model(folder)` takes about a second: it trains a byte-fallback BPE tokenizer on
generated English-ish lines, wraps it as a `LlamaTokenizer` with a ChatML chat template, builds a
randomly initialised `LlamaForCausalLM` of about 1.8 M parameters (fixed seed), and saves both
with `save_pretrained`, so the folder loads like any Hugging Face checkpoint.

Random weights would mostly pick the 256 byte-fallback tokens (half the vocabulary), whose random
sequences are rarely valid UTF-8; their output rows are damped so that replies are mostly word
pieces. Multi-byte text is tested by encoding it, not by hoping the model emits it.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import sentencepiece
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

VOCAB_SIZE = 500
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A Hermes / Qwen 2.5-style template: it writes `tools` into the system turn and asks for calls
# in <tool_call> blocks (shortened from Qwen2.5-Instruct's).
HERMES_TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n\n{% endif %}"
    "# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n"
    "<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
    "{% elif messages[0]['role'] == 'system' %}"
    "<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}{% if not (message['role'] == 'system' and loop.first) %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TOOL_CALL_TOKENS = ("<tool_call>", "</tool_call>")  # added, not special: decoding keeps them
SEED = 1234

_WORDS = (
    "hello hi hey thanks please yes no maybe sure good great fine nice day night morning "
    "weather rain sun cloud tea coffee cat dog bird book story song code bug test team chat "
    "bot model reply message question answer friend meeting lunch today tomorrow time help "
    "I you we they it is are was be have do can will would like love want need know think"
).split()


def _corpus(lines: int, rng: random.Random) -> list[str]:
    """Sentences of random words: enough structure for BPE merges; ASCII only, so any other
    character goes through byte fallback (which the streaming tests rely on)."""
    sentences = []
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 12))]
        sentences.append(" ".join(words).capitalize() + rng.choice(".?!,"))
    return sentences


def _train_tokenizer(folder: Path) -> LlamaTokenizer:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(3000, random.Random(SEED))),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        byte_fallback=True,
        character_coverage=1.0,
        user_defined_symbols=[IM_START, IM_END],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    tokenizer = LlamaTokenizer.from_pretrained(
        folder, eos_token=IM_END, extra_special_tokens=[IM_START, IM_END]
    )
    # Without protobuf the sentencepiece model cannot be read and the tokenizer silently ends up
    # with only its 3 default tokens.
    assert len(tokenizer) == VOCAB_SIZE, (
        f"tokenizer has {len(tokenizer)} tokens (protobuf missing?)"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_model(folder: Path, *, tools: bool = False) -> Path:
    """Write a tiny ChatML chat model (tokenizer and random weights) into `folder`; return it.
    With `tools`, its chat template takes tools (HERMES_TOOLS_TEMPLATE) and its vocabulary has
    the <tool_call> tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(folder)
    if tools:
        tokenizer.add_tokens(list(TOOL_CALL_TOKENS))
        tokenizer.chat_template = HERMES_TOOLS_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config).eval()
    byte_ids = tokenizer.convert_tokens_to_ids([f"<0x{byte:02X}>" for byte in range(256)])
    with torch.no_grad():
        model.lm_head.weight[byte_ids] *= 0.1
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
