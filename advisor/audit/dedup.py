"""Exact duplicates, near-duplicates (MinHash + LSH over character shingles, so Chinese works too) and
conflicting answers (same prompt, different answers). Memory: one 64-value signature per record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial

import numpy as np

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
SHINGLE = 5
SAMPLE_ABOVE = 128
BUCKET_CAP = 12
CLOSE_HEAD = NUM_PERM // 2  # signature values a candidate pair is compared on first
NEAR_BLOCK = 1 << 14  # rows whose candidate pairs are gathered at once (blocks also spread over the cores)
_MASK61 = np.uint64((1 << 61) - 1)
_rng = np.random.default_rng(20240601)  # fixed: the same file gives the same groups on every run
_A = (_rng.integers(1, 1 << 61, NUM_PERM, dtype=np.uint64) | np.uint64(1))
_B = _rng.integers(0, 1 << 61, NUM_PERM, dtype=np.uint64)
_BASE = np.uint64(1_000_003)
_SHIFT = np.uint64(32)


def signature(norm: str) -> np.ndarray:
    """64 MinHash values of the text's character 5-grams (spaces removed)."""
    return signatures([norm])[0]


def signatures(norms: list[str]) -> np.ndarray:
    """`signature` of many texts at once, (len(norms), 64) uint32: the same values, computed with a few numpy
    passes over the whole batch instead of a dozen small ones per record (the audit hashes a batch at a time)."""
    out = np.full((len(norms), NUM_PERM), np.iinfo(np.uint32).max, dtype=np.uint32)
    texts = [t.replace(" ", "") for t in norms]
    raw = [t.encode("utf-32-le", "surrogatepass") for t in texts]
    n = np.array([len(r) // 4 for r in raw], dtype=np.int64)
    if not n.any():
        return out
    cps = np.frombuffer(b"".join(raw), dtype=np.uint32).astype(np.uint64)
    start = np.concatenate(([0], np.cumsum(n)[:-1]))
    wide = np.concatenate(([0], np.cumsum(cps > 0x2E80)))  # characters beyond ASCII-like scripts (CJK...)
    # a CJK character carries about a word: shorter shingles where over a third of the text is CJK
    k = np.where((wide[start + n] - wide[start]) * 3 <= n, SHINGLE, 3)
    hashes: list[tuple[np.ndarray, np.ndarray]] = []  # (text rows, their sampled shingle hashes ...)
    for size in (SHINGLE, 3):
        rows = np.flatnonzero((k == size) & (n >= size))
        if rows.size:
            hashes.append(_sampled_shingles(cps, start[rows], n[rows] - size + 1, size) + (rows,))
    short = [i for i in np.flatnonzero((n > 0) & (n < k)).tolist()]
    if short:
        cp = [np.frombuffer(raw[i], dtype=np.uint32) for i in short]
        h = np.array([int(sum(int(c) << (8 * j) for j, c in enumerate(x)) & ((1 << 61) - 1)) for x in cp],
                     dtype=np.uint64)
        hashes.append((h, np.arange(len(short), dtype=np.int64), np.array(short, dtype=np.int64)))
    for h, seg, rows in hashes:
        mixed = np.multiply.outer(_A, h)  # (64, shingles): each permutation's values contiguous for the min
        mixed += _B[:, None]
        mixed >>= _SHIFT
        out[rows] = np.minimum.reduceat(mixed, seg, axis=1).T.astype(np.uint32)
    return out


def _sampled_shingles(cps: np.ndarray, start: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the kept shingle hashes of each text, concatenated; where each text's run starts). Texts of `m` shingles
    of `size` characters starting at `start` in `cps`: a polynomial rolling hash (wrapping in uint64), then
    content-defined subsampling above SAMPLE_ABOVE shingles — the same shingle is kept (or dropped) in every
    document of similar length, so near-duplicates keep their overlap while long texts cost no more than short
    ones; a text left with none keeps its first."""
    total = int(m.sum())
    first = np.concatenate(([0], np.cumsum(m)[:-1]))
    pos = np.arange(total, dtype=np.int64) + np.repeat(start - first, m)  # each shingle's first character
    span = len(cps) - size + 1
    h = cps[:span].copy()
    for j in range(1, size):  # over the whole batch with slices (cheaper than gathering per text), then picked
        h *= _BASE
        h += cps[j:j + span]
    h = h[pos]
    step = np.where(m > SAMPLE_ABOVE, 1 << np.ceil(np.log2(np.maximum(m, 1) / SAMPLE_ABOVE)).astype(np.int64), 1)
    keep = ((h >> np.uint64(17)) & np.repeat(step - 1, m).astype(np.uint64)) == 0
    kept_per = np.add.reduceat(keep, first) if total else np.zeros(0, dtype=np.int64)
    keep[first[kept_per == 0]] = True
    counts = np.where(kept_per == 0, 1, kept_per)
    return h[keep], np.concatenate(([0], np.cumsum(counts)[:-1]))


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent.setdefault(lo, lo)
            self.parent[hi] = lo

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for x in self.parent:
            out[self.find(x)].append(x)
        return [sorted(g) for g in out.values() if len(g) > 1]


GROUP_CHECK = 24  # members a candidate is compared with before it joins a near-duplicate group


class NearGroups:
    """Near-duplicate groups without chaining: a record joins a group only if its estimated similarity to every
    member checked (the first GROUP_CHECK, the founder included) reaches the threshold, so A~B and B~C never put
    A and C together unless A~C too."""

    def __init__(self) -> None:
        self.group_of: dict[int, int] = {}  # signature row → group id (its founder's row)
        self.members: dict[int, list[int]] = {}

    def join(self, row: int, candidates: np.ndarray, sigs: np.ndarray, sig: np.ndarray, threshold: float) -> None:
        """The similarity of two signatures is the share of equal values, counted (an integer out of NUM_PERM: the
        same float as the mean it replaces: 20 -> 12 µs a join on the bench's 60,000 records, where the
        joins run in this process alone after the pass)."""
        best, best_min = None, threshold
        group_of = self.group_of
        for gid in dict.fromkeys([group_of.get(r, r) for r in candidates.tolist()]):
            members = self.members.get(gid)
            if members is None:  # a record not in a group yet: its own
                worst = np.count_nonzero(sigs[gid] == sig) / NUM_PERM
            else:
                worst = int(np.count_nonzero(sigs[members[:GROUP_CHECK]] == sig, axis=1).min()) / NUM_PERM
            if worst >= best_min:
                best, best_min = gid, worst
        if best is None:
            return
        self.members.setdefault(best, [best]).append(row)
        self.group_of.setdefault(best, best)
        self.group_of[row] = best

    def groups(self) -> list[list[int]]:
        return [g for g in self.members.values() if len(g) > 1]


def min_similarity(sigs: np.ndarray, rows: list[int], sample: int = 64) -> float:
    """Lowest estimated Jaccard similarity over the pairs of a group (its first `sample` members)."""
    sub = sigs[np.asarray(rows[:sample])]
    return int(np.count_nonzero(sub[:, None, :] == sub[None, :, :], axis=2).min()) / NUM_PERM


class DuplicateIndex:
    """Feed records in order with `add`; `finish` computes the groups once every record is in.

    Only fixed-size numbers are kept per record (keys, a 64-value signature, 16 band keys: ~400 bytes), and the
    groups are found by sorting at the end, not in per-record hash tables: 1M records fit in a few hundred MB.
    exact: the whole normalised record is the key, always (nothing is stripped from it); the first occurrence leads;
    near: MinHash-LSH candidates (records sharing a band; in a crowded band the BUCKET_CAP latest before it),
      verified against every checked member of a group (NearGroups), in record order: as if streamed;
    conflicts: the same normalised prompt with an answer other than the first record's with that prompt.
    Exact copies take part in neither near-duplicates nor conflicts. Two records whose prompts are worded the same
    but are about other numbers, with answers that differ beyond repeating the prompt's numbers ("Convert 1011 to
    decimal" → 11 / "Convert 1101 to decimal" → 13), are different examples, never near-duplicates; with the same
    answer (an order number mistyped in a copied complaint) or one that only echoes the number ("item 3: a blue
    mug" / "item 4: a blue mug") they are. `wording`, `numbers`, `result`: keys of the question (the message the
    answer answers, up to 600 characters) with its digits masked, of its digits, and of the answer with the
    question's numbers masked (0 when the question has no digits)."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self._index = _Column(np.int64)
        self._exact = _Column(np.uint64)
        self._prompt = _Column(np.uint64)
        self._answer = _Column(np.uint64)
        self._sigs = _Column(np.uint32, NUM_PERM)
        self._wording = _Column(np.uint64)
        self._numbers = _Column(np.uint64)
        self._result = _Column(np.uint64)
        self.wording = self.numbers = self.results = np.zeros(0, dtype=np.uint64)
        self.exact = UnionFind()
        self.conflicts = UnionFind()
        self.near_rows = NearGroups()
        self.sigs = np.zeros((0, NUM_PERM), dtype=np.uint32)
        self.row_index = np.zeros(0, dtype=np.int64)  # signature row → record index (exact copies removed)
        self.unique_prompts = 0

    def add(self, index: int, exact: int, prompt: int, answer: int, sig: bytes) -> None:
        """`prompt` 0: the record takes no part in the conflict check."""
        self.add_batch([index], [exact], [prompt], [answer], np.frombuffer(sig, dtype=np.uint32).reshape(1, -1))

    def add_batch(self, index, exact, prompt, answer, sigs: np.ndarray, wording=None, numbers=None,
                  result=None) -> None:
        """Columns of consecutive records (signatures: one row each)."""
        zeros = np.zeros(len(index), dtype=np.uint64)
        self._wording.extend(zeros if wording is None else wording)
        self._numbers.extend(zeros if numbers is None else numbers)
        self._result.extend(zeros if result is None else result)
        self._index.extend(index)
        self._exact.extend(exact)
        self._prompt.extend(prompt)
        self._answer.extend(answer)
        self._sigs.extend(sigs)

    def finish(self, map_blocks: Callable = map) -> None:
        """Group everything added. `map_blocks(fn, starts)`: how the near-duplicate candidates of each block of rows
        are computed (`map`, or a parallel map: the blocks are independent; they are joined in order after)."""
        index, exact = self._index.take(), self._exact.take()
        first = _first_of_group(exact)  # position of each record's first copy
        for pos in np.flatnonzero(first != np.arange(len(exact))):
            self.exact.union(int(index[first[pos]]), int(index[pos]))
        keep = first == np.arange(len(exact))
        self._find_conflicts(index[keep], self._prompt.take(keep), self._answer.take(keep))
        self.sigs = self._sigs.take(keep)
        self.row_index = index[keep]
        self.wording, self.numbers = self._wording.take(keep), self._numbers.take(keep)
        self.results = self._result.take(keep)
        self._index = self._exact = self._prompt = self._answer = self._sigs = self._wording = self._numbers = self._result = None
        self._find_near(map_blocks)

    def _find_conflicts(self, index: np.ndarray, prompt: np.ndarray, answer: np.ndarray) -> None:
        has = prompt != 0
        index, prompt, answer = index[has], prompt[has], answer[has]
        self.unique_prompts = int(sorted_distinct(prompt).size)
        lead = _first_of_group(prompt)
        differs = answer != answer[lead]
        for pos in np.flatnonzero(differs):
            self.conflicts.union(int(index[lead[pos]]), int(index[pos]))

    def _find_near(self, map_blocks: Callable) -> None:
        n = len(self.sigs)
        if n < 2:
            return
        bands = [self._band_order(b) for b in range(BANDS)]
        # candidate pairs a block of rows at a time (memory stays bounded), then joined in record order
        for pairs in map_blocks(partial(self._block_pairs, bands, n), range(0, n, NEAR_BLOCK)):
            if not len(pairs):
                continue
            firsts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
            for a, b in zip(firsts, np.r_[firsts[1:], len(pairs)], strict=True):
                row = int(pairs[a, 0])
                self.near_rows.join(row, pairs[a:b, 1], self.sigs, self.sigs[row], self.threshold)

    def _block_pairs(self, bands: list, n: int, start: int) -> np.ndarray:
        """The close candidate pairs (row, earlier row) of the rows from `start` (one block)."""
        return self._close(self._candidates(bands, np.arange(start, min(n, start + NEAR_BLOCK)), n))

    def _close(self, pairs: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """The candidate pairs whose estimated similarity reaches the threshold (compared a chunk at a time), and
        not about other numbers. The first CLOSE_HEAD values are compared first: a pair with too few equal there
        cannot reach the threshold even if every other value is equal, and only the rest are compared in full
        (the same pairs: 0.41 -> 0.28 s for the bench's 150,000 records, where most candidates fall short early)."""
        need = self.threshold * NUM_PERM
        head, rest = self.sigs[:, :CLOSE_HEAD], self.sigs[:, CLOSE_HEAD:]
        w, d, a = self.wording, self.numbers, self.results
        keep = np.zeros(len(pairs), dtype=bool)
        for i in range(0, len(pairs), chunk):
            one, other = pairs[i:i + chunk, 0], pairs[i:i + chunk, 1]
            same = np.count_nonzero(head[one] == head[other], axis=1)
            maybe = np.flatnonzero(same + (NUM_PERM - CLOSE_HEAD) >= need)
            same = same[maybe] + np.count_nonzero(rest[one[maybe]] == rest[other[maybe]], axis=1)
            hit = maybe[same >= need]
            one, other = one[hit], other[hit]
            other_numbers = (w[one] == w[other]) & (w[one] != 0) & (d[one] != d[other]) & (a[one] != a[other])
            keep[i + hit[~other_numbers]] = True
        return pairs[keep]

    def _band_order(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A band's rows sorted by the band's 64-bit key (ties by row), each row's position in that order, and for
        each position the first position of its run of equal keys (its bucket)."""
        band = self.sigs[:, b * ROWS:(b + 1) * ROWS].astype(np.uint64)
        keys = band[:, 0]
        for j in range(1, ROWS):  # the band's values folded into one 64-bit key
            keys = keys * np.uint64(0x100000001B3) ^ band[:, j]
        order = np.lexsort((np.arange(len(keys)), keys)).astype(np.int32)
        pos = np.empty(len(keys), dtype=np.int32)
        pos[order] = np.arange(len(keys), dtype=np.int32)
        keys = keys[order]
        first = np.r_[True, keys[1:] != keys[:-1]]
        bucket = np.maximum.accumulate(np.where(first, np.arange(len(keys), dtype=np.int32), 0)).astype(np.int32)
        return order, pos, bucket

    @staticmethod
    def _candidates(bands: list, rows: np.ndarray, n: int) -> np.ndarray:
        """(row, earlier row) pairs sharing a band bucket, at most BUCKET_CAP back per band; sorted, unique. A row at
        sorted position p pairs with the rows at p-1 ... p-depth, depth = how many positions of its bucket come
        before it (at most BUCKET_CAP): built at once with repeat, not in BUCKET_CAP masked passes per band
        (0.20 -> 0.11 s for the candidates of the bench's 60,000 records)."""
        found = []
        for order, pos, bucket in bands:
            p = pos[rows]
            depth = np.minimum(p - bucket[p], BUCKET_CAP)
            has = depth > 0
            if not has.any():
                continue
            depth, p = depth[has], p[has].astype(np.int64)
            ends = np.cumsum(depth)
            back = np.arange(int(ends[-1]), dtype=np.int64) - np.repeat(ends - depth, depth) + 1  # 1..depth per row
            earlier = order[np.repeat(p, depth) - back]
            found.append(np.repeat(rows[has].astype(np.int64), depth) * n + earlier)  # one int64 a pair: fast unique
        if not found:
            return np.zeros((0, 2), dtype=np.int64)
        packed = sorted_distinct(np.concatenate(found))
        return np.stack([packed // n, packed % n], axis=1)

    def near_groups(self) -> list[tuple[list[int], float]]:
        """Near-duplicate groups as record indices, each with its lowest pairwise similarity."""
        out = []
        for rows in self.near_rows.groups():
            out.append((sorted(self.row_index[rows].tolist()), round(min_similarity(self.sigs, rows), 3)))
        return sorted(out)

    def mean_similarity(self, sample: int = 400, seed: int = 0) -> float:
        """Mean estimated Jaccard similarity between random pairs of distinct records."""
        n = len(self.row_index)
        if n < 2:
            return 0.0
        rng = np.random.default_rng(seed)
        rows = rng.choice(n, size=min(sample, n), replace=False)
        sig = self.sigs[rows]
        eq = (sig[:, None, :] == sig[None, :, :]).mean(axis=2)
        k = len(rows)
        return float((eq.sum() - k) / (k * (k - 1)))


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """np.unique(values), by a sort and a mask. NumPy 2.3+ finds the distinct values of a plain `np.unique` call
    with a hash table, 7-11x slower than sorting on arrays of many distinct 64-bit keys (measured here, numpy 2.4:
    450,000 candidate pairs 373 -> 33 ms, 1M bigram keys 1,048 -> 94 ms; numpy issue #28375 tracks where hashing
    wins). Every caller here has such arrays."""
    ordered = np.sort(np.ravel(values))
    if ordered.size < 2:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _first_of_group(keys: np.ndarray) -> np.ndarray:
    """For each position, the position of the first element with the same key."""
    if not keys.size:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    lead_in_sorted = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
    out = np.empty(len(keys), dtype=np.int64)
    out[order] = order[lead_in_sorted]
    return out


class _Column:
    """An append-only column of fixed-size values kept as numpy arrays (no per-record Python objects)."""

    def __init__(self, dtype, width: int = 0) -> None:
        self.dtype, self.width = dtype, width
        self.blocks: list[np.ndarray] = []

    def extend(self, values) -> None:
        self.blocks.append(np.asarray(values, dtype=self.dtype).copy())

    def array(self) -> np.ndarray:
        if not self.blocks:
            return np.zeros((0, self.width) if self.width else 0, dtype=self.dtype)
        return np.concatenate(self.blocks)

    def take(self, keep: np.ndarray | None = None) -> np.ndarray:
        """The column as one array (only the rows where `keep`), emptying it: each block is released once copied,
        so the peak is one copy of the column, not the blocks plus the whole plus the kept rows."""
        blocks, self.blocks = self.blocks[::-1], []
        rows = sum(len(b) for b in blocks) if keep is None else int(np.count_nonzero(keep))
        out = np.empty((rows, self.width) if self.width else rows, dtype=self.dtype)
        at = start = 0
        while blocks:
            block = blocks.pop()
            if keep is not None:
                start, block = start + len(block), block[keep[start:start + len(block)]]
            out[at:at + len(block)] = block
            at += len(block)
            del block
        return out
