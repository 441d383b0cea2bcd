"""Stream records from JSONL, JSON arrays and CSV without loading the whole file.

Record index = position in the file (JSONL: n-th non-empty line; JSON: n-th element; CSV: n-th row).
A JSONL line that does not parse is yielded as a record with an error (the audit goes on); a JSON array
that cannot be parsed raises UserError with file, line and column."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import UserError

CHUNK = 1 << 20
MAX_DEPTH = 64


@dataclass(slots=True)
class RawRecord:
    index: int
    line: int  # 1-based line where the record starts
    obj: Any = None
    error: str | None = None


def _too_deep(obj: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return True
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return False


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nesting too deep", text, 0) from None


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if head.startswith(b"[") else "jsonl"


def iter_raw(path: str | Path) -> Iterator[RawRecord]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"dataset `{p}` does not exist (or is not a file)")
    kind = file_kind(p)
    if kind == "jsonl":
        yield from _iter_jsonl(p)
    elif kind == "csv":
        yield from _iter_csv(p)
    else:
        yield from _iter_json_array(p)


def _iter_jsonl(p: Path) -> Iterator[RawRecord]:
    index = 0
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield RawRecord(index, lineno, error=f"not UTF-8 ({e.reason} at byte {e.start})")
                index += 1
                continue
            try:
                obj = _decode(text)
                deep = text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(obj)
                yield RawRecord(index, lineno, obj=obj) if not deep else RawRecord(
                    index, lineno, error=f"nesting deeper than {MAX_DEPTH} levels")
            except json.JSONDecodeError as e:
                yield RawRecord(index, lineno, error=f"invalid JSON at column {e.colno}: {e.msg}")
            index += 1


def _iter_csv(p: Path) -> Iterator[RawRecord]:
    delim = "\t" if p.suffix.lower() == ".tsv" else ","
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delim)
            for i, row in enumerate(reader):
                if None in row:
                    yield RawRecord(i, reader.line_num, error="more cells than header columns")
                    continue
                yield RawRecord(i, reader.line_num, obj={k: v for k, v in row.items() if k is not None})
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise UserError(f"{p}: malformed CSV: {e}") from None


def _iter_json_array(p: Path) -> Iterator[RawRecord]:
    """Incremental parse of `[obj, obj, ...]` with json.raw_decode over a sliding buffer."""
    dec = json.JSONDecoder()
    f = p.open("rb")
    buf = ""
    pos = 0
    line_base = 1  # line number at buf[0]
    eof = False
    pending = b""

    def more() -> bool:
        nonlocal buf, pos, line_base, eof, pending
        if eof:
            return False
        chunk = f.read(CHUNK)
        if not chunk:
            eof = True
            if pending:
                raise UserError(f"{p}: not UTF-8 text (file ends inside a multi-byte character)")
            return False
        data = pending + chunk
        try:
            text = data.decode("utf-8")
            pending = b""
        except UnicodeDecodeError as e:
            if e.start >= len(data) - 3 and e.reason == "unexpected end of data":
                text, pending = data[: e.start].decode("utf-8"), data[e.start:]
            else:
                line = line_base + buf.count("\n") + data[: e.start].count(b"\n")
                raise UserError(f"{p}:{line}: not UTF-8 text ({e.reason})") from None
        line_base += buf.count("\n", 0, pos)
        buf = buf[pos:] + text
        pos = 0
        return True

    def where(at: int) -> str:
        line = line_base + buf.count("\n", 0, at)
        col = at - (buf.rfind("\n", 0, at) + 1) + 1
        return f"{p}:{line}:{col}"

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n\ufeff":
                pos += 1
            if pos < len(buf) or not more():
                return

    try:
        more()
        skip_ws()
        if pos >= len(buf) or buf[pos] != "[":
            raise UserError(f"{where(pos)}: expected a JSON array `[` (or use .jsonl for one record per line)")
        pos += 1
        index = 0
        skip_ws()
        if pos < len(buf) and buf[pos] == "]":
            return
        while True:
            skip_ws()
            if pos >= len(buf):
                raise UserError(f"{where(pos)}: invalid JSON: the array is not closed (file truncated?)")
            while True:
                try:
                    obj, end = dec.raw_decode(buf, pos)
                    break
                except json.JSONDecodeError as e:
                    if not eof and more():
                        continue
                    raise UserError(f"{where(e.pos)}: invalid JSON: {e.msg}") from None
                except RecursionError:
                    raise UserError(f"{where(pos)}: invalid JSON: nesting too deep") from None
            start_line = line_base + buf.count("\n", 0, pos)
            if _too_deep(obj):
                yield RawRecord(index, start_line, error=f"nesting deeper than {MAX_DEPTH} levels")
            else:
                yield RawRecord(index, start_line, obj=obj)
            index += 1
            pos = end
            skip_ws()
            if pos >= len(buf):
                raise UserError(f"{where(pos)}: invalid JSON: the array is not closed (file truncated?)")
            if buf[pos] == ",":
                pos += 1
                continue
            if buf[pos] == "]":
                pos += 1
                skip_ws()
                if pos < len(buf):
                    raise UserError(f"{where(pos)}: invalid JSON: extra data after the closing `]`")
                return
            raise UserError(f"{where(pos)}: invalid JSON: expected `,` or `]` after element {index}")
    finally:
        f.close()
