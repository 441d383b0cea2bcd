"""The records a finding is about, as the HTML report shows them: read again from the audited file (the report keeps
only record numbers and short samples), each message with the spots the finding is about marked (the leak, the
placeholder, the e-mail address, the words in which copies differ), and long messages clipped around those spots.
Every piece is escaped once, after it is cut, so no entity is ever cut in half."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from advisor.audit.checks import TEMPLATE_LEAK, find_placeholder
from advisor.audit.pii import find_pii
from core.data.formats import Sample
from core.data.formats import normalise as to_sample
from core.data.reader import iter_raw, parse_line

MESSAGE_CHARS = 1200  # a message longer than this is clipped (around its marks, else its head and tail)
CONTEXT_CHARS = 240  # characters kept on each side of a mark in a clipped message
HEAD_CHARS, TAIL_CHARS = 800, 240  # a clipped message without marks: its beginning and its end
DIFF_TOKENS = 6000  # longer messages are not compared word by word (difflib is quadratic at worst)
_TOKENS = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)
_QUOTED = re.compile(r"`([^`]{2,})`")

Span = tuple[int, int]


@dataclass
class Shown:
    """One message of a record as shown: who said it, the text, and the character spans to mark."""
    role: str
    text: str
    marks: list[Span] = field(default_factory=list)


@dataclass
class ShownRecord:
    index: int
    line: int
    messages: list[Shown]
    raw: str | None = None  # the record as JSON, when it does not read as the file's format

    def fresh(self) -> ShownRecord:
        """A copy without marks (a record shown under two findings gets each finding's marks only)."""
        return ShownRecord(self.index, self.line, [Shown(m.role, m.text) for m in self.messages], self.raw)


def load_records(path: str, fmt: str, wanted: Iterable[int]) -> dict[int, ShownRecord]:
    """The wanted records of the file, normalised to messages (one pass, stops after the last wanted record)."""
    want = set(wanted)
    out: dict[int, ShownRecord] = {}
    if not want:
        return out
    last = max(want)
    try:
        for rec in iter_raw(path, parse=False):
            if rec.index > last:
                break
            if rec.index in want:
                raw = rec.raw
                out[rec.index] = _shown(parse_line(rec) if raw is not None else rec, fmt, raw)
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # the file changed or went away since the audit: the page says the record could not be read again
    return out


def _shown(rec, fmt: str, raw: bytes | None) -> ShownRecord:
    if rec.error is not None:  # shown as the file has it (clipped like any long message)
        return ShownRecord(rec.index, rec.line, [], raw=(raw or b"").decode("utf-8", "replace") or rec.error)
    s: Sample = to_sample(rec.obj, fmt)
    if not s.messages:
        return ShownRecord(rec.index, rec.line, [], raw=json.dumps(rec.obj, ensure_ascii=False, indent=1))
    msgs = [Shown("text" if fmt == "text" else m.role, m.content) for m in s.messages]
    if s.rejected:
        msgs += [Shown(f"rejected {m.role}", m.content) for m in s.rejected]
    return ShownRecord(rec.index, rec.line, msgs)


# ---- what to mark ------------------------------------------------------------------------------------------------

def mark_finding(record: ShownRecord, code: str, detail: str | None) -> None:
    """Mark in every message what the finding `code` is about (its detail names it when no finder does)."""
    quoted = _QUOTED.search(detail or "")
    needle = quoted.group(1).rstrip("…").strip() if quoted else ""
    for m in record.messages:
        m.marks += _spans(code, m.text, needle)


def _spans(code: str, text: str, needle: str) -> list[Span]:
    if code == "template_leak":
        return [mt.span() for mt in TEMPLATE_LEAK.finditer(text)]
    if code == "pii":
        return [span for h in find_pii(text) for span in _where(text, h.value, h.span)]
    if code == "placeholder":
        needle = find_placeholder(text) or needle
    if not needle:
        return []
    low, n = text.lower(), needle.lower()
    return [(i, i + len(n)) for i in _find_all(low, n)][:20]


def _where(text: str, value: str, span: Span) -> list[Span]:
    """A hit's span, or where its value is when the finder gave no span."""
    if span[1] > span[0]:
        return [span]
    return [(i, i + len(value)) for i in _find_all(text, value)] if value else []


def _find_all(text: str, needle: str):
    i = text.find(needle)
    while i >= 0:
        yield i
        i = text.find(needle, i + len(needle))


def mark_differences(group: list[ShownRecord]) -> None:
    """Mark the words in which each member differs from the first (and the first from the second), message by
    message where the roles line up."""
    if len(group) < 2:
        return
    first = group[0]
    for other in group[1:]:
        for a, b in zip(first.messages, other.messages, strict=False):
            if a.role == b.role:
                b.marks += word_diff(a.text, b.text)
        for b in other.messages[len(first.messages):]:
            b.marks.append((0, len(b.text)))  # a message the first record does not have
    for a, b in zip(first.messages, group[1].messages, strict=False):
        if a.role == b.role:
            a.marks += word_diff(b.text, a.text)


def word_diff(a: str, b: str) -> list[Span]:
    """Character spans of `b` (whole words) that are not in `a`."""
    if a == b:
        return []
    ta, tb = _TOKENS.findall(a), _TOKENS.findall(b)
    if len(ta) > DIFF_TOKENS or len(tb) > DIFF_TOKENS:
        return []
    starts = [0]
    for t in tb:
        starts.append(starts[-1] + len(t))
    spans = []
    for op, _, _, j1, j2 in SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if op in ("replace", "insert"):
            while j1 < j2 and tb[j1].isspace():
                j1 += 1
            while j2 > j1 and tb[j2 - 1].isspace():
                j2 -= 1
            if j1 < j2:
                spans.append((starts[j1], starts[j2]))
    return spans


# ---- rendering ---------------------------------------------------------------------------------------------------

def merged(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def shown_windows(text: str, marks: list[Span]) -> list[Span]:
    """The parts of a message that are shown: all of a short one; of a long one, the text around its marks (or its
    head and tail), cut between words."""
    n = len(text)
    if n <= MESSAGE_CHARS:
        return [(0, n)]
    if not marks:
        return [(0, _snap(text, HEAD_CHARS, -1)), (_snap(text, n - TAIL_CHARS, 1), n)]
    return merged([(_snap(text, max(0, s - CONTEXT_CHARS), 1), _snap(text, min(n, e + CONTEXT_CHARS), -1))
                   for s, e in marks[:12]])


def _snap(text: str, at: int, direction: int, reach: int = 40) -> int:
    """`at` moved to the nearest space within `reach` characters in `direction` (so no word is cut in half)."""
    if at <= 0 or at >= len(text) or text[at - 1].isspace() or text[at].isspace():
        return at
    for k in range(1, reach):
        j = at + k * direction
        if not 0 < j < len(text):
            break
        if text[j].isspace():
            return j + 1 if direction > 0 else j
    return at


def text_html(text: str, marks: list[Span]) -> str:
    """The message as HTML: escaped piece by piece, marks in <mark>, clipped parts replaced by a note of how many
    characters were left out."""
    marks = merged([(max(0, s), min(len(text), e)) for s, e in marks if e > s])
    parts, pos = [], 0
    for ws, we in shown_windows(text, marks):
        if ws > pos:
            parts.append(f'<span class="cut">[… {ws - pos:,} characters …]</span>')
        at = ws
        for s, e in marks:
            if e <= ws or s >= we:
                continue
            s, e = max(s, ws), min(e, we)
            parts.append(html.escape(text[at:s]))
            parts.append(f"<mark>{html.escape(text[s:e])}</mark>")
            at = e
        parts.append(html.escape(text[at:we]))
        pos = we
    if pos < len(text):
        parts.append(f'<span class="cut">[… {len(text) - pos:,} characters …]</span>')
    if not text.strip():
        return f'<span class="empty">({"empty" if not text else f"only whitespace, {len(text)} character(s)"})</span>'
    return "".join(parts)


def record_html(rec: ShownRecord | None, index: int, note: str = "", line: int | None = None) -> str:
    """One record as a card: its number and line, a note (what was found), and every message."""
    where = f"line {rec.line}" if rec is not None and rec.line else (f"line {line}" if line else "")
    head = (f'<div class="rh"><b>record {index}</b>{f" · {where}" if where else ""}'
            f'{f" · {html.escape(note)}" if note else ""}</div>')
    if rec is None:
        return f'<article class="rec">{head}<p class="empty">could not be read again from the file</p></article>'
    if rec.raw is not None:
        return f'<article class="rec">{head}<pre class="raw">{text_html(rec.raw, [])}</pre></article>'
    body = "".join(f'<div class="m"><span class="role">{html.escape(m.role)}</span>'
                   f'<div class="t">{text_html(m.text, m.marks)}</div></div>' for m in rec.messages)
    return f'<article class="rec">{head}{body}</article>'
