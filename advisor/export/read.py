"""The reverse of the export: the job an existing Axolotl, LLaMA-Factory or TRL config describes (model, data files,
method and memory-relevant settings), for `tunewise estimate --from` and `tunewise audit --from`. Torch-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.data.layout import DataLayout
from core.errors import UserError
from core.methods import REGISTRY, read_method
from core.train_config import HF_OPTIMIZERS

# transformers' optimizer names → tunewise's: the inverse of what train and the exports write (core.train_config
# HF_OPTIMIZERS, so every export reads back), plus the other names of the same optimizers
OPTIMIZERS = {"adamw_torch_fused": "adamw", "adamw_hf": "adamw", "adamw": "adamw", "adamw_bnb_8bit": "adamw_8bit",
              "adamw_8bit": "adamw_8bit", **{hf: ours for ours, hf in HF_OPTIMIZERS.items() if ours != "adamw_8bit"}}


class ToolJob(BaseModel):
    """What a tool's config trains, in tunewise's terms."""
    model_config = ConfigDict(extra="forbid")

    tool: Literal["axolotl", "llamafactory", "trl", "tunewise"]
    source: str = Field(description="the tool config read")
    model: str = Field(description="model folder or hub name, as the config gives it")
    data: list[str] = Field(default_factory=list, description="local data files")
    layouts: dict[str, DataLayout] = Field(default_factory=dict, description="data file → how the tool reads its "
                                           "columns (LLaMA-Factory dataset_info.json `columns` / `tags`)")
    method: Literal[tuple(REGISTRY)]  # every registered fine-tune (core/methods.py)
    seq_len: int
    batch_size: int
    grad_accum: int = 1
    gradient_checkpointing: bool
    optimizer: str = "adamw"
    precision: Literal["bf16", "fp16", "bf16-mixed", "fp16-mixed", "fp32"]
    lora_r: int = 16
    lora_targets: tuple[str, ...] = ("all-linear",)
    sharding: Literal["none", "zero2", "zero3", "fsdp"] = "none"
    loss: Literal["plain", "chunked_logits", "chunked"] = Field(
        "plain", description="chunked: Cut Cross-Entropy / Liger fused linear cross-entropy / tunewise's chunked loss; "
        "chunked_logits: a chunked cross-entropy over built logits; plain: the full logits")
    attention: Literal["auto", "sdpa", "flash", "eager"] = "auto"
    low_memory_loading: bool = Field(True, description="FSDP / ZeRO-3: each rank loads only its shard")
    gpus: int | None = Field(None, description="processes the config itself names (tunewise distributed)")
    notes: list[str] = Field(default_factory=list, description="what was read with an assumption")

    @property
    def local_model(self) -> str | None:
        """The model when it is a local folder (a hub name is not read: tunewise never downloads)."""
        return self.model if (Path(self.model).expanduser() / "config.json").is_file() else None


def read_tool_config(path: str | Path) -> ToolJob:
    from core.files import read_structured

    data, _lines = read_structured(path, "tool config")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings (an Axolotl, LLaMA-Factory or TRL config)")
    tool = which_tool(data, path)
    job = {"axolotl": _axolotl, "llamafactory": _llamafactory, "trl": _trl, "tunewise": _tunewise}[tool](data, Path(path))
    return ToolJob(tool=tool, source=str(path), **job)


def which_tool(data: dict, path) -> str:
    if isinstance(data.get("model"), dict) and isinstance(data.get("data"), dict):
        return "tunewise"
    if "base_model" in data:
        return "axolotl"
    if "model_name_or_path" in data and ({"stage", "finetuning_type", "cutoff_len", "template"} & set(data)
                                         or isinstance(data.get("dataset"), str)):
        return "llamafactory"
    if "model_name_or_path" in data:
        return "trl"
    raise UserError(f"{path}: not an Axolotl (base_model), LLaMA-Factory or TRL (model_name_or_path) config, nor a "
                    "tunewise train config (model.path + data.path)")


def _optimizer(name: str | None, notes: list[str]) -> str:
    if name is None:
        return "adamw"
    if name not in OPTIMIZERS:
        notes.append(f"optimizer {name} estimated as AdamW")
    return OPTIMIZERS.get(name, "adamw")


def _precision(bf16, fp16, pure_bf16: bool = False) -> str:
    if pure_bf16:
        return "bf16"
    if bf16 in (True, "auto", "true"):
        return "bf16"  # the tools load the weights in bf16 when bf16 is on
    if fp16 in (True, "true"):
        return "fp16"
    return "fp32"


def _local(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() or p.exists() else base / p


def _axolotl(d: dict, path: Path) -> dict:
    notes: list[str] = []
    method = read_method("axolotl", d, adapter=bool(d.get("adapter")))
    targets = ("all-linear",) if d.get("lora_target_linear") or not d.get("lora_target_modules") else \
        tuple(d["lora_target_modules"])
    files = []
    for ds in d.get("datasets") or []:
        p = _local(path.parent, str(ds.get("path", "")))
        (files.append(str(p)) if p.is_file() else notes.append(f"dataset {ds.get('path')} is not a local file"))
    sharding = "fsdp" if d.get("fsdp_config") or d.get("fsdp") else _deepspeed_stage(d.get("deepspeed"), path)
    return dict(**_axolotl_memory(d, sharding), model=str(d["base_model"]), data=files, method=method, seq_len=int(d.get("sequence_len", 2048)),
                batch_size=int(d.get("micro_batch_size", 1)), grad_accum=int(d.get("gradient_accumulation_steps", 1)),
                gradient_checkpointing=bool(d.get("gradient_checkpointing", False)),
                optimizer=_optimizer(d.get("optimizer"), notes), precision=_precision(d.get("bf16"), d.get("fp16")),
                lora_r=int(d.get("lora_r", 8)), lora_targets=targets, sharding=sharding, notes=notes)


def _plugins(d: dict) -> str:
    return " ".join(str(p) for p in d.get("plugins") or []).lower()


def _axolotl_memory(d: dict, sharding: str) -> dict:
    """Axolotl's loss (Cut Cross-Entropy / Liger plugins, chunked_cross_entropy), attention flags and FSDP loading."""
    plugins = _plugins(d)
    fused = (d.get("cut_cross_entropy") and "cut_cross_entropy" in plugins) or (
        d.get("liger_fused_linear_cross_entropy") and "liger" in plugins)
    loss = "chunked" if fused else "chunked_logits" if d.get("chunked_cross_entropy") else "plain"
    attention = ("flash" if d.get("flash_attention") else "sdpa" if d.get("sdp_attention") or d.get(
        "xformers_attention") or d.get("flex_attention") else "eager" if d.get("eager_attention") else "auto")
    fsdp = d.get("fsdp_config") if isinstance(d.get("fsdp_config"), dict) else {}
    low = bool(fsdp.get("fsdp_cpu_ram_efficient_loading", fsdp.get("cpu_ram_efficient_loading", False))) \
        if sharding == "fsdp" else True
    return dict(loss=loss, attention=attention, low_memory_loading=low)


