"""What `--dry-run` shows of the encoded records: one formatted sample with its trained pieces marked, and the
trained text of the first records."""

from __future__ import annotations

from trainer.run_report import Sample, TrainedSample


def trained_samples(prepared, tok, n: int = 5) -> list[TrainedSample]:
    """The first records in file order, each with the decoded text of every run of loss-bearing tokens: anyone
    can check it is exactly each assistant reply plus its end-of-turn token."""
    from trainer.encoding import trained_runs

    first = sorted([*_first_records(prepared.train, n), *_first_records(prepared.val, n)], key=lambda e: e.record)[:n]
    return [TrainedSample(record=e.record, trained=trained_runs(e, tok)) for e in first]


def _first_records(items, n: int) -> list:
    """The `n` items with the lowest record numbers (read from the record column, not by building every row)."""
    records = getattr(items, "records", None)
    if records is None:
        return sorted(items, key=lambda e: e.record)[:n]
    return [items[i] for i in sorted(range(len(records)), key=records.__getitem__)[:n]]


def render_sample(prepared, tok, context: int = 600) -> Sample:
    """One formatted training sample; the trained (unmasked) span is returned separately and marked. Every trained
    piece is shown whole; only an untrained stretch longer than `context` characters (a long default system
    prompt) is shortened, its middle replaced by a count of the characters left out."""
    from trainer.encoding import label_runs

    e = prepared.train[0]
    pieces = [(trained, tok.decode(ids)) for trained, ids in label_runs(e)]
    marked = "".join(f"«{t}»" if tr else elide(t, context) for tr, t in pieces)
    return Sample(record=e.record, tokens=len(e.input_ids), trained_tokens=sum(lab != -100 for lab in e.labels),
                  marked=marked, pieces=[(tr, t) for tr, t in pieces])


def elide(text: str, keep: int) -> str:
    """`text`, or its first third and last two thirds of `keep` characters around `[… N characters …]`."""
    if len(text) <= keep:
        return text
    head, tail = keep // 3, keep - keep // 3
    return f"{text[:head]}[… {len(text) - head - tail} characters …]{text[-tail:]}"
