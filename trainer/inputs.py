"""The inputs of a run, checked before any weight is loaded: the model folder, the tokenizer and its chat
template, the records read, rendered and labelled, and the checks on the result (skipped share, end-of-sequence
tokens, padding)."""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.methods import method
from core.train_config import TrainConfig


def prepare_data(cfg: TrainConfig, progress: bool = False, force: bool = False):
    """The model folder, tokenizer and template checked, the data read, rendered and labelled, and the checks on
    the result (skipped share, end-of-sequence tokens, padding)."""
    from core.data.detect import trainable_format
    from trainer.data import prepare_for
    from trainer.model import check_model_folder, load_tokenizer
    from trainer.preflight import (
        check_chat_template,
        check_eos,
        check_pad_masking,
        check_skipped,
        check_worth_training,
    )

    check_model_folder(cfg.model.path, cfg.model.trust_remote_code)
    if method(cfg.method.name).quantized_base:
        from trainer.model import require_bitsandbytes

        require_bitsandbytes()
    if not Path(cfg.data.path).is_file():
        raise UserError(f"data.path `{cfg.data.path}` does not exist")
    tok = load_tokenizer(cfg)
    fmt = trainable_format(cfg.data.path, cfg.data.format, cfg.data.layout(), cfg.data.columns_origin)
    check_chat_template(tok, fmt)
    prepared = prepare_for(cfg, tok, progress=progress, fmt=fmt)
    d = cfg.data
    check_skipped(prepared, d.path, d.max_skipped)
    check_worth_training(prepared, d.path, d.max_skipped, force)
    check_eos(prepared, tok, cfg.model.path, d.max_seq_len)
    check_pad_masking(prepared, tok)
    return tok, prepared
