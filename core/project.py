"""The project file, `tunewise.yaml`: settings a team keeps next to its data (like `[tool.ruff]`), found in the
current folder or the nearest parent (up to the repository root), or named with `--project FILE`. Command-line
flags win over it; `--ignore` on the command line adds to the file's `ignore`, `--select` replaces its `select`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.data.layout import DataLayout
from core.files import load_model_file

PROJECT_FILE = "tunewise.yaml"


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    select: list[str] | None = Field(None, description="finding codes (or patterns such as `pair_*`) to report; "
                                     "default: all")
    ignore: list[str] = Field(default_factory=list, description="finding codes (or patterns) never reported")
    max_seq_len: int | None = Field(None, gt=0, description="training window in tokens")
    near_dup_threshold: float | None = Field(None, gt=0, le=1, description="MinHash similarity of near-duplicates")
    fail_on: Literal["never", "error", "warning"] | None = Field(None, description="exit 1 at this severity")
    samples: int | None = Field(None, ge=0, description="sample records shown per finding")
    tokenizer: str | None = Field(None, description="tokenizer.json for exact token counts (relative to this file)")
    workers: int | None = Field(None, ge=1, description="processes for the per-record checks (default: one per "
                                "core on files over 4 MB)")


class ProjectFile(BaseModel):
    """`tunewise.yaml`"""

    model_config = ConfigDict(extra="forbid")
    audit: AuditSettings = Field(default_factory=AuditSettings)
    data: DataLayout = Field(default_factory=DataLayout, description="how the data files are read: `columns` (which "
                             "column holds what), `tags` (turn keys and roles), `text_unit`, `format`; used by audit, "
                             "recommend and train (where the training config does not say)")


def find_project(start: Path | None = None) -> Path | None:
    """The nearest tunewise.yaml from `start` (default: the current folder) upward, stopping at a repository root."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
        if (folder / ".git").exists():
            return None
    return None


def load_project(path: str | Path | None = None, search: bool = True) -> tuple[ProjectFile, Path | None]:
    """The project file named, else the one found (when `search`), else the defaults."""
    found = Path(path) if path else (find_project() if search else None)
    if found is None:
        return ProjectFile(), None
    project = load_model_file(ProjectFile, found, "project file")
    tok = project.audit.tokenizer
    if tok and not Path(tok).is_absolute():
        project.audit.tokenizer = str(found.parent / tok)
    return project, found


def project_layout() -> tuple[DataLayout, str]:
    """How the nearest project file says data files are read (its `data:` section), and where that is (for
    errors): what `recommend` and `ask` audit with, as `audit` does."""
    project, path = load_project()
    return project.data, columns_origin(path) if path else "data.columns"


def columns_origin(path: str | Path) -> str:
    """`FILE:LINE: data.columns`, where a file's column mapping sits (named in errors about a mapped column)."""
    from core.errors import UserError
    from core.files import read_structured

    try:
        line = read_structured(path)[1].get(("data", "columns"))
    except UserError:
        line = None
    return f"{path}:{line}: data.columns" if line else f"{path}: data.columns"
