"""Tokenise once: the records rendered, tokenised, labelled and split, kept on disk as Arrow tables (HF `datasets`,
memory-mapped), under a key that hashes everything that decides them: the data file's bytes, the tokenizer and
template files, the data settings and this module's format version. A second run of the same config (a resume, an
evaluation, another method on the same data) loads them instead of re-encoding; a million records are read from
the mapped file row by row, not held as Python lists.

The build, in named stages:
1. `write_raw`  – the reader streams the records into an Arrow file (JSONL lines unparsed);
2. `encode`     – `Dataset.map` parses, normalises, renders and tokenises them, in several processes for big files;
3. `split`      – the usable rows shuffled with the seed and split into train / validation (the same split as
                  before caching: `random.Random(seed).shuffle` over the usable records in file order);
4. `save`       – both tables and `meta.json` written to a temporary folder renamed into place (atomic; when
                  several ranks build at once, the first rename wins and the others use it)."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from core.data.layout import Layout
from core.errors import UserError

PREP_VERSION = 3  # bump when what an entry holds, or how records are encoded, changes (2: copies kept on one side
# of the split, empty answers counted, each table file's checksum in meta.json; 3: replies cut without their end)
RAW_BATCH = 10_000  # records per Arrow batch while streaming the file
MAP_BATCH = 256
PROC_FROM_ROWS = 20_000  # records from which encoding uses several processes
ROWS_PER_PROC = 10_000  # ... at least this many per process (start-up costs about a second each)
BAR_FROM_ROWS = 5_000  # a progress bar from this many records (a few seconds of work); small files stay quiet
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".onnx")
KEY_FILE_LIMIT = 64 << 20  # model-folder files above this are not tokenizer files: left out of the key


@dataclass(frozen=True)
class PrepSettings:
    """The settings that decide the prepared records (with the files, the cache key)."""
    fmt: str
    max_seq_len: int
    val_size: float
    assistant_only: bool
    system_prompt: str | None
    seed: int
    reasoning: str
    layout: Layout | None = None  # the columns mapped (data.columns) or found (core/data/layout.py)
    text_unit: str = "auto"  # plain-text files: line, paragraph or document records
    truncated_replies: str = "keep"


@dataclass
class CacheUse:
    """Where the prepared records came from (reported by --dry-run and in the run summary)."""
    key: str
    hit: bool
    path: str | None  # None: caching is off (built in a temporary folder, removed at exit)
    seconds: float
    processes: int  # encoding processes (0 on a hit)


def default_cache_dir() -> Path:
    """TUNEWISE_CACHE, else $XDG_CACHE_HOME/tunewise, else ~/.cache/tunewise."""
    if os.environ.get("TUNEWISE_CACHE"):
        return Path(os.environ["TUNEWISE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tunewise"


# ---- the key -----------------------------------------------------------------------------------------------------

def _hash_file(h, path: Path) -> None:
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)


def tokenizer_files(model_path: str | None) -> list[Path]:
    """The files of the model folder that can change tokenisation or the template (everything but weights)."""
    if not model_path or not Path(model_path).is_dir():
        return []
    return sorted(p for p in Path(model_path).iterdir()
                  if p.is_file() and not p.name.endswith(WEIGHT_SUFFIXES) and p.stat().st_size <= KEY_FILE_LIMIT)


def cache_key(data_path: str | Path, tok, model_path: str | None, settings: PrepSettings) -> str:
    """Hash of the data file's bytes, the tokenizer (its folder's files, and the template and special tokens
    actually in use, which `data.chat_template` may override), the settings and the format version."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": PREP_VERSION, "settings": asdict(settings),
                         "template": getattr(tok, "chat_template", None), "eos": tok.eos_token, "pad": tok.pad_token,
                         "vocab": len(tok)}, sort_keys=True, default=str).encode())
    _hash_file(h, Path(data_path))
    for p in tokenizer_files(model_path):
        h.update(p.name.encode() + b"\0")
        _hash_file(h, p)
    return h.hexdigest()


