"""Stage 2 at scale: the per-record audit in worker processes, results in record order.

The parent cuts a JSONL file or a JSON array into chunks of bytes that the workers split into records and parse
(core/data/chunks.py; other layouts: batches of records it reads), and takes the facts back in submission order,
so the output is identical to the single-process run. At most a few chunks or batches per worker are in flight:
memory stays flat whatever the file size. Small files are audited in the parent (starting processes costs more
than it saves).

The dataset stage after the pass uses the cores too (`fork_map`, `Background`): forked processes inherit what
the parent holds (signatures, samples), so only small results travel back."""

from __future__ import annotations

import gc
import multiprocessing as mp
import multiprocessing.pool
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from advisor.audit.record import FactsBatch, RecordAuditor
from core.data.chunks import ArraySplitter, Chunk, jsonl_chunks, split_array_chunk, split_jsonl_chunk
from core.data.reader import Container, RawRecord, ReadMeter, iter_raw

BATCH = 256  # records per task: large enough that inter-process overhead is small, small enough to keep order cheap
IN_FLIGHT_PER_WORKER = 3
PARALLEL_FROM_BYTES = 4 << 20  # files below this are audited in one process
PROGRESS_EVERY = 2000  # records between progress reports
# Young objects a worker allocates before the cycle collector runs (CPython's default is 700). A record makes
# thousands of short-lived objects and almost no cycles: the collector's time per record drops from 6.3 to 1.6 µs
# (bench u20000, every collection timed with gc.callbacks; 135 young collections per 10,000 records, then 12).
WORKER_GC_THRESHOLD = (7000, 10, 10)

_auditor: RecordAuditor | None = None
_forked: Callable[[Any], Any] | None = None  # the function forked processes run (inherited, never pickled)
T = TypeVar("T")


@dataclass
class Progress:
    records: int
    bytes_read: int
    total_bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def default_workers(path: Path) -> int:
    """One worker per usable core for files over PARALLEL_FROM_BYTES, else none (the parent does the work)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    return cores if path.stat().st_size >= PARALLEL_FROM_BYTES else 1


def audit_records(path: Path, container: Container, auditor: RecordAuditor, workers: int | None = None,
                  progress: Callable[[Progress], None] | None = None) -> Iterator[FactsBatch]:
    """Every record's facts in batches, in record order; `workers` > 1 runs the auditor in that many processes."""
    meter = ReadMeter()
    n = default_workers(path) if workers is None else max(1, workers)
    if n == 1:
        facts = _serial(auditor, iter_raw(path, container, parse=False, meter=meter))
    elif container.kind == "json":
        facts = _parallel_array(auditor, path, container, n, meter)
    elif container.kind == "jsonl":
        facts = _parallel_jsonl(auditor, path, container, n, meter)
    else:
        facts = _parallel(auditor, iter_raw(path, container, parse=False, meter=meter), n)
    yield from _reporting(facts, meter, path.stat().st_size, progress)


def _reporting(batches: Iterable[FactsBatch], meter: ReadMeter, size: int,
               progress: Callable[[Progress], None] | None) -> Iterator[FactsBatch]:
    start = time.perf_counter()
    count = reported = 0
    for b in batches:
        count += len(b)
        if progress and count - reported >= PROGRESS_EVERY:
            reported = count
            progress(Progress(count, meter.bytes, size, time.perf_counter() - start))
        yield b
    if progress:
        progress(Progress(count, size, size, time.perf_counter() - start))


def _batches(records: Iterable[RawRecord]) -> Iterator[list[RawRecord]]:
    it = iter(records)
    while batch := list(islice(it, BATCH)):
        yield batch


def _serial(auditor: RecordAuditor, records: Iterable[RawRecord]) -> Iterator[FactsBatch]:
    return map(auditor.batch, _batches(records))


def _init(auditor: RecordAuditor) -> None:
    global _auditor
    _auditor = auditor
    gc.set_threshold(*WORKER_GC_THRESHOLD)


def _run(batch: list[RawRecord]) -> FactsBatch:
    return _auditor.batch(batch)


class _Pool(multiprocessing.pool.Pool):
    """A process pool whose worker-handler thread sleeps until a worker exits or the pool changes state. The stock
    one also wakes whenever results wait in the result pipe, and while a batch's facts (100-400 KB) are read from
    it, loops: 5.8 µs of the parent's CPU a record (measured per thread on the bench's 60,000 records), taken
    from the workers on a 2-core machine. Worker exits still wake it (their sentinels), and so do close, terminate
    and an emptied task cache (the change notifier), as in ThreadPool."""

    def _get_sentinels(self) -> list:
        return [self._change_notifier._reader]


def _run_array_chunk(chunk: Chunk) -> FactsBatch | None:
    records = split_array_chunk(chunk)
    return None if records is None else _auditor.batch(records)


def _run_jsonl_chunk(chunk: Chunk) -> FactsBatch:
    return _auditor.batch(split_jsonl_chunk(chunk))


