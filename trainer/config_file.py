"""A training config file as a run reads it: validated, its relative paths read against the file's folder, and the
data columns of the project file beside it when the config names none."""

from __future__ import annotations

from pathlib import Path

from core.files import load_model_file
from core.train_config import TrainConfig


def load_config(path: str, overrides: list[str] | None = None) -> TrainConfig:
    """The config, validated, with its relative paths read against the file's folder; without `data.columns`, the
    columns of the project file (tunewise.yaml) beside it, so that the mapping the audit read is the one that
    trains."""
    cfg = load_model_file(TrainConfig, path, "training config", overrides).resolve_paths(path)
    from core.project import columns_origin

    cfg.data._columns_origin = columns_origin(path)
    return with_project_columns(cfg, Path(path).resolve().parent)


def with_project_columns(cfg: TrainConfig, folder: Path) -> TrainConfig:
    if cfg.data.columns is not None:
        return cfg
    from core.project import columns_origin, find_project, load_project

    found = find_project(folder)
    if found is None:
        return cfg
    data = load_project(found)[0].data
    if data.columns is None and data.text_unit == "auto":
        return cfg
    update = {"columns": data.columns, "tags": data.tags or cfg.data.tags,
              **({"text_unit": data.text_unit} if cfg.data.text_unit == "auto" else {})}
    section = cfg.data.model_copy(update=update)
    section._columns_origin = columns_origin(found)
    return cfg.model_copy(update={"data": section})
