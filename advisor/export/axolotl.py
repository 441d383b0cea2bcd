"""Axolotl (`axolotl train CONFIG`): one YAML (checked against 0.19.0's config schema)."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.export.common import (
    HF_NAMES,
    Target,
    abs_path,
    chat_template_text,
    lora_targets,
    loss_and_attention,
    map_schedule,
    padding_free_note,
    preprocessing,
    refuse_unexportable,
    template_mapping,
    val_share,
)
from core.data.reader import inner_suffix
from core.exported import Exported
from core.methods import method
from core.train_config import TrainConfig, deepspeed_settings


def dataset(cfg: TrainConfig, fmt: str) -> dict:
    """The data file as Axolotl reads it: chat_template datasets for conversations (the model's template, loss on
    the assistant turns and their end token), alpaca, a user-defined prompt/completion format, or raw text."""
    d: dict = {"path": abs_path(cfg.data.path), "ds_type": "json"}
    train_roles = ["assistant"] if cfg.data.assistant_only_loss else ["system", "user", "assistant"]
    from advisor.export.common import data_layout

    layout = data_layout(cfg)
    if layout is not None and (mapped := mapped_dataset(layout, train_roles)) is not None:
        d.update(mapped)
    elif fmt == "openai":
        d.update(type="chat_template", field_messages="messages",
                 message_property_mappings={"role": "role", "content": "content"}, field_tools="tools",
                 roles_to_train=train_roles, train_on_eos="turn")
    elif fmt == "sharegpt":
        d.update(type="chat_template", field_messages="conversations",
                 message_property_mappings={"role": "from", "content": "value"},
                 roles={"user": ["human", "user"], "assistant": ["gpt", "assistant"], "system": ["system"],
                        "tool": ["observation", "tool"]},
                 roles_to_train=train_roles, train_on_eos="turn")
    elif fmt == "alpaca":
        d["type"] = "alpaca"
    elif fmt == "prompt_completion":
        d["type"] = {"field_instruction": "prompt", "field_output": "completion", "format": "{instruction}",
                     "no_input_format": "{instruction}"}
    else:
        d.update(type="completion", field="text")
    suffix = inner_suffix(Path(cfg.data.path))  # data.csv.gz is CSV (the loader decompresses it)
    if suffix == ".csv":
        d["ds_type"] = "csv"
    elif suffix == ".parquet":
        d["ds_type"] = "parquet"
    return d


SHAREGPT_AS_AXOLOTL = {"human": "user", "gpt": "assistant", "system": "system", "observation": "tool"}


def mapped_dataset(layout, train_roles: list[str]) -> dict | None:
    """The columns train maps, in Axolotl's field names: a chat_template dataset on the conversation column (its
    turn keys and role names), or a user-defined instruction format on the prompt / input / answer columns; None
    where Axolotl has no such fields (preference pairs, text)."""
    src = dict(layout.pairs)
    conv = src.get("conversations") or src.get("messages")
    if not layout.portable:
        return None
    if conv:
        role_key, content_key = ("role", "content") if layout.fmt == "openai" else ("from", "value")
        roles: dict[str, list[str]] = {"user": ["human", "user"], "assistant": ["gpt", "assistant"],
                                       "system": ["system"], "tool": ["observation", "tool"]}
        if layout.turns is not None:
            role_key, content_key, named = layout.turns
            for value, canon in named:
                roles.setdefault(SHAREGPT_AS_AXOLOTL.get(canon, canon), []).insert(0, value)
        return {"type": "chat_template", "field_messages": conv,
                "message_property_mappings": {"role": role_key, "content": content_key}, "roles": roles,
                "roles_to_train": train_roles, "train_on_eos": "turn",
                **({"field_system": src["system"]} if "system" in src else {})}
    prompt, answer = src.get("instruction") or src.get("prompt"), src.get("output") or src.get("completion")
    if not (prompt and answer) or layout.fmt not in ("alpaca", "prompt_completion"):
        return None
    t = {"field_instruction": prompt, "field_output": answer, "format": "{instruction}",
         "no_input_format": "{instruction}"}
    if "input" in src:
        t.update(field_input=src["input"], format="{instruction}\n\n{input}")
    if "system" in src:
        t["field_system"] = src["system"]
    return {"type": t}


def build(cfg: TrainConfig, fmt: str, dest: Path) -> Exported:
    refuse_unexportable(cfg, "Axolotl")
    out = Exported("Axolotl", {})
    out.map("model.path", "base_model", abs_path(cfg.model.path))
    out.map("model.trust_remote_code", "trust_remote_code", cfg.model.trust_remote_code)
    method_settings(cfg, out)
    data_settings(cfg, fmt, out)
    schedule(cfg, out)
    padding_free_note(cfg, out, "sample_packing packs records into sequence_len rows instead")
    loss_and_attention(cfg, out, "axolotl")
    precision(cfg, out)
    out.map("output.dir", "output_dir", abs_path(cfg.output.dir))
    out.command = distributed(cfg, out)
    return out


def method_settings(cfg: TrainConfig, out: Exported) -> None:
    m = cfg.method
    spec = method(m.name)
    if spec.trains_all_weights:
        return
    out.map("method.name", "adapter", spec.axolotl_adapter())
    out.map("method.lora_r", "lora_r", m.lora_r)
    out.map("method.lora_alpha", "lora_alpha", m.lora_alpha)
    out.map("method.lora_dropout", "lora_dropout", m.lora_dropout)
    targets = lora_targets(m)
    if targets == "all-linear":
        out.map("method.target_modules", "lora_target_linear", True)
    else:
        out.map("method.target_modules", "lora_target_modules", targets)
    spec.export_keys("axolotl", m, out)  # the method's own keys (QLoRA's 4-bit settings ...)


def data_settings(cfg: TrainConfig, fmt: str, out: Exported) -> None:
    d = cfg.data
    out.map("data.path", "datasets", [dataset(cfg, fmt)])
    from advisor.export.common import data_layout

    layout = data_layout(cfg)
    if layout is not None and mapped_dataset(layout, []) is not None:
        out.mapped += [("data.columns", "datasets[0] field_* names"),
                       ("data.tags", "datasets[0] message_property_mappings / roles")]
    template = chat_template_text(cfg)
    if template is None:
        out.config["chat_template"] = "tokenizer_default"
        template_mapping(out, "chat_template: tokenizer_default")
    else:
        out.map("data.chat_template", "chat_template", "jinja")
        out.config["chat_template_jinja"] = template
    out.map("data.max_seq_len", "sequence_len", d.max_seq_len)
    out.map("data.val_size", "val_set_size", val_share(cfg))
    out.map("data.assistant_only_loss", "train_on_inputs", not d.assistant_only_loss)
    if d.system_prompt:
        out.map("data.system_prompt", "default_system_message", d.system_prompt)
    out.config["sample_packing"] = False
    prepared = Path(d.cache_dir).resolve() / "axolotl" if d.cache_dir else Path(cfg.output.dir).resolve() / "prepared"
    out.config["dataset_prepared_path"] = str(prepared)
    preprocessing(cfg, out, "dataset_processes", "(dataset_prepared_path: Axolotl keeps the tokenised data under a "
                  "hash of its dataset settings)")
    if d.drop_untrainable:
        out.skip("data.drop_untrainable", "Axolotl drops records longer than sequence_len by its own rule")


# Axolotl's names for the settings every tool has (advisor/export/common.py HF_NAMES)
NAMES = {**HF_NAMES, "batch_size": "micro_batch_size", "eval_batch_size": "eval_batch_size",
         "epochs": "num_epochs", "warmup_ratio": "warmup_ratio", "scheduler": "lr_scheduler",
         "optimizer": "optimizer"}


def schedule(cfg: TrainConfig, out: Exported) -> None:
    t = cfg.training
    map_schedule(cfg, out, NAMES)
    if t.save_steps or t.eval_steps:
        out.map("training.save_steps", "save_steps", t.save_steps or t.eval_steps)
    else:
        out.config["saves_per_epoch"] = 1
    if cfg.data.val_size:
        if t.eval_steps:
            out.map("training.eval_steps", "eval_steps", t.eval_steps)
        else:
            out.config["evals_per_epoch"] = 1
    if t.early_stopping_patience:
        out.map("training.early_stopping_patience", "early_stopping_patience", t.early_stopping_patience)
    out.map("training.group_by_length", "group_by_length", t.group_by_length)


def precision(cfg: TrainConfig, out: Exported) -> None:
    p = cfg.training.precision
    if p == "auto":
        out.map("training.precision", "bf16", "auto")
    elif p in ("bf16", "bf16-mixed"):
        out.map("training.precision", "bf16", True)
        if p == "bf16":
            out.config["bfloat16"] = True  # weights loaded in bf16, as tunewise's pure bf16
    elif p in ("fp16", "fp16-mixed"):
        out.map("training.precision", "fp16", True)
        if p == "fp16":
            out.config["float16"] = True
    else:
        out.map("training.precision", "bf16", False)
        out.config["fp16"] = False


def distributed(cfg: TrainConfig, out: Exported) -> str:
    dist = cfg.distributed
    if dist.nodes > 1:
        out.skip("distributed.nodes", "several machines: give each an accelerate config with num_machines, "
                 "machine_rank and main_process_ip (Axolotl reads them from there)")
    if dist.world_size > 1:
        out.skip("distributed.processes", f"Axolotl uses every visible GPU: expose {dist.processes} "
                 f"(CUDA_VISIBLE_DEVICES) or set num_processes in the accelerate config")
        if dist.strategy.startswith("deepspeed"):
            name = f"deepspeed_zero{3 if dist.strategy.endswith('3') else 2}.json"
            out.files[name] = json.dumps(deepspeed_settings(dist.strategy), indent=2)
            out.map("distributed.strategy", "deepspeed", name)
        elif dist.strategy == "fsdp":
            out.map("distributed.strategy", "fsdp_version", 2)
            out.config["fsdp_config"] = {"auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True,
                                         "state_dict_type": "FULL_STATE_DICT"}
    return "axolotl train {config}"


TARGET = Target("axolotl", "Axolotl", build, "0.19.0")