def _pool(auditor: RecordAuditor, workers: int) -> _Pool:
    # fork shares the loaded modules; elsewhere spawn (the auditor pickles as its settings, keys are stable hashes)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    return _Pool(workers, initializer=_init, initargs=(auditor,), context=ctx)


def _in_order(pool: _Pool, batches: Iterable[list[RawRecord]], workers: int) -> Iterator[FactsBatch]:
    """The facts of each batch, audited in the pool, in submission order; a few batches per worker in flight."""
    pending: deque = deque()
    for batch in batches:
        pending.append(pool.apply_async(_run, (batch,)))
        if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _parallel(auditor: RecordAuditor, records: Iterable[RawRecord], workers: int) -> Iterator[FactsBatch]:
    with _pool(auditor, workers) as pool:
        yield from _in_order(pool, _batches(records), workers)


def _parallel_jsonl(auditor: RecordAuditor, path: Path, container: Container, workers: int,
                    meter: ReadMeter) -> Iterator[FactsBatch]:
    """JSONL in chunks of lines the workers split (core/data/chunks.py): one bytes object a chunk crosses to a
    worker, not a record object a line."""
    with _pool(auditor, workers) as pool:
        yield from _chunks_in_order(pool, jsonl_chunks(path, container, meter, BATCH), _run_jsonl_chunk, workers, 0)


def _parallel_array(auditor: RecordAuditor, path: Path, container: Container, workers: int,
                    meter: ReadMeter) -> Iterator[FactsBatch]:
    """A JSON array: cut into chunks the workers parse (core/data/chunks.py), so the parent does not parse every
    element to find where it ends. Where the cutting stops (a chunk that does not parse as whole elements, the
    separator changed), the exact reader reads the file again from the start and the records after those already
    audited go on in batches."""
    with _pool(auditor, workers) as pool:
        done = 0
        splitter = ArraySplitter.open(path, container, meter, BATCH)
        if splitter is not None:
            with splitter:
                done, parsed = yield from _chunks_in_order(pool, splitter, _run_array_chunk, workers, 1)
            if parsed and splitter.complete:
                return
        meter.bytes = 0
        records = islice(iter_raw(path, container, parse=False, meter=meter), done, None)
        yield from _in_order(pool, _batches(records), workers)


def _chunks_in_order(pool: _Pool, chunks: Iterable[Chunk], run: Callable[[Chunk], FactsBatch | None], workers: int,
                     ahead: int):
    """The facts of each chunk, audited in the pool by `run`, in order, each shifted to its records' exact indices
    (`ahead`: the fewest records a chunk holds, for the lower bound a chunk is numbered from); returns (the records
    taken, whether every chunk parsed): it stops at the first chunk `run` cannot parse (None)."""
    pending: deque = deque()  # (the index its first record was given, the facts to come)
    done = 0
    chunks = iter(chunks)
    while True:
        if len(pending) < IN_FLIGHT_PER_WORKER * workers and (chunk := next(chunks, None)) is not None:
            chunk.index = done + ahead * len(pending)
            pending.append((chunk.index, pool.apply_async(run, (chunk,))))
            continue
        if not pending:
            return done, True
        given, result = pending.popleft()
        facts = result.get()
        if facts is None:
            return done, False
        yield facts.shifted(done - given)
        done += len(facts)


# ---- the dataset stage on several cores ------------------------------------------------------------------------

def can_fork() -> bool:
    return "fork" in mp.get_all_start_methods()


def _call_forked(item):
    return _forked(item)


def fork_map(fn: Callable[[Any], T], items: Iterable, workers: int) -> Iterator[T]:
    """`map(fn, items)` in `workers` forked processes, results in order. The processes are forked now, so `fn` may
    read anything this process holds (nothing but the items and the results is pickled). In this process where
    fork is unavailable, or with one worker or item."""
    global _forked
    items = list(items)
    if workers <= 1 or len(items) < 2 or not can_fork():
        yield from map(fn, items)
        return
    _forked = fn
    try:
        with _Pool(min(workers, len(items)), context=mp.get_context("fork")) as pool:
            yield from pool.imap(_call_forked, items)
    finally:
        _forked = None


class Background:
    """`fn()` started in a forked process (where fork exists and `fork` is true), else run when asked for;
    `result()` waits for it. The dataset stage runs the task estimate this way while it groups duplicates."""

    def __init__(self, fn: Callable[[], T], fork: bool = True) -> None:
        global _forked
        self.fn, self.pool, self.job = fn, None, None
        if fork and can_fork():
            _forked = lambda _: fn()  # noqa: E731 - what the forked process calls
            self.pool = _Pool(1, context=mp.get_context("fork"))
            self.job = self.pool.apply_async(_call_forked, (None,))
            _forked = None

    def result(self) -> T:
        if self.pool is None:
            return self.fn()
        try:
            return self.job.get()
        finally:
            self.pool.close()
            self.pool.join()