LLAMAFACTORY_ADAPTER_KIND = "lora"  # LLaMA-Factory's finetuning_type for every adapter method (its own vocabulary)
LLAMAFACTORY_KINDS = (LLAMAFACTORY_ADAPTER_KIND, "full")


def _llamafactory(d: dict, path: Path) -> dict:
    notes: list[str] = []
    kind = d.get("finetuning_type", LLAMAFACTORY_ADAPTER_KIND)
    if kind not in LLAMAFACTORY_KINDS:
        notes.append(f"finetuning_type {kind} estimated as a full fine-tune")
    bits = d.get("quantization_bit")
    if bits not in (None, 4):
        raise UserError(f"{path}: quantization_bit {bits}: tunewise estimates 4-bit QLoRA and 16-bit training only")
    method = read_method("llamafactory", d, adapter=kind == LLAMAFACTORY_ADAPTER_KIND)
    target = str(d.get("lora_target", "all"))
    targets = ("all-linear",) if target == "all" else tuple(t.strip() for t in target.split(",") if t.strip())
    files, layouts = _llamafactory_files(d, path, notes)
    return dict(model=str(d["model_name_or_path"]), data=files, layouts=layouts, method=method,
                seq_len=int(d.get("cutoff_len", 2048)), batch_size=int(d.get("per_device_train_batch_size", 8)),
                grad_accum=int(d.get("gradient_accumulation_steps", 1)),
                gradient_checkpointing=not d.get("disable_gradient_checkpointing", False),
                optimizer=_optimizer(d.get("optim"), notes),
                precision=_precision(d.get("bf16"), d.get("fp16"), bool(d.get("pure_bf16"))),
                lora_r=int(d.get("lora_rank", 8)), lora_targets=targets,
                sharding=_deepspeed_stage(d.get("deepspeed"), path), notes=notes,
                loss="chunked" if d.get("enable_liger_kernel") or d.get("use_unsloth") else "plain",
                attention={"disabled": "eager", "fa2": "flash", "sdpa": "sdpa"}.get(str(d.get("flash_attn", "auto")),
                                                                                   "auto"))


