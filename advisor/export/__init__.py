"""Configs for the trainers users already run (Axolotl, LLaMA-Factory, TRL's `trl sft`), from a tunewise training
config: the same job — model, data in the tool's dataset format with the model's template, method and its
settings, sequence length, batch, schedule, precision, checkpointing, distributed settings, output folder. What a
tool cannot express is listed with the reason, never dropped silently. Torch-free.

One module per tool, one registry entry each (`TARGETS`): `build(cfg, fmt) -> Exported`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.errors import UserError

if TYPE_CHECKING:  # the CLI reads TOOLS at start-up: no pydantic model imported here
    from trainer.config import TrainConfig


@dataclass
class Exported:
    tool: str
    config: dict  # the tool's config file (YAML)
    files: dict[str, str] = field(default_factory=dict)  # other files, by name, written beside it (dataset_info.json)
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (tunewise key, the tool's key)
    not_expressed: list[tuple[str, str]] = field(default_factory=list)  # (tunewise key, why and what happens)
    command: str = ""  # how to run it

    def map(self, ours: str, theirs: str, value) -> None:
        self.config[theirs] = value
        self.mapped.append((ours, theirs))

    def skip(self, ours: str, why: str) -> None:
        self.not_expressed.append((ours, why))


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    build: Callable[[TrainConfig, str, Path], Exported]  # (config, data format, the folder written to)
    version: str  # the release the mapping is checked against (tests/data/interop/)


def _targets() -> dict[str, Target]:
    from advisor.export import axolotl, llamafactory, trl_sft

    return {t.name: t for t in (axolotl.TARGET, llamafactory.TARGET, trl_sft.TARGET)}


TOOLS = ("axolotl", "llamafactory", "trl")  # the registry's names (tests/test_export.py checks they agree)


def data_format(cfg: TrainConfig) -> str:
    """The data's record format (data.format, else detected from the file as `train` does)."""
    if cfg.data.format != "auto" and cfg.data.columns is None:
        return cfg.data.format
    from trainer.data import detect_format

    return detect_format(cfg.data.path, cfg.data.format, cfg.data.layout(), cfg.data.columns_origin)


def data_layout(cfg: TrainConfig):
    """The columns `train` maps (data.columns, or a published layout it recognises), or None."""
    from trainer.data import detect

    return detect(cfg.data.path, cfg.data.format, cfg.data.layout(), cfg.data.columns_origin).layout


def export(cfg: TrainConfig, tool: str, dest: str | Path) -> Exported:
    """The tool's config for `cfg`, to be written at `dest` (files it names sit beside it)."""
    target = _targets().get(tool)
    if target is None:
        raise UserError(f"unknown export target `{tool}`: choose one of {', '.join(TOOLS)}")
    out = target.build(cfg, data_format(cfg), Path(dest).resolve().parent)
    shared_notes(cfg, out)
    return out


def shared_notes(cfg: TrainConfig, out: Exported) -> None:
    """Settings no exported tool reproduces as tunewise does."""
    if cfg.data.max_skipped != 0.05:
        out.skip("data.max_skipped", "the tool has no threshold for skipped records: run `tunewise audit` first")
    if cfg.eval.enabled:
        out.skip("eval", "the base-vs-tuned check after training is tunewise's (`tunewise eval` on a tunewise run)")
    if cfg.data.reasoning == "drop":
        out.skip("data.reasoning", "the tool trains replies as written: strip <think> blocks from the data first")
    layout_notes(cfg, out)


def layout_notes(cfg: TrainConfig, out: Exported) -> None:
    """data.columns / data.tags: LLaMA-Factory's dataset_info.json takes them (dataset_entry); the others read
    the format's own keys. data.text_unit: the tools read a text file one line per record."""
    layout = data_layout(cfg)
    said = {k for k, _ in out.mapped + out.not_expressed}
    for key in ("data.columns", "data.tags"):
        if key in said:  # the target mapped them itself (Axolotl's field names)
            continue
        if layout is None:
            out.mapped.append((key, "(none: the records use the format's own keys)"))
        elif not layout.portable:
            out.skip(key, "the conversations are lists of bare strings: write them as {role, content} messages first")
        elif "dataset_info.json" in out.files:  # LLaMA-Factory: the entry maps them
            out.mapped.append((key, f"dataset_info.json {key.split('.')[1]}"))
        else:
            out.skip(key, f"the tool reads the format's own keys: rename the columns first ({layout.describe()})")
    if cfg.data.text_unit in ("auto", "line"):
        out.mapped.append(("data.text_unit", "(a text file is read one record per line)"))
    else:
        out.skip("data.text_unit", f"the tool reads a text file one record per line, not per {cfg.data.text_unit}: "
                                   "write the records as JSON Lines first")
    if cfg.data.truncated_replies == "keep":
        out.mapped.append(("data.truncated_replies", "(the tool's own policy for records over the length limit)"))
    else:
        out.skip("data.truncated_replies", "the tool does not skip records whose reply is cut at the length limit: "
                 "drop them from the data first (`tunewise train --dry-run` counts them)")


