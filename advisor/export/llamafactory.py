"""LLaMA-Factory (`llamafactory-cli train CONFIG`): a YAML of its Model/Data/Finetuning/Training arguments plus the
`dataset_info.json` entry that names the data file, its format and columns (checked against 0.9.5)."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.export.common import (
    Target,
    abs_path,
    chat_template_text,
    data_keys,
    has_tool_calls,
    hf_precision,
    hf_schedule,
    lora_targets,
    loss_and_attention,
    padding_free_note,
    preprocessing,
    refuse_unexportable,
    template_mapping,
)
from core.exported import Exported
from core.methods import method
from core.train_config import TrainConfig, deepspeed_settings

DATASET = "tunewise_train"
ROLES = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
         "system_tag": "system", "observation_tag": "tool", "function_tag": "function"}


def dataset_entry(cfg: TrainConfig, fmt: str) -> dict:
    """The data file as LLaMA-Factory reads it: sharegpt formatting for conversations (OpenAI role/content tags or
    sharegpt's from/value), alpaca columns for instruction and prompt/completion data, a text column to pre-train."""
    entry: dict = {"file_name": abs_path(cfg.data.path)}
    from advisor.export.common import data_layout

    layout = data_layout(cfg)
    if layout is not None and layout.portable:  # the columns train maps (data.columns, or a published layout such as Dolly's)
        return {**entry, **mapped_entry(layout)}
    keys = data_keys(cfg.data.path)

    def present(columns: dict[str, str]) -> dict[str, str]:  # optional columns only where the data has them
        return {k: v for k, v in columns.items() if v in keys}

    if fmt == "openai":
        entry.update(formatting="sharegpt", columns={"messages": "messages", **present({"tools": "tools"})},
                     tags=ROLES)
    elif fmt == "sharegpt":
        entry.update(formatting="sharegpt", columns={"messages": "conversations",
                                                     **present({"system": "system", "tools": "tools"})})
    elif fmt == "alpaca":
        entry["columns"] = {"prompt": "instruction", "response": "output",
                            **present({"query": "input", "system": "system", "history": "history"})}
    elif fmt == "prompt_completion":
        entry["columns"] = {"prompt": "prompt", "response": "completion"}
    else:  # text
        entry["columns"] = {"prompt": "text"}
    return entry


# tunewise's canonical keys → LLaMA-Factory's column names
LF_COLUMNS = {"instruction": "prompt", "prompt": "prompt", "input": "query", "output": "response",
              "completion": "response", "system": "system", "history": "history", "conversations": "messages",
              "messages": "messages", "tools": "tools", "text": "prompt"}
LF_ROLES = {"human": "user_tag", "gpt": "assistant_tag", "system": "system_tag", "observation": "observation_tag",
            "function_call": "function_tag"}


def mapped_entry(layout) -> dict:
    """A Layout as dataset_info.json's formatting, columns and tags."""
    columns = {LF_COLUMNS[dst]: src for dst, src in layout.pairs if dst in LF_COLUMNS}
    entry: dict = {"columns": columns}
    if "messages" in columns:
        entry["formatting"] = "sharegpt"
        if layout.turns is not None:
            role_key, content_key, roles = layout.turns
            entry["tags"] = {"role_tag": role_key, "content_tag": content_key,
                             **{LF_ROLES[canon]: value for value, canon in roles if canon in LF_ROLES}}
        elif layout.fmt == "openai":
            entry["tags"] = ROLES
    return entry


def existing_entries(dest: Path) -> dict:
    """The other datasets of a dataset_info.json already in the folder (kept; ours is added or replaced)."""
    path = dest / "dataset_info.json"
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        from core.errors import UserError

        raise UserError(f"{path} exists but is not JSON: move it away or fix it (the export adds an entry to it)") \
            from None
    return {k: v for k, v in found.items() if k != DATASET} if isinstance(found, dict) else {}


def build(cfg: TrainConfig, fmt: str, dest: Path) -> Exported:
    refuse_unexportable(cfg, "LLaMA-Factory")
    out = Exported("LLaMA-Factory", {})
    m = cfg.method
    out.map("model.path", "model_name_or_path", abs_path(cfg.model.path))
    out.map("model.trust_remote_code", "trust_remote_code", cfg.model.trust_remote_code)
    out.map("data.format", "stage", "pt" if fmt == "text" else "sft")
    out.config["do_train"] = True
    spec = method(m.name)
    out.map("method.name", "finetuning_type", "full" if spec.trains_all_weights else "lora")
    if spec.adapters:
        out.map("method.lora_r", "lora_rank", m.lora_r)
        out.map("method.lora_alpha", "lora_alpha", m.lora_alpha)
        out.map("method.lora_dropout", "lora_dropout", m.lora_dropout)
        targets = lora_targets(m)
        out.map("method.target_modules", "lora_target", "all" if targets == "all-linear" else ",".join(targets))
    spec.export_keys("llamafactory", m, out)  # the method's own keys (QLoRA's 4-bit settings ...)
    data_settings(cfg, fmt, out, dest)
    loss_and_attention(cfg, out, "llamafactory")
    hf_schedule(cfg, out)
    padding_free_note(cfg, out, "neat_packing packs records into fixed-length rows instead")
    preprocessing(cfg, out, "preprocessing_num_workers", None)  # its tokenized_path is reused whatever the data
    # LLaMA-Factory turns gradient checkpointing on unless told not to
    out.config.pop("gradient_checkpointing")
    out.config["disable_gradient_checkpointing"] = not cfg.training.gradient_checkpointing
    hf_precision(cfg, out, "pure_bf16")
    out.map("output.dir", "output_dir", abs_path(cfg.output.dir))
    out.config["overwrite_output_dir"] = False
    out.command = distributed(cfg, out)
    return out


def data_settings(cfg: TrainConfig, fmt: str, out: Exported, dest: Path) -> None:
    d = cfg.data
    out.map("data.path", "dataset", DATASET)
    out.config["dataset_dir"] = str(dest)  # LLaMA-Factory reads it against its working directory
    out.files["dataset_info.json"] = json.dumps({**existing_entries(dest), DATASET: dataset_entry(cfg, fmt)},
                                                indent=2, ensure_ascii=False)
    out.map("data.max_seq_len", "cutoff_len", d.max_seq_len)
    out.map("data.val_size", "val_size", d.val_size if d.val_size < 1 else int(d.val_size))
    out.map("data.assistant_only_loss", "train_on_prompt", not d.assistant_only_loss)
    if d.system_prompt:
        out.map("data.system_prompt", "default_system", d.system_prompt)
    if chat_template_text(cfg) is None:
        template_mapping(out, "template (unset: LLaMA-Factory parses the tokenizer's chat_template)")
    else:
        out.skip("data.chat_template", "LLaMA-Factory takes a registered template name, or parses the tokenizer's "
                 "own chat_template when `template` is unset (as here): put this template into the model's "
                 "tokenizer_config.json")
    if fmt == "openai" and has_tool_calls(d.path, fmt):
        out.skip("data (tool calls)", "OpenAI `tool_calls` are not read by LLaMA-Factory's sharegpt loader: "
                 "convert them to function_call / observation turns")
    if d.drop_untrainable:
        out.skip("data.drop_untrainable", "LLaMA-Factory cuts long records to cutoff_len and keeps them")


def distributed(cfg: TrainConfig, out: Exported) -> str:
    dist = cfg.distributed
    command = "llamafactory-cli train {config}"
    if dist.world_size > 1:
        nodes = (f"NNODES={dist.nodes} NODE_RANK={dist.node_rank} MASTER_ADDR={dist.master_addr} "
                 f"MASTER_PORT={dist.node_port}" if dist.nodes > 1 else "NNODES=1")
        command = f"FORCE_TORCHRUN=1 {nodes} NPROC_PER_NODE={dist.processes} " + command
        if dist.strategy.startswith("deepspeed"):
            name = f"ds_z{3 if dist.strategy.endswith('3') else 2}_config.json"
            out.files[name] = json.dumps(deepspeed_settings(dist.strategy), indent=2)
            out.map("distributed.strategy", "deepspeed", name)
        elif dist.strategy == "fsdp":
            out.skip("distributed.strategy: fsdp", "LLaMA-Factory takes FSDP from an accelerate config: run "
                     "`accelerate launch --config_file fsdp_config.yaml src/train.py CONFIG` with an FSDP config")
    return command


TARGET = Target("llamafactory", "LLaMA-Factory", build, "0.9.5")