def _llamafactory_files(d: dict, path: Path, notes: list[str]) -> tuple[list[str], dict[str, DataLayout]]:
    """The files behind LLaMA-Factory's dataset names (dataset_dir/dataset_info.json, read against the config's
    folder, then the working directory), and their `columns` / `tags` as tunewise reads them."""
    names = [n.strip() for n in str(d.get("dataset", "")).split(",") if n.strip()]
    folder = _local(path.parent, str(d.get("dataset_dir", "data")))
    info_path = folder / "dataset_info.json"
    if not names:
        return [], {}
    if not info_path.is_file():
        raise UserError(f"{path}: dataset {', '.join(names)} is described in {info_path}, which does not exist")
    from core.files import read_json

    info = read_json(info_path, "LLaMA-Factory dataset_info")
    files, layouts = [], {}
    for n in names:
        entry = info.get(n)
        if not isinstance(entry, dict) or "file_name" not in entry:
            notes.append(f"dataset {n} has no local file_name in {info_path} (a hub dataset?)")
            continue
        p = _local(folder, entry["file_name"])
        (files.append(str(p)) if p.is_file() else notes.append(f"dataset {n}: {p} does not exist"))
        layout = _llamafactory_layout(entry, f"{info_path}: {n}", notes)
        if layout is not None and p.is_file():
            layouts[str(p)] = layout
    return files, layouts


LLAMAFACTORY_MEDIA = ("images", "videos", "audios")


def _llamafactory_layout(entry: dict, where: str, notes: list[str]) -> DataLayout | None:
    """A dataset_info entry's `columns` / `tags` as a DataLayout (media columns are not audited: noted)."""
    columns, tags = entry.get("columns"), entry.get("tags")
    if not isinstance(columns, dict) and not isinstance(tags, dict):
        return None
    columns = dict(columns or {})
    media = [k for k in LLAMAFACTORY_MEDIA if columns.pop(k, None) is not None]
    if media:
        notes.append(f"{where}: the {', '.join(media)} columns are not audited (text only)")
    if set(columns) == {"prompt"} and entry.get("formatting", "alpaca") == "alpaca":
        columns = {"text": columns["prompt"]}  # pre-training data (stage pt): the prompt column is the text
    if not columns:  # tags alone: LLaMA-Factory's default sharegpt column
        columns = {"messages": "conversations"}
    if entry.get("formatting", "alpaca") == "sharegpt" and "messages" not in columns:
        columns["messages"] = "conversations"
    from core.files import validate

    return validate(DataLayout, {"columns": columns, **({"tags": tags} if isinstance(tags, dict) else {})},
                    f"{where}.columns")