def preprocessing(cfg: TrainConfig, out: Exported, workers_key: str, cache_how: str | None) -> None:
    """data.num_proc under the tool's name for its tokenising processes; data.cache and data.cache_dir: what the
    tool caches instead (`cache_how`), or listed as not expressed (None: the tool tokenises on every run)."""
    d = cfg.data
    if d.num_proc:
        out.map("data.num_proc", workers_key, d.num_proc)
    else:
        out.mapped.append(("data.num_proc", f"({workers_key} left to the tool's default)"))
    for key in ("data.cache", "data.cache_dir"):
        if cache_how is None:
            out.skip(key, "the tool tokenises the data again on every run (tunewise keeps it keyed by content)")
        else:
            out.mapped.append((key, cache_how))


def write_export(out: Exported, path: str | Path, replace=None) -> list[str]:
    """The tool's config at `path` and its other files beside it; returns the paths written. `replace`
    (advisor.files.Replace): whether an existing config at `path` with other content may be replaced."""
    from advisor.files import atomic_write, dump_yaml

    p = Path(path)
    header = (f"# {out.tool} config written by `tunewise export` (the same job as the tunewise config)\n"
              f"# run: {out.command.format(config=p)}\n")
    if out.not_expressed:
        header += "# not expressed in this tool:\n" + "".join(f"#   {k}: {why}\n" for k, why in out.not_expressed)
    written = [str(atomic_write(p, header + dump_yaml(out.config), replace))]
    for name, content in out.files.items():
        written.append(str(atomic_write(p.parent / name, content)))
    return written


def abs_path(value: str) -> str:
    """A path as the tool needs it (absolute: tools read paths against their working directory), the model
    placeholder of an unfinished config left as it is."""
    from advisor.configgen import MODEL_PLACEHOLDER

    return value if value == MODEL_PLACEHOLDER else str(Path(value).expanduser().resolve())


def lora_targets(m) -> list[str] | str:
    return "all-linear" if m.target_modules == "all-linear" else list(m.target_modules)


def quantization_notes(m, out: Exported, compute_key: str | None) -> None:
    """QLoRA settings every tool handles the same way: the compute dtype (the run's precision unless set; the
    tool's key for it, or a note), and the fp32 upcast of embeddings and head (peft's prepare_model_for_kbit_training,
    which these tools call)."""
    if m.bnb_4bit_compute_dtype == "auto":
        out.mapped.append(("method.bnb_4bit_compute_dtype", "(the run's precision, the tools' default)"))
    elif compute_key:
        out.mapped.append(("method.bnb_4bit_compute_dtype", compute_key))
    else:
        out.skip("method.bnb_4bit_compute_dtype", f"no key for it: the compute dtype follows the precision, not "
                 f"{m.bnb_4bit_compute_dtype}")
    if m.upcast_embeddings:
        out.mapped.append(("method.upcast_embeddings", "(peft's prepare_model_for_kbit_training, the default)"))
    else:
        out.skip("method.upcast_embeddings", "the tool keeps peft's fp32 upcast of the embeddings and the head")


def template_mapping(out: Exported, key: str) -> None:
    """data.chat_template unset: the tool uses the tokenizer's own template, as tunewise does."""
    out.mapped.append(("data.chat_template", key))


def padding_free_note(cfg: TrainConfig, out: Exported, closest: str) -> None:
    """training.padding_free where the tool has no padding-free batches (only packing, which changes the batches)."""
    if cfg.training.padding_free:
        out.skip("training.padding_free", f"no padding-free batches: the run pads ({closest})")
    else:
        out.mapped.append(("training.padding_free", "(padded batches, the default)"))


def refuse_unexportable(cfg: TrainConfig, tool: str) -> None:
    """The method's unit says the tools have no such method (P-tuning's prompt encoder)."""
    from advisor.methods import method

    what = method(cfg.method.name).export_refusal
    if what:
        raise UserError(f"{tool} has no {what} method: train it with `tunewise train`, or choose lora for the export")


refuse_p_tuning = refuse_unexportable  # the name it had before the method registry wrote the refusal
