"""Records → token ids and labels. Loads with the audit's reader (one loader for both), renders each
conversation with the chat template, and trains only on each assistant reply and its end-of-turn token
(trainer/spans.py finds them: generation markers, TRL's training variant of the family's template, or
prefix rendering)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.data import normalise
from advisor.data.detect import Detection, open_dataset
from advisor.data.formats import kind_of
from advisor.data.layout import DataLayout, Layout
from advisor.errors import UserError

if TYPE_CHECKING:
    from trainer.data_cache import CacheUse


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    record: int


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


def detect(path: str | Path, fmt: str = "auto", layout: DataLayout | None = None,
           origin: str = "data.columns") -> Detection:
    """The audit's reader stage (container, format, the columns mapped or found), refusing what `train` cannot
    train: an unknown format, preference data."""
    det = open_dataset(path, fmt, layout, origin)
    if det.format == "unknown":
        raise UserError(f"{path}: cannot tell the data format (no readable record); set data.format")
    if kind_of(det.format) == "preference":
        raise UserError(f"{path}: preference data ({det.format}: chosen/rejected pairs or labelled completions); "
                        "`tunewise train` runs supervised fine-tuning: train on the chosen answers as a "
                        "conversation file, or use TRL's DPOTrainer / KTOTrainer for preference tuning")
    return det


def detect_format(path: str | Path, fmt: str = "auto", layout: DataLayout | None = None,
                  origin: str = "data.columns") -> str:
    return detect(path, fmt, layout, origin).format


def load_conversations(path: str | Path, fmt: str = "auto", system_prompt: str | None = None,
                       layout: DataLayout | None = None, origin: str = "data.columns"):
    """(the usable records as (record index, messages as role/content dicts), the format, the skipped record
    indices by reason, how many records the file holds)."""
    det = detect(path, fmt, layout, origin)
    out, skipped, total = [], {}, 0
    for r in det.records(path):
        total += 1
        msgs, reason = conversation(r, det.format, system_prompt, det.layout)
        if reason:
            skipped.setdefault(reason, []).append(r.index)
        else:
            out.append((r.index, msgs))
    return out, det.format, skipped, total


def conversation(r, fmt: str, system_prompt: str | None = None,
                 layout: Layout | None = None) -> tuple[list[dict] | None, str | None]:
    """One read record → (its messages as chat templates read them, None), or (None, why it is skipped:
    invalid_json, schema or no_assistant). `layout`: the record's columns → the format's keys."""
    if r.error is not None:
        return None, "invalid_json"
    s = normalise(r.obj if layout is None else layout.apply(r.obj), fmt)
    if s.problems:
        return None, "schema"
    msgs = [template_message(m) for m in s.messages]
    if system_prompt and fmt != "text" and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": system_prompt, "train": False})
    if fmt != "text" and not any(m["role"] == "assistant" for m in msgs):
        return None, "no_assistant"
    if s.tools:
        msgs[0]["tools"] = s.tools  # carried with the first message to the renderer (trainer.spans.split_tools)
    return msgs, None


def template_message(m) -> dict:
    """A message as chat templates read it: tool calls structured (not as text), tool results named; a reply's
    reasoning (`<think>…</think>` or a reasoning field) noted for the span finder, which trains or drops it."""
    from trainer.spans import split_reasoning

    d = {"role": m.role, "content": m.content if m.text is None else m.text, "train": m.trainable}
    if m.role == "assistant" and (r := split_reasoning(d["content"], m.reasoning)) is not None:
        d["reasoning"] = r
        d["content"] = r.block + r.answer  # the reply as written, reasoning first
    if m.tool_calls:
        d["tool_calls"] = m.tool_calls
    if m.name:
        d["name"] = m.name
    if m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
    return d


def template_refusal(index: int, e) -> str:
    """Why a record cannot be rendered by the chat template, and what to do."""
    return (f"record {index}: the chat template refuses this conversation ({e}); fix the record (roles must "
            "follow the order the template expects, tool calls and results the shape it reads) or set "
            "data.chat_template to a template that renders it")


def merge_system(msgs: list[dict]) -> list[dict]:
    """For templates without a system role (Gemma, Mistral v0.1): the system text opens the first user turn, as
    those model cards advise."""
    from trainer.spans import split_tools

    system = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
    tools = split_tools(msgs)[1]
    rest = [{k: v for k, v in m.items() if k != "tools"} for m in msgs if m["role"] != "system"]
    first = next((m for m in rest if m["role"] == "user"), None)
    if first is None:
        rest = [{"role": "user", "content": system, "train": False}, *rest]
    else:
        first["content"] = f"{system}\n\n{first['content']}"
    if tools:
        rest[0]["tools"] = tools
    return rest


class Encoder:
    def __init__(self, tokenizer, max_seq_len: int, assistant_only: bool = True, model_path: str | None = None,
                 reasoning: str = "train") -> None:
        self.tok = tokenizer
        self.reasoning = reasoning
        self.max_len = max_seq_len
        self.assistant_only = assistant_only
        self.eos = tokenizer.eos_token or ""
        self._finder = None
        self.model_path = model_path
        self.system_merged = 0  # records whose system text went into the first user turn
        self.reply_cut = False  # the last record encoded was cut inside a trained reply (its end token lost)

    @property
    def finder(self):
        from trainer.spans import SpanFinder

        if self._finder is None:
            self._finder = SpanFinder(self.tok, self.model_path, self.reasoning)
        return self._finder

    def render(self, msgs: list[dict], add_generation_prompt: bool = False) -> str:
        from trainer.spans import split_tools

        plain, tools = split_tools(msgs)
        return self.tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt,
                                            tools=tools)

    def spans(self, msgs: list[dict], fmt: str, index: int = 0) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the character spans to train on."""
        from trainer.spans import TemplateFailure

        if fmt == "text":
            text = msgs[0]["content"] + self.eos
            return text, [(0, len(text))]
        if not self.assistant_only:
            from trainer.spans import answer_only

            try:
                text = self.render([answer_only(m, hand_over=False) for m in msgs] if self.reasoning == "drop"
                                   else msgs)
            except Exception as e:  # the template's own code failed
                raise UserError(template_refusal(index, TemplateFailure(e))) from None
            return text, [(0, len(text))]
        system = [m["content"].strip() for m in msgs if m["role"] == "system" and isinstance(m.get("content"), str)
                  and m["content"].strip()]
        try:
            text, spans = self.finder.spans(msgs)
        except UserError as e:
            raise UserError(f"record {index}: {e}") from None
        except TemplateFailure as e:
            if not system:
                raise UserError(template_refusal(index, e)) from None
            try:
                out = self.finder.spans(merge_system(msgs))
            except TemplateFailure:
                raise UserError(template_refusal(index, e)) from None
            self.system_merged += 1
            return out
        if system and not all(s in text for s in system):
            # the template drops the system prompt here (Mistral-Nemo writes it only into a final user turn):
            # put it into the first user turn, where it is rendered, and count it
            try:
                merged = self.finder.spans(merge_system(msgs))
            except (TemplateFailure, UserError):
                merged = None
            if merged is not None and all(s in merged[0] for s in system):
                self.system_merged += 1
                return merged
        return text, spans

    def encode(self, index: int, msgs: list[dict], fmt: str) -> tuple[Encoded, bool]:
        text, spans = self.spans(msgs, fmt, index)
        ids, offsets = self.tokenize(tokenizable(text), spans)
        labels = span_labels(ids, offsets, spans)
        truncated = len(ids) > self.max_len
        self.reply_cut = truncated and labels[self.max_len] != -100  # the cut falls inside a trained stretch
        return Encoded(ids[: self.max_len], labels[: self.max_len], index), truncated

    def tokenize(self, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets, with no token across a span's edge: a reply that starts with a newline
        would otherwise merge with the template's separator (`\n` + `\n` → one `\n\n` token) and lose its first
        token. A token across an edge is re-tokenized in its parts, as the model meets them: the prompt ends
        before the reply at generation time. Where the parts do not re-tokenize to the same text (SentencePiece
        adds a leading space), the token is kept whole and trained, so the reply is never cut."""
        ids, offsets = self._ids_offsets(text)
        edges = sorted({x for span in spans for x in span})
        if not crosses(offsets, edges):
            return ids, offsets
        out_ids, out_offsets = [], []
        for tid, (a, b) in zip(ids, offsets, strict=True):
            cuts = [x for x in edges if a < x < b]
            parts = self._split_token(text, a, b, cuts) if cuts else None
            if parts is None:
                out_ids.append(tid)
                out_offsets.append((a, b) if not cuts else self._widen(a, b, spans))
                continue
            for pid, off in parts:
                out_ids.append(pid)
                out_offsets.append(off)
        return out_ids, out_offsets

    def _ids_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character offsets of `text` without special tokens: straight from the Rust tokenizer when
        it has no truncation or padding of its own (the same result, without the per-call conversions)."""
        backend = getattr(self.tok, "backend_tokenizer", None)
        if backend is not None and backend.truncation is None and backend.padding is None:
            enc = backend.encode(text, add_special_tokens=False)
            return enc.ids, enc.offsets
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _split_token(self, text: str, a: int, b: int, cuts: list[int]) -> list[tuple[int, tuple[int, int]]] | None:
        pieces = []
        for lo, hi in zip([a, *cuts], [*cuts, b], strict=True):
            enc = self.tok(text[lo:hi], add_special_tokens=False, return_offsets_mapping=True)
            if self.tok.decode(enc["input_ids"]) != text[lo:hi]:
                return None
            pieces += [(pid, (lo + x, lo + y)) for pid, (x, y) in zip(enc["input_ids"], enc["offset_mapping"],
                                                                     strict=True)]
        return pieces

    @staticmethod
    def _widen(a: int, b: int, spans: list[tuple[int, int]]) -> tuple[int, int]:
        """A token across a span's start that cannot be split: counted inside the span (trained)."""
        for s, e in spans:
            if a < s < b <= e:
                return s, b
        return a, b


def tokenizable(text: str) -> str:
    """The text with any lone surrogate (JSON allows `\\ud800`; tokenizers refuse it) replaced by `?`: one
    character for one, so every character offset and span stays where it was."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _offset_columns(offsets: list[tuple[int, int]]):
    """(token starts, token ends) as arrays."""
    from itertools import chain

    import numpy as np

    o = np.fromiter(chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets)).reshape(-1, 2)
    return o[:, 0], o[:, 1]


def crosses(offsets: list[tuple[int, int]], edges: list[int]) -> bool:
    """Whether any token runs across one of the character positions `edges` (starts before it, ends after it)."""
    if not edges or not offsets:
        return False
    a, b = _offset_columns(offsets)
    return any(bool(((a < x) & (x < b)).any()) for x in edges)


def span_labels(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Each token's id where the token lies wholly inside one of the character `spans` (and is not empty), else
    -100 (no loss)."""
    import numpy as np

    if not ids:
        return []
    a, b = _offset_columns(offsets)
    inside = np.zeros(len(ids), dtype=bool)
    for s, e in spans:
        inside |= (a >= s) & (b <= e)
    return np.where(inside & (b > a), np.asarray(ids, dtype=np.int64), -100).tolist()


def label_runs(e: Encoded) -> list[tuple[bool, list[int]]]:
    """The record's tokens in runs of (trained or not, token ids)."""
    runs: list[tuple[bool, list[int]]] = []
    for tid, lab in zip(e.input_ids, e.labels, strict=True):
        trained = lab != -100
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(tid)
        else:
            runs.append((trained, [tid]))
    return runs


def trained_runs(e: Encoded, tokenizer) -> list[str]:
    """The decoded text of each run of loss-bearing tokens (what `train --dry-run --json` shows as `trained`)."""
    return [tokenizer.decode(ids) for trained, ids in label_runs(e) if trained]


def prepare(path: str | Path, tokenizer, *, fmt: str = "auto", max_seq_len: int = 1024, val_size: float = 0.1,
            assistant_only: bool = True, system_prompt: str | None = None, seed: int = 42,
            drop_untrainable: bool = False, model_path: str | None = None, reasoning: str = "train",
            cache: bool = True, cache_dir: str | Path | None = None, num_proc: int | None = None,
            progress: bool = False, layout: DataLayout | None = None, layout_origin: str = "data.columns",
            truncated_replies: str = "keep") -> Prepared:
    """The records of `path` rendered, tokenised, labelled and split (train / validation by `seed`), through the
    on-disk cache (trainer/data_cache.py): built once per data file, tokenizer and settings."""
    from trainer.data_cache import PrepSettings, cached_prepare

    det = detect(path, fmt, layout, layout_origin)
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
