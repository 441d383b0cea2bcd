"""A file cut into chunks of whole records for worker processes, without the parent parsing it.

JSONL: chunks end at a line's end; a worker splits the lines as the exact reader (reader.iter_raw) does. The
parent hands out one bytes object per chunk instead of a record per line (3.3 µs a record of the bench to read,
wrap and pickle the lines, and more to unpickle them in the worker).

JSON array: the exact reader must parse every element to find where it ends: for the audit's workers that was a
second parse of every record, in the one process that feeds them (13 µs a record of the bench's pretty-printed
arrays, on a 2-core machine taken from the workers). Here the parent parses only the first two elements, to learn
how the file separates its elements (the text from the end of one object to the first key of the next: `},\n  {`
in a file indented by 2, `},{"messages"` in a minified one), and cuts the bytes where that text recurs. A cut may
be wrong (the text inside an element), so each worker checks its chunk: it must parse as whole elements, each
followed by `,` (the last chunk: by the closing `]` and nothing after it). By induction the cuts are right: the
first chunk starts at the first element, and a chunk that parses whole ends exactly where the next element starts.
The first chunk that does not parse stops the cutting; from there the exact reader reads the file again (it also
gives the exact error of a file that is not valid JSON).

A chunk's records are numbered from a lower bound of their first index (the records before it that are counted
already: the parent hands chunks out before the workers have counted the ones ahead); the parent, which takes the
chunks back in order, shifts them to the exact index."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.data.reader import BOM, CHUNK, JSON_SPACE, Container, RawRecord, ReadMeter, open_bytes, with_object

LEARN_MAX = 16 << 20  # bytes read to find the first two elements before the exact reader is left to do it
CUT_SEARCH_MAX = 64 << 20  # bytes searched for the next cut before the cutting stops (the separator changed)
CHUNK_MIN, CHUNK_MAX = 16 << 10, 8 << 20  # bounds of a chunk's target size in bytes
_DECODER = json.JSONDecoder()
_SPACE = re.compile(f"[{re.escape(JSON_SPACE)}]*")


@dataclass(slots=True)
class Chunk:
    """Consecutive records as bytes: JSONL lines, each with its line end (the last line of a file may lack one), or
    JSON array elements from the start of an element to the start of the next chunk's first element (or to the end
    of the file)."""

    data: bytes
    line: int  # the line of data[0]
    index: int = 0  # the index its first element is given: a lower bound until the chunks ahead are counted
    final: bool = False  # it runs to the end of the file


@dataclass(frozen=True, slots=True)
class _Separator:
    """What the first two elements taught: the bytes that open the next element (`pattern`, from the last `}` of
    the one before), where the next element starts in them (`skip`), and about how many bytes an element takes."""

    pattern: bytes
    skip: int
    first: int  # byte offset of the first element in the file
    element_bytes: int


def chunk_target(records: int, element_bytes: int) -> int:
    """A chunk's size in bytes for about `records` records of `element_bytes`."""
    return min(CHUNK_MAX, max(CHUNK_MIN, records * element_bytes))


def _blocks(p: Path, container: Container, meter: ReadMeter) -> Iterator[bytes]:
    """The file's bytes (decompressed) in blocks of CHUNK, each counted on the meter as it is read (a compressed
    file's meter counts the compressed bytes itself); closing the iterator closes the file."""
    count = container.compression is None
    with open_bytes(p, container.compression, meter) as f:
        while block := f.read(CHUNK):
            if count:
                meter.bytes += len(block)
            yield block


