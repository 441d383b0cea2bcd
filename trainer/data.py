"""The records a run trains on: read with the audit's reader (one loader for both), encoded (trainer/encoding.py)
through the on-disk cache (trainer/data_cache.py), split into train and validation, and batched for the Trainer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.data.detect import trainable
from core.data.layout import DataLayout
from core.errors import UserError
from trainer.data_cache import CacheUse, PrepSettings, cached_prepare
from trainer.encoding import Encoded, conversation


@dataclass
class Prepared:
    train: Sequence[Encoded]  # an EncodedTable (memory-mapped Arrow rows) from `prepare`
    val: Sequence[Encoded]
    fmt: str
    skipped: dict[str, list[int]] = field(default_factory=dict)  # reason → record indices
    truncated: int = 0
    system_merged: int = 0  # records whose system text went into the first user turn (no system role)
    cut_replies: int = 0  # records cut at max_seq_len inside a trained reply (kept or skipped by data.truncated_replies)
    template_mode: str = ""  # how assistant turns were found (trainer/spans.py)
    total: int = 0  # records in the file
    reasoning: ReasoningUse | None = None  # records whose replies reason first, and what was done with it
    cache: CacheUse | None = None  # where the encoded records came from (trainer/data_cache.py)
    copies: int = 0  # usable records that repeat another exactly (kept on the same side of the split)
    distinct: int = 0  # usable records without counting those copies
    empty_answers: list[int] = field(default_factory=list)  # records whose every trained answer is empty
    read_as: str = ""  # how the file was read: container, format, columns and why (the audit's detection reason)
    columns: dict[str, str] | None = None  # the format's key → the file's column, when columns were mapped or found


@dataclass
class ReasoningUse:
    """What training does with `<think>…</think>` reasoning in the replies (reported by --dry-run and the summary)."""
    mode: str  # "train": the reasoning is trained with its answer; "drop": only the answer is
    records: int  # conversations with at least one reasoning reply
    template_drops_it: int  # ... whose template strips it, so tunewise renders it back (mode train)

    def describe(self) -> str:
        if self.mode == "drop":
            return (f"{self.records} record(s) reason in <think>…</think>: the reasoning is dropped and only the "
                    "answers are trained (data.reasoning: drop)")
        how = (f"; the chat template strips it in {self.template_drops_it}, so it is rendered back before each "
               "answer" if self.template_drops_it else "")
        return (f"{self.records} record(s) reason in <think>…</think>: the reasoning is trained with each answer"
                f"{how} (data.reasoning: drop trains the answers only)")


def load_conversations(path: str | Path, fmt: str = "auto", system_prompt: str | None = None,
                       layout: DataLayout | None = None, origin: str = "data.columns"):
    """(the usable records as (record index, messages as role/content dicts), the format, the skipped record
    indices by reason, how many records the file holds)."""
    det = trainable(path, fmt, layout, origin)
    out, skipped, total = [], {}, 0
    for r in det.records(path):
        total += 1
        msgs, reason = conversation(r, det.format, system_prompt, det.layout)
        if reason:
            skipped.setdefault(reason, []).append(r.index)
        else:
            out.append((r.index, msgs))
    return out, det.format, skipped, total


def prepare(path: str | Path, tokenizer, *, fmt: str = "auto", max_seq_len: int = 1024, val_size: float = 0.1,
            assistant_only: bool = True, system_prompt: str | None = None, seed: int = 42,
            drop_untrainable: bool = False, model_path: str | None = None, reasoning: str = "train",
            cache: bool = True, cache_dir: str | Path | None = None, num_proc: int | None = None,
            progress: bool = False, layout: DataLayout | None = None, layout_origin: str = "data.columns",
            truncated_replies: str = "keep") -> Prepared:
    """The records of `path` rendered, tokenised, labelled and split (train / validation by `seed`), through the
    on-disk cache (trainer/data_cache.py): built once per data file, tokenizer and settings."""
    det = trainable(path, fmt, layout, layout_origin)
    fmt = det.format
    settings = PrepSettings(fmt, max_seq_len, val_size, assistant_only, system_prompt, seed, reasoning, det.layout,
                            layout.text_unit if layout else "auto", truncated_replies)
    meta, train, val, use = cached_prepare(path, tokenizer, settings, model_path, enabled=cache, cache_dir=cache_dir,
                                           num_proc=num_proc, progress=progress)
    skipped = {k: list(v) for k, v in meta["skipped"].items()}
    empty = skipped.get("no_trainable_tokens", [])
    if empty and not drop_untrainable:
        raise UserError(f"{len(empty)} record(s) have no trainable tokens after truncation to {max_seq_len} "
                        f"(first: record {empty[0]}): raise data.max_seq_len, shorten them, or set "
                        "data.drop_untrainable: true")
    if not len(train) and not len(val):
        raise UserError(f"{path}: no usable records (skipped: {', '.join(f'{k} {len(v)}' for k, v in skipped.items())}); "
                        "run `tunewise audit` on it")
    if not len(train):
        raise UserError(f"data.val_size {val_size} leaves no training records ({len(val)} usable)")
    spans_used = assistant_only and fmt != "text"
    used = ReasoningUse(reasoning, meta["reasoning_records"], meta["reasoning_restored"]) if spans_used else None
    return Prepared(train=train, val=val, fmt=fmt, skipped=skipped, truncated=meta["truncated"],
                    system_merged=meta["system_merged"], cut_replies=meta.get("cut_replies", 0),
                    template_mode=meta["template_mode"], total=meta["total"],
                    reasoning=used if used and used.records else None, cache=use, copies=meta["copies"],
                    distinct=meta["distinct"], empty_answers=list(meta["empty_answers"]),
                    read_as=det.as_dict()["reason"], columns={d: c for d, c in det.layout.pairs} if det.layout else None)


def prepare_for(cfg, tokenizer, *, drop_untrainable: bool | None = None, progress: bool = False,
                fmt: str | None = None) -> Prepared:
    """`prepare` with a training config's data settings (training, evaluation and merge read the same cached
    records: the same key). `fmt`: the format already detected (else data.format, detected when auto)."""
    d = cfg.data
    del fmt  # the format is detected again with the columns (200 records: cheap), so the reason stays the audit's
    return prepare(d.path, tokenizer, fmt=d.format, max_seq_len=d.max_seq_len, val_size=d.val_size,
                   assistant_only=d.assistant_only_loss, system_prompt=d.system_prompt, seed=cfg.training.seed,
                   drop_untrainable=d.drop_untrainable if drop_untrainable is None else drop_untrainable,
                   model_path=cfg.model.path, reasoning=d.reasoning, cache=d.cache, cache_dir=d.cache_dir,
                   num_proc=d.num_proc, progress=progress, layout=d.layout(), layout_origin=d.columns_origin,
                   truncated_replies=d.truncated_replies)


class Collator:
    """Right-pads a batch; padding positions get label -100 and attention 0, so a pad token equal to EOS is
    safe: real EOS tokens keep their labels. `padding_free`: the batch as one row instead, each record's position
    ids starting at 0 (transformers builds a per-record causal mask from them) and its first label masked, so no
    record predicts from another's tokens; the trained labels are exactly the padded batch's."""

    def __init__(self, pad_id: int, multiple_of: int = 8, padding_free: bool = False) -> None:
        self.pad_id = pad_id
        self.multiple_of = multiple_of
        self.padding_free = padding_free
        self.records_seen_list: list[int] = []  # which examples this process trained on

    @property
    def records_seen(self) -> set[int]:
        return set(self.records_seen_list)

    def __call__(self, batch: list[dict]):
        import torch

        self.records_seen_list.extend(b["record"] for b in batch if "record" in b)
        if self.padding_free:
            return self.flat(batch)
        longest = max(len(b["input_ids"]) for b in batch)
        if self.multiple_of > 1:
            longest = -(-longest // self.multiple_of) * self.multiple_of
        ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    @staticmethod
    def flat(batch: list[dict]) -> dict:
        import torch

        ids, labels, positions = [], [], []
        for b in batch:
            ids += b["input_ids"]
            labels += [-100, *b["labels"][1:]]  # the first token is never a target (it would be from the previous record)
            positions += range(len(b["input_ids"]))
        # no attention mask and no cache: that is when transformers reads packed records from the position ids
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([positions]), "use_cache": False}


def lengths_of(items) -> list[int]:
    """Token counts per item: from the table's length column (no row is built) when there is one."""
    from_table = getattr(items, "lengths", None)
    return list(from_table) if from_table is not None else [len(e.input_ids) for e in items]


class TokenDataset:
    """A map-style dataset the HF Trainer can sample (with lengths for length-grouped batching)."""

    def __init__(self, items: list[Encoded], track: bool = True) -> None:
        self.items = items
        self.track = track  # pass the record index on, so the collator can note what was trained on

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        e = self.items[i]
        item = {"input_ids": e.input_ids, "labels": e.labels}
        if self.track:
            item["record"] = e.record
        return item

    @property
    def lengths(self) -> list[int]:
        return lengths_of(self.items)
