"""`tunewise merge OUT_DIR`: fold a LoRA adapter into its base model (for QLoRA: into the 16-bit base,
i.e. de-quantised) and check that the merged model's logits match the adapter model's."""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.methods import method
from trainer.checkpoints import RESOLVED
from trainer.config_file import load_config
from trainer.quiet import quiet_libraries


def sample_batch(cfg, tok, n: int = 4, max_tokens: int = 256):
    """The first training records (the run's cached encoding), cut to `max_tokens`, as one padded batch."""
    from trainer.data import Collator, prepare_for

    items = prepare_for(cfg, tok, drop_untrainable=True).train[:n]
    return Collator(tok.pad_token_id)([{"input_ids": e.input_ids[:max_tokens], "labels": e.labels[:max_tokens]}
                                       for e in items])


def masked_max_diff(a, b, mask) -> float:
    return float(((a.float() - b.float()).abs() * mask[..., None]).max())


def check_target(target: Path, force: bool) -> None:
    """The merged model goes into an empty or new folder; one that holds files (an earlier merge, a model of the
    user's) is replaced only with --force, and never a folder that is a run or the base itself."""
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file, not a folder: give a folder for the merged model")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserError(f"{target} already holds files (an earlier merge, or a model of yours); they were left as "
                        "they are: pass --force to write the merged model over them, or --out another folder")


def merge(out_dir: str, dest: str | None = None, force: bool = False) -> dict:
    quiet_libraries()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    if not (out / RESOLVED).is_file() or not (out / "adapter_config.json").is_file():
        raise UserError(f"`{out}` is not a finished tunewise LoRA/QLoRA run (needs {RESOLVED} and adapter_config.json)")
    cfg = load_config(str(out / RESOLVED))
    target = Path(dest) if dest else out / "merged"
    if target.resolve() in (out.resolve(), Path(cfg.model.path).resolve()):
        raise UserError(f"--out {target} is the {'run folder' if target.resolve() == out.resolve() else 'base model'}"
                        " itself: give another folder for the merged model")
    check_target(target, force)
    if not method(cfg.method.name).adapters:
        raise UserError(f"only LoRA and QLoRA adapters can be merged; this run is `{cfg.method.name}`")
    from trainer.model import resolve_dtype

    dtype = torch.bfloat16 if method(cfg.method.name).quantized_base else resolve_dtype(cfg.model.dtype)
    from trainer.model import check_run_base, open_tokenizer, trust_remote_code_for

    check_run_base(out, cfg)
    tok = open_tokenizer(out)
    base = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=dtype, local_files_only=True,
                                                use_safetensors=True,
                                                trust_remote_code=trust_remote_code_for(cfg.model.path,
                                                                                        cfg.model.trust_remote_code))
    model = PeftModel.from_pretrained(base, out, local_files_only=True)
    model.eval()
    batch = sample_batch(cfg, tok)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        before = model(**inputs).logits
        merged = model.merge_and_unload()
        after = merged(**inputs).logits
    mask = batch["attention_mask"].float()
    diff = masked_max_diff(before, after, mask)
    scale = float((before.float().abs() * mask[..., None]).max())
    tol = (2e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-4) * max(1.0, scale)
    if diff > tol:
        raise UserError(f"merged logits differ from the adapter model's by {diff:.4g} (tolerance {tol:.3g}); "
                        "nothing was written")
    merged.save_pretrained(target)
    tok.save_pretrained(target)
    reloaded = AutoModelForCausalLM.from_pretrained(target, local_files_only=True, dtype=dtype, use_safetensors=True)
    with torch.no_grad():
        again = reloaded(**inputs).logits
    reload_diff = masked_max_diff(after, again, mask)
    return {"merged_dir": str(target), "base": cfg.model.path, "dtype": str(dtype).replace("torch.", ""),
            "method": cfg.method.name, "max_abs_logit_diff": diff, "tolerance": tol,
            "reload_max_abs_logit_diff": reload_diff, "ok": True}