def jsonl_chunks(p: Path, container: Container, meter: ReadMeter, records: int) -> Iterator[Chunk]:
    """The JSONL file in chunks of about `records` lines (the line length measured on the first block read)."""
    buf, line, target = b"", 1, 0
    for block in _blocks(p, container, meter):
        target = target or chunk_target(records, len(block) // max(1, block.count(b"\n")))
        buf += block
        start = 0
        while len(buf) - start > target:
            end = buf.find(b"\n", start + target - 1) + 1  # after the end of the line that reaches the target
            if not end:
                break
            data = buf[start:end]
            yield Chunk(data, line)
            line += data.count(b"\n")
            start = end
        buf = buf[start:]
    if buf:
        yield Chunk(buf, line, final=True)


def split_jsonl_chunk(chunk: Chunk) -> list[RawRecord]:
    """The chunk's lines as unparsed records numbered from `chunk.index`, as the exact reader gives them: lines are
    split at `\\n` only and keep it, blank lines are no records, the file's first line loses a byte-order mark."""
    out: list[RawRecord] = []
    for lineno, raw in enumerate(io.BytesIO(chunk.data), chunk.line):
        if lineno == 1:
            raw = raw.removeprefix(BOM)
        if raw.strip():
            out.append(RawRecord(chunk.index + len(out), lineno, raw=raw))
    return out


def split_array_chunk(chunk: Chunk) -> list[RawRecord] | None:
    """The chunk's elements as parsed records numbered from `chunk.index`, each with its line (the exact reader's
    records, object or nesting error alike); None when the chunk is not a run of whole elements each followed by
    `,`, or, the final chunk, by the closing `]` and nothing after it."""
    try:
        text = chunk.data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: list[RawRecord] = []
    pos, n = 0, len(text)
    line, counted = chunk.line, 0
    while True:
        try:
            obj, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            return None
        line += text.count("\n", counted, pos)
        counted = pos
        out.append(with_object(RawRecord(chunk.index + len(out), line), obj, text, pos, end))
        pos = _SPACE.match(text, end).end()
        if pos < n and text[pos] == ",":
            pos = _SPACE.match(text, pos + 1).end()
            if pos < n:
                continue
            return None if chunk.final else out
        if chunk.final and pos < n and text[pos] == "]" and _SPACE.match(text, pos + 1).end() == n:
            return out
        return None


class ArraySplitter:
    """The chunks of a JSON array file, about `records` elements each (iterate once). `ArraySplitter.open` gives
    None when the file does not start as an array of two objects or more (the exact reader handles it). After the
    iteration, `complete` says whether the chunks ran to the end of the file; when they did not, the cutting
    stopped where no separator came for CUT_SEARCH_MAX bytes."""

    def __init__(self, p: Path, container: Container, meter: ReadMeter, records: int) -> None:
        self.blocks = _blocks(p, container, meter)
        self.buf, self.start, self.eof = b"", 0, False
        self.records = records
        self.sep: _Separator | None = None
        self.complete = False

    @classmethod
    def open(cls, p: Path, container: Container, meter: ReadMeter, records: int) -> ArraySplitter | None:
        splitter = cls(p, container, meter, records)
        try:
            splitter.sep = splitter._learn()
        except BaseException:
            splitter.close()
            raise
        if splitter.sep is None:
            splitter.close()
            return None
        return splitter

    def close(self) -> None:
        self.blocks.close()

    def __enter__(self) -> ArraySplitter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Chunk]:
        sep = self.sep
        self.start = sep.first
        line = 1 + self.buf.count(b"\n", 0, sep.first)
        target = chunk_target(self.records, sep.element_bytes)
        while True:
            cut = self._next_cut(target)
            if cut is None:
                return  # no separator for CUT_SEARCH_MAX bytes: the exact reader goes on
            if cut < 0:
                self.complete = True
                yield Chunk(self.buf[self.start:], line, final=True)
                return
            data = self.buf[self.start:cut]
            yield Chunk(data, line)
            line += data.count(b"\n")
            self.start = cut

    # ---- stages ----------------------------------------------------------------------------------------------

    def _read(self) -> int:
        """Append the next block of the file, first dropping what was handed out; how far positions moved back
        (-1 at the end of the file)."""
        if self.eof:
            return -1
        block = next(self.blocks, b"")
        if not block:
            self.eof = True
            return -1
        moved, self.buf, self.start = self.start, self.buf[self.start:] + block, 0
        return moved

    def _next_cut(self, target: int) -> int | None:
        """Where the next chunk starts (a position in `buf`): at the first separator `target` bytes or more after
        the chunk's start; -1 when the rest of the file is the last chunk; None when no separator comes."""
        sep = self.sep
        at = self.start + target
        while True:
            found = self.buf.find(sep.pattern, at)
            if found >= 0:
                return found + sep.skip
            if len(self.buf) - self.start > CUT_SEARCH_MAX:
                return None
            at = max(at, len(self.buf) - len(sep.pattern) + 1)
            moved = self._read()
            if moved < 0:
                return -1
            at -= moved

    def _learn(self) -> _Separator | None:
        """The separator, from the first two elements (both objects), read as more of the file comes."""
        while True:
            found = _first_two(self.buf, self.eof)
            if found is not False:
                return found
            if len(self.buf) >= LEARN_MAX:
                return None
            wanted = 2 * len(self.buf) + CHUNK  # twice as much before the next try: the bytes read are parsed
            while len(self.buf) < wanted and self._read() >= 0:  # a bounded number of times, not once a block
                pass


def _first_two(buf: bytes, eof: bool) -> _Separator | None | bool:
    """The separator the first two elements of the array in `buf` show; None when the file is not an array that
    starts with two objects; False when `buf` does not hold both yet."""
    text = _decoded_prefix(buf)
    if text is None:
        return None
    space = _SPACE.match
    i = space(text, 0).end()
    if text[i:i + 1] != "[":
        return None if i < len(text) or eof else False
    first = space(text, i + 1).end()
    element = _element(text, first)
    if element is None:
        return None if eof or first < len(text) and text[first] != "{" else False
    end, _ = element
    comma = space(text, end).end()
    if comma >= len(text):
        return None if eof else False
    if text[comma] != ",":
        return None
    second = space(text, comma + 1).end()
    element = _element(text, second)
    if element is None:
        return None if eof or second < len(text) and text[second] != "{" else False
    end2, head = element
    if head is None:
        return None
    between = text[end:second]
    opening = "{" if "\n" in between else head  # one line: the first key too, which nested objects rarely share
    first_byte = len(text[:first].encode("utf-8"))
    return _Separator(pattern=("}" + between + opening).encode("utf-8"), skip=len(("}" + between).encode("utf-8")),
                      first=first_byte, element_bytes=max(1, (len(text[:end2].encode("utf-8")) - first_byte) // 2))


def _element(text: str, at: int) -> tuple[int, str | None] | None:
    """(the end of the object that starts at `at`, its opening up to its first key or None without one); None when
    no whole object starts there."""
    if text[at:at + 1] != "{":
        return None
    try:
        _, end = _DECODER.raw_decode(text, at)
    except (json.JSONDecodeError, RecursionError):
        return None  # not whole yet (or not JSON: the exact reader says where)
    key = _SPACE.match(text, at + 1).end()
    if text[key] != '"':
        return end, None  # `{}`
    _, key_end = _DECODER.raw_decode(text, key)
    return end, text[at:key_end]


def _decoded_prefix(buf: bytes) -> str | None:
    """`buf` as text, less a character cut off at its end; None when it is not UTF-8."""
    try:
        return buf.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(buf) - 3 and e.reason == "unexpected end of data":
            return buf[:e.start].decode("utf-8")
        return None
