"""TRL's command line (`trl sft --config CONFIG`): ScriptArguments, SFTConfig, ModelConfig and the dataset mixture in
one YAML, checked with TRL's own parser (TrlParser) in the tests."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.export.common import (
    Target,
    abs_path,
    chat_template_text,
    hf_precision,
    hf_schedule,
    loss_and_attention,
    preprocessing,
    refuse_unexportable,
    template_mapping,
)
from core.data.reader import inner_suffix
from core.exported import Exported
from core.methods import method
from core.train_config import TrainConfig, deepspeed_settings

LOADERS = {".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def build(cfg: TrainConfig, fmt: str, dest: Path) -> Exported:
    refuse_unexportable(cfg, "TRL's `trl sft` command")
    out = Exported("TRL", {})
    out.map("model.path", "model_name_or_path", abs_path(cfg.model.path))
    if cfg.model.trust_remote_code:
        out.map("model.trust_remote_code", "model_init_kwargs", {"trust_remote_code": True})
    else:
        out.mapped.append(("model.trust_remote_code", "(off: TRL's default)"))
    method_settings(cfg, out)
    data_settings(cfg, fmt, out)
    hf_schedule(cfg, out)
    loss_and_attention(cfg, out, "trl")
    hf_precision(cfg, out, None)
    if cfg.training.precision in ("bf16", "fp16"):
        out.config["dtype"] = "bfloat16" if cfg.training.precision == "bf16" else "float32"
    out.map("output.dir", "output_dir", abs_path(cfg.output.dir))
    out.command = distributed(cfg, out)
    return out


def method_settings(cfg: TrainConfig, out: Exported) -> None:
    m = cfg.method
    spec = method(m.name)
    out.map("method.name", "use_peft", not spec.trains_all_weights)
    if spec.trains_all_weights:
        return
    out.map("method.lora_r", "lora_r", m.lora_r)
    out.map("method.lora_alpha", "lora_alpha", m.lora_alpha)
    out.map("method.lora_dropout", "lora_dropout", m.lora_dropout)
    targets = m.target_modules
    out.map("method.target_modules", "lora_target_modules", ["all-linear"] if targets == "all-linear" else targets)
    spec.export_keys("trl", m, out)  # the method's own keys (QLoRA's 4-bit settings ...)


def data_settings(cfg: TrainConfig, fmt: str, out: Exported) -> None:
    d = cfg.data
    loader = LOADERS.get(inner_suffix(Path(d.path)), "json")  # data.csv.gz: the csv loader (it decompresses)
    out.map("data.path", "datasets", [{"path": loader, "data_files": abs_path(d.path)}])
    out.config["dataset_train_split"] = "train"
    if d.val_size:
        out.map("data.val_size", "test_split_size", d.val_size if d.val_size < 1 else int(d.val_size))
    out.map("data.max_seq_len", "max_length", d.max_seq_len)
    out.config["packing"] = False
    out.map("training.padding_free", "padding_free", cfg.training.padding_free)
    preprocessing(cfg, out, "dataset_num_proc", "(the datasets library caches each map by its fingerprint)")
    if fmt == "openai":
        out.map("data.assistant_only_loss", "assistant_only_loss", d.assistant_only_loss)
        if d.assistant_only_loss:
            out.skip("data.assistant_only_loss", "TRL needs {% generation %} markers in the template for it; "
                     "tunewise also finds assistant turns in templates without them (see the README table)")
    elif fmt == "prompt_completion":
        out.map("data.assistant_only_loss", "completion_only_loss", d.assistant_only_loss)
    elif fmt == "text":
        out.config["dataset_text_field"] = "text"
    else:
        out.skip(f"data.format: {fmt}", "TRL reads `messages`, `prompt`/`completion` or `text` columns: convert "
                 f"the {fmt} records first (e.g. to OpenAI messages)")
    template = chat_template_text(cfg)
    if template is None:
        template_mapping(out, "(unset: the tokenizer's chat_template)")
    else:
        if Path(str(d.chat_template)).is_file():
            out.map("data.chat_template", "chat_template_path", str(Path(str(d.chat_template)).resolve()))
        else:
            out.skip("data.chat_template", "TRL reads a template file (chat_template_path): save the inline template "
                     "to a .jinja file")
    if d.system_prompt:
        out.skip("data.system_prompt", "TRL has no default system message: add it to the records")
    if d.drop_untrainable:
        out.skip("data.drop_untrainable", "TRL truncates long records to max_length and keeps them")


def distributed(cfg: TrainConfig, out: Exported) -> str:
    dist = cfg.distributed
    if dist.world_size <= 1:
        return "trl sft --config {config}"
    if dist.strategy.startswith("deepspeed"):
        name = f"deepspeed_zero{3 if dist.strategy.endswith('3') else 2}.json"
        out.files[name] = json.dumps(deepspeed_settings(dist.strategy), indent=2)
        out.map("distributed.strategy", "deepspeed", name)
    elif dist.strategy == "fsdp":
        out.map("distributed.strategy", "fsdp", "full_shard auto_wrap")
        out.config["fsdp_config"] = {"auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "use_orig_params": True}
    nodes = (f" --num_machines {dist.nodes} --machine_rank {dist.node_rank} --main_process_ip {dist.master_addr} "
             f"--main_process_port {dist.node_port}" if dist.nodes > 1 else "")
    return f"trl sft --config {{config}} --num_processes {dist.world_size}{nodes}"


TARGET = Target("trl", "TRL (trl sft)", build, "1.16.0")
