"""Tiny local models for tests, the demo and benchmarks: a fast byte-level BPE tokenizer trained in
milliseconds, a ChatML chat template, and a small Llama pre-trained for a few hundred steps on CPU.
Nothing is downloaded."""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def general_corpus() -> list[str]:
    """The small general-text corpus shipped with tunewise (for pre-training and the forgetting check)."""
    text = resources.files("trainer").joinpath("assets/general_text.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def build_tokenizer(texts: list[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, texts: list[str] | None = None, *, hidden: int = 64, layers: int = 2,
                     heads: int = 4, kv_heads: int = 2, intermediate: int = 176, vocab_size: int = 1024,
                     pretrain_steps: int = 200, seed: int = 0, log=None, model_vocab_size: int | None = None) -> Path:
    """Train a tokenizer on `texts` (+ the general corpus), build a small Llama, pre-train it, save it
    as a normal local model folder (config.json, model.safetensors, tokenizer files)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    corpus = general_corpus()
    texts = list(texts or []) + corpus
    tok = build_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=max(model_vocab_size or 0, len(tok)), hidden_size=hidden, intermediate_size=intermediate,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=1024, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    if pretrain_steps:
        pretrain(model, tok, texts, pretrain_steps, seed, log)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def pretrain(model, tok, texts: list[str], steps: int, seed: int = 0, log=None, batch: int = 16, seq: int = 96):
    """Plain next-token pre-training on `texts` (so that adapters have something to adapt)."""
    import torch

    rng = random.Random(seed)
    ids = [tok(t + tok.eos_token, add_special_tokens=False)["input_ids"] for t in texts]
    stream = [i for seq_ids in ids for i in seq_ids]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        starts = [rng.randrange(0, max(1, len(stream) - seq - 1)) for _ in range(batch)]
        x = torch.tensor([stream[s:s + seq] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if log and (step % 50 == 0 or step == steps - 1):
            log(step, float(loss))
    model.eval()
    return model