# ---- the rows ------------------------------------------------------------------------------------------------------

class EncodedTable(Sequence):
    """Encoded records on a memory-mapped Arrow table: indexing gives `Encoded`, slicing a list of them; `lengths`
    and `records` come from columns without building rows."""

    def __init__(self, ds) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        from trainer.encoding import Encoded

        if isinstance(i, slice):
            cols = self.ds[i]
            return [Encoded(a, b, c) for a, b, c in zip(cols["input_ids"], cols["labels"], cols["record"], strict=True)]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        row = self.ds[i]
        return Encoded(row["input_ids"], row["labels"], row["record"])

    def __iter__(self) -> Iterator:
        for start in range(0, len(self), 1000):
            yield from self[start:start + 1000]

    @property
    def lengths(self) -> list[int]:
        return self.ds.data.column("length").to_pylist()

    @property
    def records(self) -> list[int]:
        return self.ds.data.column("record").to_pylist()


# ---- 1. the records into Arrow ----------------------------------------------------------------------------------

RAW_SCHEMA_FIELDS = (("record", "int64"), ("raw", "binary"), ("error", "string"))


def write_raw(path: str | Path, dest: Path, text_unit: str = "auto") -> int:
    """Stream every record of the file into an Arrow file: (record index, the record's JSON bytes or None, why it
    could not be read). JSONL lines go in unparsed (the encoding processes parse them). Returns the record count."""
    import pyarrow as pa

    from core.data.reader import iter_raw, sniff

    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in RAW_SCHEMA_FIELDS])
    total = 0
    with pa.OSFile(str(dest), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        cols: dict[str, list] = {"record": [], "raw": [], "error": []}
        for r in iter_raw(path, sniff(path, text_unit), parse=False):
            total += 1
            cols["record"].append(r.index)
            if r.raw is not None:
                cols["raw"].append(r.raw)
            else:
                # ASCII escapes keep lone surrogates intact; str() for values JSON has no type for (Parquet dates)
                cols["raw"].append(None if r.error else json.dumps(r.obj, default=str).encode())
            cols["error"].append(r.error)
            if len(cols["record"]) >= RAW_BATCH:
                writer.write_batch(pa.record_batch([cols[n] for n, _ in RAW_SCHEMA_FIELDS], schema=schema))
                cols = {k: [] for k in cols}
        if cols["record"]:
            writer.write_batch(pa.record_batch([cols[n] for n, _ in RAW_SCHEMA_FIELDS], schema=schema))
    return total


# ---- 2. encoding ---------------------------------------------------------------------------------------------------

class EncodeRows:
    """The `Dataset.map` function: a batch of raw records → token ids, labels and what happened to each record.
    Picklable (it carries the tokenizer), so it runs in worker processes; counters come back as columns."""

    def __init__(self, tok, settings: PrepSettings, model_path: str | None) -> None:
        self.tok, self.settings, self.model_path = tok, settings, model_path
        self._enc = None

    def encoder(self):
        from trainer.encoding import Encoder

        if self._enc is None:
            s = self.settings
            self._enc = Encoder(self.tok, s.max_seq_len, s.assistant_only, self.model_path, s.reasoning)
        return self._enc

    def _counters(self) -> tuple[int, int, int]:
        """The encoder's running counts (system merged, reasoning replies, reasoning rendered back): compared
        before and after a record, they say what happened to it."""
        enc, s = self.encoder(), self.settings
        if not (s.assistant_only and s.fmt != "text"):  # no span finder: no reasoning handling
            return enc.system_merged, 0, 0
        return enc.system_merged, enc.finder.reasoning_records, enc.finder.reasoning_restored

    def __call__(self, batch: dict) -> dict:
        out: dict[str, list] = {k: [] for k in ENCODED_COLUMNS}
        for index, raw, error in zip(batch["record"], batch["raw"], batch["error"], strict=True):
            row = self.one(index, raw, error)
            for k in ENCODED_COLUMNS:
                out[k].append(row.get(k, ENCODED_COLUMNS[k]))
        return out

    def one(self, index: int, raw: bytes | None, error: str | None) -> dict:
        from core.data.reader import RawRecord, parse_line
        from trainer.encoding import conversation

        s = self.settings
        rec = RawRecord(index, 0, error=error) if raw is None else parse_line(RawRecord(index, 0, raw=raw))
        msgs, reason = conversation(rec, s.fmt, s.system_prompt, s.layout)
        if reason:
            return {"record": index, "skip": reason}
        enc = self.encoder()
        before = self._counters()
        try:
            e, cut = enc.encode(index, msgs, s.fmt)
        except UserError as err:
            return {"record": index, "skip": "error", "error": str(err)}
        after = self._counters()
        if not any(x != -100 for x in e.labels):
            return {"record": index, "skip": "no_trainable_tokens"}
        if enc.reply_cut and s.truncated_replies == "skip":
            return {"record": index, "skip": "cut_reply"}
        return {"record": index, "input_ids": e.input_ids, "labels": e.labels, "length": len(e.input_ids),
                "digest": digest(e.input_ids, e.labels), "empty_answer": empty_answer(msgs),
                "truncated": cut, "system_merged": after[0] > before[0], "reasoning": after[1] > before[1],
                "reasoning_restored": after[2] > before[2], "cut_reply": enc.reply_cut}


def digest(input_ids: list[int], labels: list[int]) -> str:
    """The same tokens trained the same way: records with equal digests are copies as the model sees them."""
    import numpy as np

    h = hashlib.blake2b(np.asarray(input_ids, dtype=np.int64).tobytes(), digest_size=16)
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def empty_answer(msgs: list[dict]) -> bool:
    """Every trained assistant turn is empty (no text, reasoning or tool call): only its end token would be
    learned (the audit's `empty_output`)."""
    answers = [m for m in msgs if m.get("role") == "assistant" and m.get("train", True)]
    return bool(answers) and all(not str(m.get("content") or "").strip() and not m.get("tool_calls")
                                 and m.get("reasoning") is None for m in answers)


ENCODED_COLUMNS: dict[str, object] = {"record": 0, "input_ids": [], "labels": [], "length": 0, "skip": "",
                                      "error": "", "truncated": False, "system_merged": False, "reasoning": False,
                                      "reasoning_restored": False, "digest": "", "empty_answer": False,
                                      "cut_reply": False}


def _features():
    from datasets import Features, Sequence, Value

    return Features({"record": Value("int64"), "input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")),
                     "length": Value("int32"), "skip": Value("string"), "error": Value("string"),
                     "truncated": Value("bool"), "system_merged": Value("bool"), "reasoning": Value("bool"),
                     "reasoning_restored": Value("bool"), "digest": Value("string"), "empty_answer": Value("bool"),
                     "cut_reply": Value("bool")})


