"""The reader stage shared by `audit` and `train`: how the file holds its records (container), which format, which
columns, and why; what cannot be read is refused (exit 2) with the reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from core.data.formats import FORMATS, Sample, detect_format, kind_of, normalise
from core.data.layout import DataLayout, Layout, inferred_reason, layout_from, majority_layout
from core.data.reader import Container, RawRecord, iter_raw, sniff
from core.errors import UserError

DETECT_HEAD = 200  # records read to decide the format
UNREADABLE_SHARE = 0.5  # more invalid lines than this in the head: the file is not JSON Lines at all
# the keys each format is recognised by, in the order the reason names them
FORMAT_KEYS = {
    "alpaca": ("system", "instruction", "input", "output", "history"),
    "sharegpt": ("system", "conversations", "tools"),
    "openai": ("messages", "tools", "functions"),
    "prompt_completion": ("prompt", "question", "query", "completion", "response", "answer"),
    "text": ("text", "content"),
    "dpo": ("system", "prompt", "question", "query", "instruction", "input", "conversations", "messages", "chosen",
            "rejected"),
    "openai_preference": ("input", "preferred_output", "non_preferred_output"),
    "kto": ("prompt", "completion", "conversations", "messages", "label", "kto_tag"),
}
FORMAT_NAMES = {"alpaca": "alpaca", "sharegpt": "sharegpt", "openai": "OpenAI chat",
                "prompt_completion": "prompt/completion", "text": "plain text, continued pre-training",
                "dpo": "a preference pair, DPO/ORPO style", "openai_preference": "OpenAI preference format",
                "kto": "KTO, unpaired preference"}


@dataclass
class Detection:
    container: Container
    format: str
    reason: str
    layout: Layout | None = None  # the records' columns → the format's keys (a mapping given or a layout found)

    def as_dict(self) -> dict:
        return {"container": self.container.kind, "format": self.format, "kind": kind_of(self.format),
                "reason": f"{self.container.reason}; records have {self.reason}",
                **({"text_unit": self.container.text_unit} if self.container.text_unit else {}),
                **({"compression": self.container.compression} if self.container.compression else {}),
                **({"columns": {dst: src for dst, src in self.layout.pairs}} if self.layout else {})}

    def sample(self, obj: Any) -> Sample:
        """One record normalised, through the layout (its problems name the record's own fields)."""
        if self.layout is None:
            return normalise(obj, self.format)
        s = normalise(self.layout.apply(obj), self.format)
        s.problems = [(code, self.layout.explain(msg)) for code, msg in s.problems]
        return s

    def records(self, path: str | Path, parse: bool = True, meter=None):
        return iter_raw(path, self.container, parse=parse, meter=meter)


def open_dataset(path: str | Path, fmt: str = "auto", layout: DataLayout | None = None,
                 origin: str = "--columns") -> Detection:
    """Decide container, format and columns from the first records. `layout`: the user's settings (columns, tags,
    text unit, format); `origin` names where they came from in errors (the flag, or the file and field)."""
    layout = layout or DataLayout()
    fmt = fmt if fmt != "auto" else layout.format
    if fmt != "auto" and fmt not in FORMATS:
        raise UserError(f"--format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    container = sniff(path, layout.text_unit)
    head = list(islice(iter_raw(path, container), DETECT_HEAD))
    _refuse_unreadable(path, container, head)
    objs = [r.obj for r in head if r.error is None]
    if layout.columns is not None:
        mapped = layout_from(layout.columns, layout.tags, origin, objs)
        if fmt != "auto" and fmt != mapped.fmt and not _same_family(fmt, mapped.fmt):
            raise UserError(f"{origin}: the columns mapped ({', '.join(layout.columns.given())}) make `{mapped.fmt}` "
                            f"records, but the format is `{fmt}`; drop the format or map the columns it needs")
        return Detection(container, mapped.fmt, f"columns mapped by {origin}: {mapped.describe()}", mapped)
    if fmt != "auto":
        found = majority_layout(objs)
        if found is not None and found[0] == fmt:  # the format given, in a published layout
            return Detection(container, fmt, f"the format given ({fmt}): {inferred_reason(*found[:3])}",
                             Layout(found[0], found[1], "the records' keys", found[2]))
        return Detection(container, fmt, f"the format given with --format ({fmt})")
    return _detect(path, container, objs)


def _same_family(a: str, b: str) -> bool:
    sft = {"alpaca", "prompt_completion", "sharegpt", "openai"}
    return a in sft and b in sft


def _refuse_unreadable(path: str | Path, container: Container, head: list[RawRecord]) -> None:
    bad = [r for r in head if r.error is not None]
    if head and len(bad) > UNREADABLE_SHARE * len(head):
        first = bad[0]
        raise UserError(f"{path}:{first.line}: {len(bad)} of the first {len(head)} records do not parse "
                        f"({first.error}); this is not a {container.kind} file the audit can read")


def _detect(path: str | Path, container: Container, objs: list[Any]) -> Detection:
    """The format of most of the first records: a published layout when most have one, else a canonical format."""
    if not objs:
        return Detection(container, "unknown", "no readable record")
    found = majority_layout(objs)
    if found is not None:
        fmt, pairs, turns, n = found
        layout = Layout(fmt, pairs, "the records' keys", turns)
        return Detection(container, fmt, f"{inferred_reason(fmt, pairs, turns)} ({n} of the first {len(objs)} "
                                          "records)", layout)
    canonical = Counter(f for f in map(detect_format, objs) if f)
    if canonical:
        best, n = canonical.most_common(1)[0]
        return Detection(container, best, f"{format_reason(best, objs)} ({n} of the first {len(objs)} records)")
    keys = sorted({k for o in objs[:20] if isinstance(o, dict) for k in o})[:12]
    raise UserError(f"{path}: cannot tell the format from the keys {keys}; expected alpaca (instruction/output), "
                    "sharegpt (conversations), openai (messages), prompt/completion, text, or preference data "
                    "(chosen/rejected, preferred_output, label); map the columns with --columns "
                    "prompt=COLUMN,response=COLUMN (or the `data.columns` section of tunewise.yaml), or pass "
                    "--format")


def format_reason(fmt: str, objs: list[Any]) -> str:
    """Why the records are taken for `fmt`: the keys that decide it, those the records really have."""
    present = Counter(k for o in objs[:DETECT_HEAD] if isinstance(o, dict) and detect_format(o) == fmt for k in o)
    keys = [k for k in FORMAT_KEYS.get(fmt, ()) if present.get(k)]
    shown = " / ".join(f"`{k}`" for k in keys) or "no known key"
    return f"{shown} ({FORMAT_NAMES.get(fmt, fmt)})"


def trainable(path: str | Path, fmt: str = "auto", layout: DataLayout | None = None,
           origin: str = "data.columns") -> Detection:
    """The reader stage as `train` (and the exports of its config) use it: `open_dataset`, refusing what `train`
    cannot train: an unknown format, preference data."""
    det = open_dataset(path, fmt, layout, origin)
    if det.format == "unknown":
        raise UserError(f"{path}: cannot tell the data format (no readable record); set data.format")
    if kind_of(det.format) == "preference":
        raise UserError(f"{path}: preference data ({det.format}: chosen/rejected pairs or labelled completions); "
                        "`tunewise train` runs supervised fine-tuning: train on the chosen answers as a "
                        "conversation file, or use TRL's DPOTrainer / KTOTrainer for preference tuning")
    return det


def trainable_format(path: str | Path, fmt: str = "auto", layout: DataLayout | None = None,
                  origin: str = "data.columns") -> str:
    return trainable(path, fmt, layout, origin).format
