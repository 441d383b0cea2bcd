"""A JSON array cut into chunks the audit's workers parse (core/data/array_chunks.py): the records are the exact
reader's, whatever the layout, and a wrong cut or a broken file falls back to the exact reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.data import chunks as array_chunks
from core.data.chunks import ArraySplitter, Chunk, jsonl_chunks, split_array_chunk, split_jsonl_chunk
from core.data.reader import ReadMeter, iter_raw, sniff
from core.errors import UserError

RECORDS = [
    {"messages": [{"role": "user", "content": f"question {i}: what is {i} + {i}?"},
                  {"role": "assistant", "content": f"{2 * i}. 数据 {'🙂' * (i % 3)} café"}]}
    for i in range(40)
]


def _exact(path: Path) -> list[tuple]:
    return [(r.index, r.line, r.obj, r.error) for r in iter_raw(path, parse=True)]


def _by_chunks(path: Path, records: int = 2) -> tuple[list[tuple], int, bool]:
    """The records as the parallel audit gets them, in one process: chunks split in order, each numbered from
    the records before it; the exact reader from the first chunk that does not parse. (records, chunks, whether
    every chunk parsed)."""
    splitter = ArraySplitter.open(path, sniff(path), ReadMeter(), records)
    out: list = []
    chunks = 0
    complete = False
    if splitter is not None:
        with splitter:
            for chunk in splitter:
                chunk.index = len(out)
                found = split_array_chunk(chunk)
                if found is None:
                    break
                chunks += 1
                out += found
            else:
                complete = splitter.complete
    if not complete:
        out += list(iter_raw(path, parse=True))[len(out):]
    return [(r.index, r.line, r.obj, r.error) for r in out], chunks, complete


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(array_chunks, "CHUNK_MIN", 64)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


LAYOUTS = {
    "indent 2": lambda rs: json.dumps(rs, ensure_ascii=False, indent=2),
    "indent 4, ascii escapes": lambda rs: json.dumps(rs, indent=4),
    "tabs": lambda rs: json.dumps(rs, ensure_ascii=False, indent="\t"),
    "minified": lambda rs: json.dumps(rs, ensure_ascii=False, separators=(",", ":")),
    "one line, spaces": lambda rs: json.dumps(rs, ensure_ascii=False),
    "a record a line": lambda rs: "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rs) + "\n]\n",
    "CRLF, byte-order mark": lambda rs: "\ufeff" + json.dumps(rs, ensure_ascii=False, indent=2).replace("\n", "\r\n"),
    "comma first": lambda rs: "[ " + "\n, ".join(json.dumps(r, ensure_ascii=False) for r in rs) + "\n]",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_chunks_give_the_exact_readers_records_in_every_layout(tmp_path, small_chunks, layout):
    path = _write(tmp_path / "a.json", LAYOUTS[layout](RECORDS))
    records, chunks, complete = _by_chunks(path)
    assert records == _exact(path)
    assert complete and chunks >= 5  # cut many times, never wrongly


def test_a_separator_inside_an_element_is_a_wrong_cut_the_exact_reader_repairs(tmp_path, small_chunks):
    """Minified records whose nested objects open with the records' own first key: the separator recurs inside
    elements, a chunk cut there does not parse, and the exact reader reads on from the last whole chunk."""
    nested = [{"messages": [{"messages": f"inner {j}"} for j in range(8 + i % 5)], "id": i} for i in range(30)]
    path = _write(tmp_path / "a.json", json.dumps(nested, separators=(",", ":")))
    records, chunks, complete = _by_chunks(path)
    assert records == _exact(path)
    assert not complete  # a cut fell inside a record


def test_escaped_separator_in_a_string_is_no_cut(tmp_path, small_chunks):
    tricky = [{"messages": f'say "}},{{\\"messages\\"" {i}', "n": i} for i in range(30)]
    path = _write(tmp_path / "a.json", json.dumps(tricky, separators=(",", ":")))
    records, _, complete = _by_chunks(path)
    assert records == _exact(path) and complete


def test_records_whose_first_key_changes_are_cut_where_the_key_recurs(tmp_path, small_chunks):
    mixed = [{"system": "s", "messages": i} if i % 4 else {"messages": i} for i in range(40)]
    path = _write(tmp_path / "a.json", json.dumps(mixed, separators=(",", ":")))
    records, chunks, complete = _by_chunks(path)
    assert records == _exact(path) and complete and chunks >= 3


@pytest.mark.parametrize("text", [
    '[{"a": 1}, {"a": 2}, {"a": 3',  # truncated
    '[{"a": 1}, {"a": 2}, {"a": 3}',  # not closed
    '[{"a": 1}, {"a": 2}, {"a": 3}] extra',
    '[{"a": 1}, {"a": 2}, {"a": 3},]',
    '[{"a": 1}, {"a": 2}, {"a": 3} {"a": 4}]',
])
def test_a_broken_array_gives_the_exact_readers_error(tmp_path, small_chunks, text):
    path = _write(tmp_path / "a.json", text)
    with pytest.raises(UserError) as exact:
        _exact(path)
    with pytest.raises(UserError) as chunked:
        _by_chunks(path)
    assert str(chunked.value) == str(exact.value)


def test_split_array_chunk_checks_that_it_holds_whole_elements():
    whole = Chunk(b'{"a": 1},\n  {"b": [2, {"c": 3}]},\n  ', line=5, index=10)
    records = split_array_chunk(whole)
    assert [(r.index, r.line, r.obj) for r in records] == [(10, 5, {"a": 1}), (11, 6, {"b": [2, {"c": 3}]})]
    assert split_array_chunk(Chunk(b'{"a": 1},\n  {"b": [2, {"c"', line=1)) is None  # cut inside
    assert split_array_chunk(Chunk(b'{"a": 1}]', line=1)) is None  # the end of the array, not final
    assert split_array_chunk(Chunk(b'{"a": 1},', line=1, final=True)) is None  # final, not closed
    assert [r.obj for r in split_array_chunk(Chunk(b'{"a": 1} ]\n', line=1, final=True))] == [{"a": 1}]
    assert split_array_chunk(Chunk(b'{"a": 1}] x', line=1, final=True)) is None
    assert split_array_chunk(Chunk(b'{"a": "\xff"},', line=1)) is None  # not UTF-8


def test_a_too_deep_element_is_that_records_error_as_in_the_exact_reader(tmp_path, small_chunks):
    deep = {"x": 1}
    for _ in range(70):
        deep = {"d": deep}
    path = _write(tmp_path / "a.json", json.dumps([{"a": 1}, deep, {"a": 2}, {"a": 3}], indent=1))
    records, _, complete = _by_chunks(path)
    assert records == _exact(path) and complete
    assert [r[3] is not None for r in records] == [False, True, False, False]


@pytest.mark.parametrize("text", ['[{"a": 1}]', '[1, 2, 3]', '[[1], [2]]', '[{}, {}]', '{"data": []}', "[]"])
def test_arrays_not_starting_with_two_keyed_objects_are_left_to_the_exact_reader(tmp_path, text):
    path = _write(tmp_path / "a.json", text)
    assert ArraySplitter.open(path, sniff(path), ReadMeter(), 2) is None


def test_the_audit_workers_give_the_single_process_report_through_chunks(tmp_path, monkeypatch, small_chunks):
    """Cut right throughout, and cut wrongly (the exact reader reads on in the workers' batches): the report of one
    process either way; a broken file gives the single process's error."""
    from advisor.audit import audit_file, parallel

    monkeypatch.setattr(parallel, "BATCH", 3)
    exact_reads = []
    real_iter_raw = parallel.iter_raw
    monkeypatch.setattr(parallel, "iter_raw", lambda *a, **k: exact_reads.append(a[0]) or real_iter_raw(*a, **k))
    inner = [{"instruction": f"say {i}", "output": "ok", "history": [{"instruction": "x"} for _ in range(i % 4 + 3)]}
             for i in range(40)]
    for name, records, falls_back in (("pretty.json", RECORDS + RECORDS[5:8], False), ("inner.json", inner, True)):
        path = _write(tmp_path / name, json.dumps(records, ensure_ascii=False, separators=(",", ":")))
        one = audit_file(path, workers=1)
        exact_reads.clear()
        two = audit_file(path, workers=2)
        assert one.model_dump(mode="json") == two.model_dump(mode="json")
        assert (path in exact_reads) == falls_back
    broken = _write(tmp_path / "broken.json", json.dumps(RECORDS, indent=2)[:-40])
    with pytest.raises(UserError) as one_process:
        audit_file(broken, workers=1)
    with pytest.raises(UserError) as workers:
        audit_file(broken, workers=2)
    assert str(workers.value) == str(one_process.value)


def test_chunks_are_numbered_from_a_lower_bound_and_shifted_by_the_parent(tmp_path, monkeypatch, small_chunks):
    """Bigrams (distinct-2) are measured on the first BIGRAM_RECORDS records: a chunk numbered from a lower bound
    computes them for too many records, and the parent keeps only those under the bound once shifted."""
    from advisor.audit import audit_file, parallel, record

    monkeypatch.setattr(parallel, "BATCH", 2)
    monkeypatch.setattr(record, "BIGRAM_RECORDS", 7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    rows = [{"instruction": f"q{i}", "output": " ".join(words[(i + j) % 8] for j in range(i % 5 + 2))} for i in range(40)]
    path = _write(tmp_path / "a.json", json.dumps(rows, indent=2))
    one, two = audit_file(path, workers=1), audit_file(path, workers=2)
    assert one.model_dump(mode="json") == two.model_dump(mode="json")


JSONL_TEXT = (
    "\ufeff" + json.dumps(RECORDS[0], ensure_ascii=False) + "\n"
    + "\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS[1:12]) + "\n\n   \n"  # blank lines
    + json.dumps(RECORDS[12]) + "\r\n"  # CRLF
    + '{"messages": [broken\n'  # not JSON: that record's error
    + "\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS[13:30]) + "\n"
    + json.dumps(RECORDS[3], ensure_ascii=False)  # a copy, and no line end at the end of the file
)


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_jsonl_chunks_give_the_exact_readers_lines(tmp_path, small_chunks, monkeypatch, block):
    """Lines split at `\\n` only and kept whole (a CRLF line, the last line without an end), blank lines skipped,
    the byte-order mark dropped, a line that is no JSON kept as a record: as the exact reader gives them, whatever
    the blocks the file is read in."""
    monkeypatch.setattr(array_chunks, "CHUNK", block)
    path = tmp_path / "a.jsonl"
    path.write_bytes(JSONL_TEXT.encode("utf-8"))
    exact = [(r.index, r.line, r.raw) for r in iter_raw(path, parse=False)]
    got, chunks = [], 0
    for chunk in jsonl_chunks(path, sniff(path), ReadMeter(), 2):
        chunk.index = len(got)
        got += [(r.index, r.line, r.raw) for r in split_jsonl_chunk(chunk)]
        chunks += 1
    assert got == exact and chunks >= 5


def test_the_audit_workers_give_the_single_process_report_through_jsonl_chunks(tmp_path, small_chunks, monkeypatch):
    """Chunks numbered from the records counted before them (a chunk may hold none: blank lines), shifted by the
    parent: the findings name the records of the single-process run."""
    from advisor.audit import audit_file, parallel, record

    monkeypatch.setattr(parallel, "BATCH", 2)
    monkeypatch.setattr(record, "BIGRAM_RECORDS", 9)
    path = _write(tmp_path / "a.jsonl", JSONL_TEXT.replace("\n\n   \n", "\n" * 3000))
    one, two = audit_file(path, workers=1), audit_file(path, workers=2)
    assert one.model_dump(mode="json") == two.model_dump(mode="json")
    assert {f.code for f in one.findings} >= {"exact_duplicate", "invalid_json"}
