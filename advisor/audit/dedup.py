"""Exact duplicates, near-duplicates (MinHash + LSH over character shingles, so Chinese works too) and
conflicting answers (same prompt, different answers). Memory: one 64-value signature per record."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
SHINGLE = 5
SAMPLE_ABOVE = 128
BUCKET_CAP = 12
_MASK61 = np.uint64((1 << 61) - 1)
_rng = np.random.default_rng(20240601)  # fixed: the same file gives the same groups on every run
_A = (_rng.integers(1, 1 << 61, NUM_PERM, dtype=np.uint64) | np.uint64(1))
_B = _rng.integers(0, 1 << 61, NUM_PERM, dtype=np.uint64)
_BASE = np.uint64(1_000_003)
_SHIFT = np.uint64(32)


def signature(norm: str) -> np.ndarray:
    """64 MinHash values of the text's character 5-grams (spaces removed)."""
    text = norm.replace(" ", "")
    if not text:
        return np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(cps)
    # a CJK character carries about a word: shorter shingles there
    k = SHINGLE if text.isascii() or np.count_nonzero(cps > 0x2E80) * 3 <= n else 3
    if n < k:
        h = np.array([int(sum(int(c) << (8 * i) for i, c in enumerate(cps)) & ((1 << 61) - 1))], dtype=np.uint64)
    else:
        m = n - k + 1
        h = cps[:m].copy()
        for j in range(1, k):  # polynomial rolling hash, wrapping in uint64
            h = h * _BASE + cps[j:j + m]
        if m > SAMPLE_ABOVE:
            # content-defined subsampling: the same shingle is kept (or dropped) in every document of similar
            # length, so near-duplicates keep their overlap while long texts cost no more than short ones
            step = 1 << int(np.ceil(np.log2(m / SAMPLE_ABOVE)))
            kept = h[((h >> np.uint64(17)) & np.uint64(step - 1)) == 0]
            h = kept if kept.size else h[:1]
    mixed = np.multiply.outer(h, _A)
    mixed += _B
    mixed >>= _SHIFT
    return mixed.min(axis=0).astype(np.uint32)


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
        best, best_min = None, threshold
        for gid in dict.fromkeys(self.group_of.get(int(r), int(r)) for r in candidates):
            members = self.members.get(gid, [gid])
            check = np.asarray(members[:GROUP_CHECK])
            worst = float((sigs[check] == sig).mean(axis=1).min())
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
    eq = (sub[:, None, :] == sub[None, :, :]).mean(axis=2)
    return float(eq.min())


class DuplicateIndex:
    """Feed records in order with `add`; read groups at the end.

    exact: the whole normalised record is the key, always (nothing is stripped from it);
    near: MinHash-LSH candidates verified against the group (NearGroups), on the text the caller gives;
    conflicts: the same normalised prompt with a different normalised answer."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.exact_first: dict[int, int] = {}
        self.exact = UnionFind()
        self.near_rows = NearGroups()
        # band → rows; most buckets hold one row, kept as a bare int (a list only once a second row arrives)
        self.buckets: list[dict[bytes, int | list[int]]] = [{} for _ in range(BANDS)]
        self.sigs = np.zeros((1024, NUM_PERM), dtype=np.uint32)
        self.row_index: list[int] = []  # signature row → record index
        self.prompt_first: dict[int, tuple[int, int]] = {}  # prompt key → (first record, its answer key)
        self.conflicts = UnionFind()

    def add(self, index: int, norm_record: str, norm_near: str, norm_prompt: str, norm_answer: str,
            with_prompt: bool) -> None:
        key = hash(norm_record)
        first = self.exact_first.setdefault(key, index)
        if first != index:
            self.exact.union(first, index)
            return  # the same prompt and answer: no conflict, and an exact copy adds nothing to near-duplicates
        if with_prompt and norm_prompt:
            pkey, akey = hash(norm_prompt), hash(norm_answer)
            seen = self.prompt_first.setdefault(pkey, (index, akey))
            if seen[0] != index and seen[1] != akey:
                self.conflicts.union(seen[0], index)
        self._add_near(index, norm_near)

    def _add_near(self, index: int, norm_near: str) -> None:
        sig = signature(norm_near)
        row = len(self.row_index)
        if row >= len(self.sigs):
            self.sigs = np.concatenate([self.sigs, np.zeros_like(self.sigs)])
        self.sigs[row] = sig
        self.row_index.append(index)
        candidates: set[int] = set()
        raw = sig.tobytes()
        width = 4 * ROWS
        for b in range(BANDS):
            table, key = self.buckets[b], raw[b * width:(b + 1) * width]
            bucket = table.get(key)
            if bucket is None:
                table[key] = row
            elif isinstance(bucket, int):
                candidates.add(bucket)
                table[key] = [bucket, row]
            else:
                candidates.update(bucket[-BUCKET_CAP:])  # a huge cluster is still caught through recent members
                bucket.append(row)
        if candidates:
            rows = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
            sims = np.count_nonzero(self.sigs[rows] == sig, axis=1) / NUM_PERM
            close = rows[sims >= self.threshold]
            if close.size:
                self.near_rows.join(row, close, self.sigs, sig, self.threshold)

    def near_groups(self) -> list[tuple[list[int], float]]:
        """Near-duplicate groups as record indices, each with its lowest pairwise similarity."""
        out = []
        for rows in self.near_rows.groups():
            out.append((sorted(self.row_index[r] for r in rows), round(min_similarity(self.sigs, rows), 3)))
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