def _trl(d: dict, path: Path) -> dict:
    notes: list[str] = []
    method = read_method("trl", d, adapter=bool(d.get("use_peft")))
    targets = d.get("lora_target_modules") or ["all-linear"]
    files = []
    for ds in d.get("datasets") or []:
        for f in [ds.get("data_files")] if isinstance(ds.get("data_files"), str) else ds.get("data_files") or []:
            p = _local(path.parent, str(f))
            (files.append(str(p)) if p.is_file() else notes.append(f"data file {f} does not exist"))
    if d.get("dataset_name"):
        notes.append(f"dataset_name {d['dataset_name']} is a hub dataset: not read")
    return dict(model=str(d["model_name_or_path"]), data=files, method=method, seq_len=int(d.get("max_length", 1024)),
                batch_size=int(d.get("per_device_train_batch_size", 8)),
                grad_accum=int(d.get("gradient_accumulation_steps", 1)),
                gradient_checkpointing=bool(d.get("gradient_checkpointing", True)),  # SFTConfig's default
                optimizer=_optimizer(d.get("optim"), notes),
                precision=_precision(d.get("bf16"), d.get("fp16"), d.get("dtype") == "bfloat16"),
                lora_r=int(d.get("lora_r", 16)), lora_targets=tuple(targets),
                sharding="fsdp" if d.get("fsdp") else _deepspeed_stage(d.get("deepspeed"), path), notes=notes,
                loss="chunked" if d.get("use_liger_kernel") else "plain",
                attention=_hf_attention(d.get("attn_implementation")),
                low_memory_loading=bool((d.get("fsdp_config") or {}).get("cpu_ram_efficient_loading", False))
                if d.get("fsdp") else True)


def _hf_attention(name) -> str:
    name = str(name or "").lower()
    return "flash" if name.startswith(("flash", "kernels-community")) else name if name in ("eager", "sdpa") \
        else "sdpa" if name in ("flex_attention", "paged_attention") else "auto"


def _tunewise(d: dict, path: Path) -> dict:
    """tunewise's own train config: what `tunewise train` would run (its loss and attention choices included)."""
    from core.files import validate
    from core.train_config import TrainConfig

    cfg = validate(TrainConfig, d, str(path), {}).resolve_paths(path)
    m, t = cfg.method, cfg.training
    precision = "bf16" if t.precision == "auto" and cfg.model.dtype == "auto" else t.precision if \
        t.precision != "auto" else {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[cfg.model.dtype]
    notes = ["precision auto estimated as bf16 (a GPU with bf16)"] if t.precision == "auto" == cfg.model.dtype else []
    targets = getattr(m, "target_modules", "all-linear")
    return dict(model=cfg.model.path, data=[cfg.data.path] if Path(cfg.data.path).is_file() else [],
                method=m.name, seq_len=cfg.data.max_seq_len, batch_size=t.batch_size, grad_accum=t.grad_accum,
                gradient_checkpointing=t.gradient_checkpointing, optimizer=t.optimizer, precision=precision,
                lora_r=getattr(m, "lora_r", 16),
                lora_targets=("all-linear",) if targets == "all-linear" else tuple(targets),
                sharding={"ddp": "none", "fsdp": "fsdp", "deepspeed_zero2": "zero2",
                          "deepspeed_zero3": "zero3"}[cfg.distributed.strategy],
                loss="plain" if t.loss == "plain" else "chunked",
                attention={"flash_attention_2": "flash"}.get(t.attention, t.attention),
                gpus=cfg.distributed.world_size, notes=notes)


def _deepspeed_stage(value, path: Path) -> str:
    if not value:
        return "none"
    p = _local(path.parent, str(value))
    try:
        stage = json.loads(p.read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage", 2)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        stage = 3 if "3" in p.name else 2
    return "zero3" if stage == 3 else "zero2"
