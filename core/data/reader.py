"""Stream records from JSONL, JSON arrays, a single JSON object, CSV/TSV, Parquet and plain text without loading
the whole file; any of them gzip-, bzip2-, xz- or zstd-compressed (decided by the magic bytes, read as a stream:
gzip, bz2 and lzma from the standard library, zstd through pyarrow's codec).

The container is decided from the content, not only the suffix (`sniff`), and the decision is stated with its
reason. Record index = position in the file (JSONL: n-th non-empty line; JSON: n-th element; CSV/Parquet: n-th
row; text: n-th line, paragraph or the whole document). A JSONL line that does not parse is yielded as a record
with an error (the audit goes on); a file that cannot be read at all (not UTF-8, not JSON, a JSON array that does
not parse) raises UserError with file, line and column."""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.errors import UserError

CHUNK = 1 << 20
MAX_DEPTH = 64
SNIFF_BYTES = 1 << 16
SNIFF_LINES = 20
TEXT_SUFFIXES = (".txt", ".text", ".md")
WRAPPER_KEYS = ("data", "train", "examples", "records", "rows", "instances", "items", "samples", "conversations")
TEXT_UNITS = ("line", "paragraph", "document")
BOM = b"\xef\xbb\xbf"
JSON_SPACE = " \t\r\n\ufeff"  # skipped between a JSON array's elements (JSON's whitespace, and a byte-order mark)
# magic bytes → compression; the suffixes people give such files (stripped to find the inner format: data.jsonl.gz)
COMPRESSIONS = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".zst", ".zstd")
_SENTENCE_END = re.compile(r"[.!?。！？:：;；\"'”’)\]}>`*|]\s*$")


@dataclass(slots=True)
class RawRecord:
    index: int
    line: int  # 1-based line where the record starts (0 where a file has no lines: Parquet, one JSON object)
    obj: Any = None
    error: str | None = None
    raw: bytes | None = None  # a JSONL line or JSON array element not parsed yet (`iter_raw(..., parse=False)`): see `parse_line`


class ReadMeter:
    """How many bytes of the file the reader has consumed (for a progress bar with an ETA)."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


@dataclass(slots=True)
class Container:
    """How a file holds its records: `jsonl`, `json` (array), `json_object`, `csv`, `parquet` or `text`."""
    kind: str
    reason: str
    text_unit: str = ""  # text files: `line`, `paragraph` or `document`
    wrapper_key: str | None = None  # json_object: the key whose list holds the records (None: one record)
    parsed: Any = None  # json_object: the object, parsed once while sniffing (not parsed again to read it)
    compression: str | None = None  # gzip, bzip2, xz or zstd: the file is read through the decompressor


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


def compression_of(p: Path) -> str | None:
    """gzip, bzip2, xz or zstd from the file's magic bytes; None for a file stored as it is."""
    with p.open("rb") as f:
        magic = f.read(6)
    return next((name for m, name in COMPRESSIONS if magic.startswith(m)), None)


def inner_suffix(p: Path) -> str:
    """The suffix that names the format: `data.jsonl.gz` → `.jsonl`."""
    suffixes = [s.lower() for s in p.suffixes]
    while suffixes and suffixes[-1] in COMPRESSED_SUFFIXES:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


class _Counting(io.RawIOBase):
    """The compressed file under a decompressor, counting the bytes read (what the progress bar's total is)."""

    def __init__(self, f: IO[bytes], meter: ReadMeter) -> None:
        self.f, self.meter = f, meter

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        self.meter.bytes += n or 0
        return n

    def close(self) -> None:
        self.f.close()
        super().close()


def open_bytes(p: Path, compression: str | None, meter: ReadMeter | None = None) -> IO[bytes]:
    """The file's bytes, decompressed when it is compressed. With a meter, a compressed file's meter counts the
    compressed bytes read (the uncompressed readers count their own)."""
    if compression is None:
        return p.open("rb")
    raw: IO[bytes] = p.open("rb")
    if meter is not None:
        raw = io.BufferedReader(_Counting(raw, meter), CHUNK)
    if compression in ("gzip", "bzip2", "xz"):
        stream = (gzip.GzipFile(fileobj=raw, mode="rb") if compression == "gzip" else
                  bz2.BZ2File(raw, "rb") if compression == "bzip2" else lzma.LZMAFile(raw, "rb"))  # noqa: SIM115 - returned open
        close = stream.close

        def close_both() -> None:  # the decompressor leaves a file object it was given open
            try:
                close()
            finally:
                raw.close()

        stream.close = close_both
        return stream
    import pyarrow as pa  # zstd: pyarrow's codec (a dependency already; the standard library has none before 3.14)

    return io.BufferedReader(pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd"), CHUNK)


# what a damaged or truncated compressed stream raises while it is read
DECOMPRESSION_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error)


