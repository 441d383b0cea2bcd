"""Records → token ids and labels: a read record as the messages a chat template reads, rendered with the template,
tokenised without a token across a trained span's edge, and labelled so that only each assistant reply and its
end-of-turn token are trained (trainer/spans.py finds them: generation markers, TRL's training variant of the
family's template, or prefix rendering)."""

from __future__ import annotations

from dataclasses import dataclass

from core.data import normalise
from core.data.layout import Layout
from core.errors import UserError


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    record: int


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