def processes_for(rows: int, asked: int | None) -> int:
    """Encoding processes: `asked` (data.num_proc), else one per available core for big files (at least
    ROWS_PER_PROC records each), else one."""
    if asked:
        return max(1, asked)
    if rows < PROC_FROM_ROWS:
        return 1
    from trainer.cpu import available_cores

    return max(1, min(available_cores(), rows // ROWS_PER_PROC))


def encode(raw_file: Path, fn: EncodeRows, work: Path, processes: int, key: str, progress: bool):
    """The map over every record (the one progress bar of the build, when `progress`)."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar

    raw = Dataset.from_file(str(raw_file))
    if processes > 1:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the workers are forked: no nested thread pools
    if progress:
        enable_progress_bar()
    try:
        return raw.map(fn, batched=True, batch_size=MAP_BATCH, num_proc=processes if processes > 1 else None,
                       remove_columns=raw.column_names, features=_features(), new_fingerprint=key,
                       cache_file_name=str(work / "encoded.arrow"), load_from_cache_file=False,
                       desc="tokenising records")
    finally:
        disable_progress_bar()


# ---- 3. split and summary ----------------------------------------------------------------------------------------

def split_rows(encoded, settings: PrepSettings) -> tuple[list[int], list[int], dict]:
    """(train row positions, validation row positions, meta): the usable rows shuffled with the seed, as
    `prepare` always split them; meta holds the skipped records by reason and the counters."""
    import numpy as np
    import pyarrow.compute as pc

    table = encoded.data
    skip = table.column("skip")
    records = table.column("record")
    failed = pc.filter(table.column("error"), pc.not_equal(table.column("error"), ""))
    if len(failed):
        raise UserError(failed[0].as_py())
    skipped: dict[str, list[int]] = {}
    for reason in ("invalid_json", "schema", "no_assistant", "no_trainable_tokens", "cut_reply"):
        idx = pc.filter(records, pc.equal(skip, reason)).to_pylist()
        if idx:
            skipped[reason] = idx
    usable = np.flatnonzero(pc.equal(skip, "").to_numpy(zero_copy_only=False))
    groups = copy_groups(table.column("digest").take(usable).to_pylist())
    random.Random(settings.seed).shuffle(groups)
    val_groups = fill_validation(groups, _val_count(settings.val_size, len(usable)))
    val = [int(usable[i]) for g in val_groups for i in g]
    chosen = {id(g) for g in val_groups}
    train = [int(usable[i]) for g in groups if id(g) not in chosen for i in g]
    empty = pc.filter(records, table.column("empty_answer")).to_pylist()
    meta = {"skipped": skipped, "truncated": _count(table, "truncated"), "system_merged": _count(table, "system_merged"),
            "reasoning_records": _count(table, "reasoning"), "reasoning_restored": _count(table, "reasoning_restored"),
            "copies": len(usable) - len(groups), "distinct": len(groups), "empty_answers": empty,
            "cut_replies": _count(table, "cut_reply") + len(skipped.get("cut_reply", []))}
    return train, val, meta


def copy_groups(digests: list[str]) -> list[list[int]]:
    """Positions grouped by equal digest (exact copies together), in order of first appearance."""
    by: dict[str, list[int]] = {}
    for i, d in enumerate(digests):
        by.setdefault(d, []).append(i)
    return list(by.values())


def fill_validation(groups: list[list[int]], n_val: int) -> list[list[int]]:
    """Whole copy groups, in the shuffled order, for the validation split: copies never straddle the split (a
    validation record whose copy is trained measures memory, not learning). Groups that would overshoot `n_val`
    are passed over; when every group is bigger, the first one is taken if some other group is left to train on.
    Without copies this is the first `n_val` records of the shuffled order, the split as it always was."""
    val, count = [], 0
    for g in groups:
        if count >= n_val:
            break
        if count + len(g) <= n_val:
            val.append(g)
            count += len(g)
    if not val and n_val and len(groups) > 1:
        val.append(groups[0])
    return val


def _count(table, column: str) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(table.column(column)).as_py() or 0)


def _val_count(val_size: float, usable: int) -> int:
    n_val = int(val_size) if val_size >= 1 else int(round(usable * val_size))
    if val_size > 0:
        n_val = max(1, n_val)
    return min(n_val, usable)  # none left to train: `prepare` says so


# ---- 4. the entry on disk ----------------------------------------------------------------------------------------

KEEP_COLUMNS = ("record", "input_ids", "labels", "length")


def build(path: str | Path, tok, settings: PrepSettings, model_path: str | None, dest: Path, key: str,
          num_proc: int | None, progress: bool) -> tuple[dict, int]:
    """Build the entry into `dest` (a fresh folder); returns (meta, encoding processes)."""
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # saving and loading tables is quick: no bars for it
    fn = EncodeRows(tok, settings, model_path)
    work = dest / "work"
    work.mkdir(parents=True)
    total = write_raw(path, work / "raw.arrow", settings.text_unit)
    processes = processes_for(total, num_proc)
    encoded = encode(work / "raw.arrow", fn, work, processes, key, progress and total >= BAR_FROM_ROWS)
    train_rows, val_rows, meta = split_rows(encoded, settings)
    for name, rows in (("train", train_rows), ("val", val_rows)):
        part = encoded.select(rows).select_columns(list(KEEP_COLUMNS))
        part.save_to_disk(str(dest / name), num_shards=1)  # one file (an empty split too)
    del encoded
    shutil.rmtree(work, ignore_errors=True)
    finder = fn.encoder().finder if settings.assistant_only and settings.fmt != "text" else None
    meta.update(version=PREP_VERSION, key=key, fmt=settings.fmt, total=total, settings=asdict(settings),
                template_mode=finder.plan.mode if finder else "whole text", checksums=checksums(dest))
    (dest / "meta.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    return meta, processes


def checksums(folder: Path) -> dict[str, int]:
    """CRC-32 of every file of both tables (relative path → checksum). The tables are memory-mapped: a damaged
    byte read in place can crash the process (a segmentation fault, not an exception), so an entry is verified
    against these before it is opened (about 1 s per GB)."""
    import zlib

    out = {}
    for f in sorted(p for part in ("train", "val") for p in (folder / part).rglob("*") if p.is_file()):
        crc = 0
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                crc = zlib.crc32(chunk, crc)
        out[str(f.relative_to(folder))] = crc
    return out


def load_entry(folder: Path) -> tuple[dict, EncodedTable, EncodedTable] | None:
    """A complete entry, or None (missing, from another format version, or damaged: it is rebuilt)."""
    from datasets import load_from_disk
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("version") != PREP_VERSION:
            return None
        if meta.get("checksums") != checksums(folder):  # a changed, missing or extra file: damaged
            return None
        return meta, EncodedTable(load_from_disk(str(folder / "train"))), EncodedTable(load_from_disk(str(folder / "val")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cached_prepare(path: str | Path, tok, settings: PrepSettings, model_path: str | None, *, enabled: bool = True,
                   cache_dir: str | Path | None = None, num_proc: int | None = None,
                   progress: bool = False) -> tuple[dict, EncodedTable, EncodedTable, CacheUse]:
    """The prepared records of `path`: from the cache when an entry with the same key exists, else built (and
    kept when `enabled`)."""
    t0 = time.perf_counter()
    key = cache_key(path, tok, model_path, settings)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    final = root / "prepared" / key
    if enabled and (found := load_entry(final)) is not None:
        return (*found, CacheUse(key, True, str(final), round(time.perf_counter() - t0, 3), 0))
    try:
        if enabled:
            (root / "prepared").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=root / "prepared" if enabled else None))
    except OSError as e:
        raise UserError(f"cannot write the data cache in `{root}` ({e.strerror}): set data.cache_dir or "
                        "TUNEWISE_CACHE to a writable folder, or data.cache: false") from None
    try:
        meta, processes = build(path, tok, settings, model_path, staging, key, num_proc, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    where = staging
    if enabled:
        if final.exists() and load_entry(final) is None:  # damaged or from an older version: replaced
            stale = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-stale-", dir=root / "prepared"))
            os.replace(final, stale / "entry")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(staging, final)  # atomic; another rank may have won the race
            where = final
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if (found := load_entry(final)) is not None:
                return (*found, CacheUse(key, True, str(final), round(time.perf_counter() - t0, 3), 0))
            raise
    else:
        atexit.register(shutil.rmtree, staging, True)
    loaded = load_entry(where)
    if loaded is None:
        raise RuntimeError(f"the prepared records in {where} cannot be read back")
    return (*loaded, CacheUse(key, False, str(final) if enabled else None, round(time.perf_counter() - t0, 3),
                              processes))