def _head_bytes(p: Path, compression: str | None) -> bytes:
    try:
        with open_bytes(p, compression) as f:
            return f.read(SNIFF_BYTES)
    except DECOMPRESSION_ERRORS as e:
        raise UserError(f"{p}: cannot decompress the {compression} file ({e}); is it truncated or damaged? "
                        f"(test it with `{_TEST_COMMAND[compression]} {p}`)") from None


_TEST_COMMAND = {"gzip": "gzip -t", "bzip2": "bzip2 -t", "xz": "xz -t", "zstd": "zstd -t", None: "file"}


def _head_text(p: Path, compression: str | None = None) -> str:
    """The first bytes as text; a file that is not UTF-8 text is refused once, here, with the reason."""
    head = _head_bytes(p, compression)
    odd, even = head[1:400:2].count(b"\x00"), head[0:400:2].count(b"\x00")
    pairs = max(1, len(head[:400]) // 2)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (max(odd, even) >= 0.3 * pairs and min(odd, even) <= 0.02 * pairs):
        raise UserError(f"{p}: the file is UTF-16 (or another two-byte encoding), not UTF-8 text; "
                        "re-save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
    if b"\x00" in head:
        raise UserError(f"{p}: a binary file (it contains NUL bytes), not JSON, CSV, Parquet or text"
                        + (f" inside the {compression} compression" if compression else "")
                        + "; compressed files are read when they are gzip, bzip2, xz or zstd (zip: unpack it first)"
                        * (compression is None and head.startswith(b"PK\x03\x04")))
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data" and e.start >= len(head) - 3:
            return head[:e.start].decode("utf-8")
        line = head[:e.start].count(b"\n") + 1
        raise UserError(f"{p}:{line}: not UTF-8 text (byte 0x{head[e.start]:02x} at offset {e.start}); the file looks "
                        "like Latin-1 or another legacy encoding: re-save it as UTF-8 "
                        "(e.g. `iconv -f LATIN1 -t UTF-8`)") from None


def sniff(path: str | Path, text_unit: str = "auto") -> Container:
    """Decide how the file holds its records, from its content (the suffix only breaks ties). `text_unit`: for a
    plain-text file, one record per `line`, `paragraph` or `document` (`auto`: decided from the text)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"dataset `{p}` does not exist (or is not a file)")
    if text_unit != "auto" and text_unit not in TEXT_UNITS:
        raise UserError(f"the text unit must be auto, {', '.join(TEXT_UNITS)}; got {text_unit!r}")
    compression = compression_of(p)
    c = _sniff_container(p, compression, text_unit)
    if compression:
        c.compression = compression
        c.reason = f"{compression}-compressed (magic bytes), read as a stream; {c.reason}"
    return c


def _sniff_container(p: Path, compression: str | None, text_unit: str) -> Container:
    suffix = inner_suffix(p)
    if compression:
        magic = _head_bytes(p, compression)[:4]
    else:
        with p.open("rb") as f:
            magic = f.read(4)
    if magic == b"PAR1" or suffix == ".parquet":
        if magic != b"PAR1":
            raise UserError(f"{p}: named .parquet but not a Parquet file (no PAR1 magic bytes)")
        return Container("parquet", "Parquet magic bytes `PAR1`")
    head = _head_text(p, compression).lstrip("\ufeff")
    if suffix in (".csv", ".tsv"):
        return Container("csv", f"`{suffix}` suffix")
    start = head.lstrip()[:1]
    if start == "[":
        first = head.lstrip().split("\n", 1)
        if suffix in (".jsonl", ".ndjson") and len(first) > 1 and first[0].rstrip().endswith("]"):
            return Container("jsonl", f"`{suffix}` suffix and the first line is a complete JSON value")
        return Container("json", "the file starts with `[`: a JSON array of records")
    if start == "{":
        return _sniff_object_or_lines(p, head, compression)
    if suffix in (".json", ".jsonl", ".ndjson"):
        shown = head.lstrip()[:40].replace("\n", " ")
        raise UserError(f"{p}: named {suffix} but not JSON: it starts with {shown!r} (a JSON array starts with "
                        "`[`, a JSON Lines file with `{` on every line)")
    return _sniff_text(head, suffix, text_unit)


def read_text(p: Path, compression: str | None = None) -> str:
    """The whole file as text (one JSON object, a text document)."""
    with open_bytes(p, compression) as f:
        data = f.read()
    return data.decode("utf-8-sig")


def _first_lines(p: Path, head: str, compression: str | None = None) -> tuple[list[str], bool]:
    """Up to SNIFF_LINES complete non-empty lines from the start of the file: those inside the sniffed head, and
    at least the first whole line however long it is (a long-context record can be megabytes on one line); and
    whether the file is that one line alone (a record, or a wrapper such as {"data": [...]})."""
    lines = [ln for ln in head.splitlines() if ln.strip()][:SNIFF_LINES]
    if len(head) < SNIFF_BYTES:
        return lines, len(lines) == 1
    complete = lines[:-1] if not head.endswith("\n") else lines
    if complete:
        return complete, False
    first: list[str] = []
    with open_bytes(p, compression) as f:
        while raw := f.readline():
            if not raw.strip():
                continue
            if first:  # a second non-empty line: JSON Lines candidates, not one value
                return first, False
            try:
                first = [raw.decode("utf-8-sig").rstrip("\r\n")]
            except UnicodeDecodeError:
                return [], False
    return first, bool(first)


def _sniff_object_or_lines(p: Path, head: str, compression: str | None = None) -> Container:
    complete, whole = _first_lines(p, head, compression)
    parsed = 0
    for ln in complete:
        with contextlib.suppress(json.JSONDecodeError, RecursionError):
            parsed += isinstance(json.loads(ln), dict)
    if complete and parsed >= max(1, (len(complete) + 1) // 2) and not whole:
        return Container("jsonl", f"{parsed} of the first {len(complete)} lines are JSON objects: JSON Lines")
    try:
        obj = _decode(read_text(p, compression))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if complete and parsed:
            return Container("jsonl", f"{parsed} of the first {len(complete)} lines are JSON objects: JSON Lines")
        detail = f"line {e.lineno} column {e.colno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else e.reason
        raise UserError(f"{p}: neither JSON Lines (no line of the first {len(complete)} parses alone) nor one "
                        f"JSON value ({detail})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{p}: one JSON value of type {type(obj).__name__}, expected records")
    from core.data.formats import detect_format

    if detect_format(obj):
        return Container("json_object", "the whole file is one JSON object that is itself a record", parsed=obj)
    key = _wrapper_key(obj)
    if key is None:  # a record of a layout the format detection (or a column mapping) may still read
        return Container("json_object", "the whole file is one JSON object (no list of records in it): one record",
                         parsed=obj)
    return Container("json_object", f"one JSON object; its `{key}` list holds the records", wrapper_key=key,
                     parsed=obj)


def _wrapper_key(obj: dict) -> str | None:
    """The key of the list of records inside a wrapper object ({"data": [...]}, {"version": 1, "train": [...]})."""
    lists = {k: v for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v[:50])}
    if not lists:
        return None
    named = [k for k in WRAPPER_KEYS if k in lists]
    return named[0] if named else max(lists, key=lambda k: len(lists[k]))


_UNIT_CHOSEN = {"line": "one record per line", "paragraph": "one record per blank-line-separated paragraph",
                "document": "the whole file is one document"}


def _sniff_text(head: str, suffix: str, text_unit: str = "auto") -> Container:
    """Plain text: one record per line (the Hugging Face `text` loader's default), per blank-line-separated
    paragraph when paragraphs span several lines, or the whole file when it is one hard-wrapped document; or the
    unit the user chose."""
    why = f"`{suffix}` suffix" if suffix in TEXT_SUFFIXES else "not JSON (no `[` or `{` at the start)"
    if text_unit != "auto":
        return Container("text", f"{why}; {_UNIT_CHOSEN[text_unit]} (chosen: text unit `{text_unit}`)",
                         text_unit=text_unit)
    lines = head.splitlines()
    blocks = [b for b in re.split(r"\n\s*\n", head) if b.strip()]
    nonempty = [ln for ln in lines if ln.strip()]
    if len(blocks) > 1 and len(nonempty) >= 1.5 * len(blocks):
        return Container("text", f"{why}; blank lines separate multi-line paragraphs: one record per paragraph "
                                 "(choose line or document with the text unit)", text_unit="paragraph")
    wrapped = sum(1 for a, b in zip(nonempty, nonempty[1:], strict=False)
                  if not _SENTENCE_END.search(a) and b.lstrip()[:1].islower())
    if len(nonempty) > 1 and wrapped >= 0.5 * (len(nonempty) - 1):
        return Container("text", f"{why}; lines break mid-sentence (hard-wrapped prose): the whole file is one "
                                 "document (choose another with the text unit)", text_unit="document")
    return Container("text", f"{why}; one record per line (choose paragraph or document with the text unit)",
                     text_unit="line")


def iter_raw(path: str | Path, container: Container | None = None, parse: bool = True,
             meter: ReadMeter | None = None) -> Iterator[RawRecord]:
    """Every record of the file in order. With `parse=False`, JSONL lines and the elements of a JSON array come
    unparsed (`raw` set: the record's JSON text) so that the parsing can happen elsewhere (the audit's worker processes); `parse_line` turns them into records."""
    p = Path(path)
    c = container or sniff(p)
    records = _records(p, c, parse, meter or ReadMeter())
    if c.compression is None:
        yield from records
        return
    try:
        yield from records
    except DECOMPRESSION_ERRORS as e:
        raise UserError(f"{p}: the {c.compression} stream breaks off while reading ({e}); the file is truncated or "
                        f"damaged (test it with `{_TEST_COMMAND[c.compression]} {p}`)") from None


def _records(p: Path, c: Container, parse: bool, meter: ReadMeter) -> Iterator[RawRecord]:
    z = c.compression
    if c.kind == "jsonl":
        lines = _iter_jsonl_lines(p, meter, z)
        yield from map(parse_line, lines) if parse else lines
    elif c.kind == "csv":
        yield from _iter_csv(p, z)
    elif c.kind == "parquet":
        yield from _iter_parquet(p, z)
    elif c.kind == "json_object":
        obj = c.parsed if c.parsed is not None else _decode(read_text(p, z))
        items = [obj] if c.wrapper_key is None else obj[c.wrapper_key]
        for i, item in enumerate(items):
            yield RawRecord(i, 1 if c.wrapper_key is None else 0, obj=item)
    elif c.kind == "text":
        yield from _iter_text(p, c.text_unit, z)
    else:
        yield from _iter_json_array(p, meter, z, parse)


def _iter_text(p: Path, unit: str, compression: str | None = None) -> Iterator[RawRecord]:
    text = read_text(p, compression) if unit != "line" else None
    if unit == "document":
        yield RawRecord(0, 1, obj={"text": text.strip()})
        return
    if unit == "paragraph":
        index, line = 0, 1
        for block in re.split(r"(\n\s*\n)", text):
            if block.strip() and not block.isspace():
                lead = len(block) - len(block.lstrip("\n"))
                yield RawRecord(index, line + lead, obj={"text": block.strip()})
                index += 1
            line += block.count("\n")
        return
    index = 0
    with io.TextIOWrapper(open_bytes(p, compression), encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, 1):
            if raw.strip():
                yield RawRecord(index, lineno, obj={"text": raw.rstrip("\r\n")})
                index += 1


def _iter_parquet(p: Path, compression: str | None = None) -> Iterator[RawRecord]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise UserError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        if compression:  # Parquet reads its footer first: the decompressed bytes in memory
            with open_bytes(p, compression) as f:
                pf = pq.ParquetFile(pa.BufferReader(f.read()))
        else:
            pf = pq.ParquetFile(p)
        index = 0
        for batch in pf.iter_batches(batch_size=2048):
            for row in batch.to_pylist():
                yield RawRecord(index, 0, obj=row)
                index += 1
    except OSError as e:  # pyarrow's ArrowInvalid derives from it
        raise UserError(f"{p}: cannot read the Parquet file: {e}") from None


def _iter_jsonl_lines(p: Path, meter: ReadMeter, compression: str | None = None) -> Iterator[RawRecord]:
    index = 0
    count = compression is None  # a compressed file's meter counts the compressed bytes (open_bytes)
    with open_bytes(p, compression, meter) as f:
        for lineno, raw in enumerate(f, 1):
            if count:
                meter.bytes += len(raw)
            if lineno == 1:
                raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            yield RawRecord(index, lineno, raw=raw)
            index += 1


def parse_line(rec: RawRecord) -> RawRecord:
    """An unparsed JSONL line → the record with its object, or with the reason it cannot be read."""
    if rec.raw is None:
        return rec
    raw, rec.raw = rec.raw, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        rec.error = f"not UTF-8 ({e.reason} at byte {e.start})"
        return rec
    try:
        obj = _decode(text)
    except json.JSONDecodeError as e:
        rec.error = f"invalid JSON at column {e.colno}: {e.msg}"
        return rec
    return with_object(rec, obj, text)


def with_object(rec: RawRecord, obj: Any, text: str, start: int = 0, end: int | None = None) -> RawRecord:
    """`rec` with its parsed object, or with the error of an object nested deeper than MAX_DEPTH (`text[start:end]`:
    its JSON, whose brackets are counted first)."""
    if text.count("[", start, end) + text.count("{", start, end) > MAX_DEPTH and _too_deep(obj):
        rec.error = f"nesting deeper than {MAX_DEPTH} levels"
    else:
        rec.obj = obj
    return rec


def _iter_csv(p: Path, compression: str | None = None) -> Iterator[RawRecord]:
    delim = "\t" if inner_suffix(p) == ".tsv" else ","
    try:
        with io.TextIOWrapper(open_bytes(p, compression), encoding="utf-8-sig", newline="") as f:
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


class _LineCounter:
    """Line numbers of positions in a sliding text buffer, counted once (not from the start for every record)."""

    __slots__ = ("line", "pos")

    def __init__(self) -> None:
        self.line, self.pos = 1, 0

    def at(self, buf: str, pos: int) -> int:
        if pos >= self.pos:
            self.line += buf.count("\n", self.pos, pos)
        else:
            self.line -= buf.count("\n", pos, self.pos)
        self.pos = pos
        return self.line

    def shift(self, buf: str, drop: int) -> None:
        """`drop` characters are removed from the front of the buffer."""
        self.at(buf, drop)
        self.pos = 0


def _iter_json_array(p: Path, meter: ReadMeter, compression: str | None = None,
                     parse: bool = True) -> Iterator[RawRecord]:
    """Incremental parse of `[obj, obj, ...]` with json.raw_decode over a sliding buffer. With `parse=False` each
    element comes as its own JSON text (`raw`, like a JSONL line; `parse_line` parses it), not as the object
    raw_decode built to find its end: a text travels to the audit's worker processes at a fraction of the cost of
    pickling the object, and the object is freed at once (the parent's garbage collector had 6.8 µs a record of
    young objects to scan)."""
    dec = json.JSONDecoder()
    f = open_bytes(p, compression, meter)
    count = compression is None
    buf = ""
    pos = 0
    lines = _LineCounter()
    eof = False
    pending = b""

    def more() -> bool:
        nonlocal buf, pos, eof, pending
        if eof:
            return False
        chunk = f.read(CHUNK)
        if count:
            meter.bytes += len(chunk)
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
                line = lines.at(buf, len(buf)) + data[: e.start].count(b"\n")
                raise UserError(f"{p}:{line}: not UTF-8 text ({e.reason})") from None
        lines.shift(buf, pos)
        buf = buf[pos:] + text
        pos = 0
        return True

    def where(at: int) -> str:
        line = lines.at(buf, at)
        col = at - (buf.rfind("\n", 0, at) + 1) + 1
        return f"{p}:{line}:{col}"

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in JSON_SPACE:
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
            line = lines.at(buf, pos)
            if parse:
                yield with_object(RawRecord(index, line), obj, buf, pos, end)
            else:
                del obj  # freed now: only the element's text travels on
                yield RawRecord(index, line, raw=buf[pos:end].encode("utf-8"))
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
