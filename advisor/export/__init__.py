"""Configs for the trainers users already run (Axolotl, LLaMA-Factory, TRL's `trl sft`), from a tunewise training
config: the same job — model, data in the tool's dataset format with the model's template, method and its
settings, sequence length, batch, schedule, precision, checkpointing, distributed settings, output folder. What a
tool cannot express is listed with the reason, never dropped silently. Torch-free.

One module per tool, one registry entry each (`TARGETS`): `build(cfg, fmt) -> Exported`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError
from core.exported import Exported  # noqa: F401 - what every exporter builds (the method units write into it)

if TYPE_CHECKING:  # the CLI reads TOOLS at start-up: no pydantic model imported here
    from advisor.export.common import Target
    from core.train_config import TrainConfig


def _targets() -> dict[str, Target]:
    from advisor.export import axolotl, llamafactory, trl_sft

    return {t.name: t for t in (axolotl.TARGET, llamafactory.TARGET, trl_sft.TARGET)}


TOOLS = ("axolotl", "llamafactory", "trl")  # the registry's names (tests/test_export.py checks they agree)


def export(cfg: TrainConfig, tool: str, dest: str | Path) -> Exported:
    """The tool's config for `cfg`, to be written at `dest` (files it names sit beside it)."""
    from advisor.export.common import data_format

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
    from advisor.export.common import data_layout

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


def write_export(out: Exported, path: str | Path, replace=None) -> list[str]:
    """The tool's config at `path` and its other files beside it; returns the paths written. `replace`
    (core.files.Replace): whether an existing config at `path` with other content may be replaced."""
    from core.files import atomic_write, dump_yaml

    p = Path(path)
    header = (f"# {out.tool} config written by `tunewise export` (the same job as the tunewise config)\n"
              f"# run: {out.command.format(config=p)}\n")
    if out.not_expressed:
        header += "# not expressed in this tool:\n" + "".join(f"#   {k}: {why}\n" for k, why in out.not_expressed)
    written = [str(atomic_write(p, header + dump_yaml(out.config), replace))]
    for name, content in out.files.items():
        written.append(str(atomic_write(p.parent / name, content)))
    return written
