"""Stage 2 of the audit, per record: parse, normalise, run the record and pair checks, and measure what the
dataset statistics need. Pure: the same record gives the same `RecordFacts` in any process, so this stage runs in
worker processes (advisor/audit/parallel.py) and the parent only adds the facts up, in record order."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from zlib import crc32

import numpy as np

from advisor.audit.checks import (
    RecordView,
    TokenCounts,
    answer_language,
    enabled_checks,
    language_texts,
    run_pair_checks,
    run_record_checks,
)
from advisor.audit.dedup import NUM_PERM, signatures
from advisor.audit.intents import intent
from advisor.audit.language import UND, detect, identify_batch
from advisor.audit.tasks import HEAD_CHARS
from advisor.audit.text import (
    carries_facts,
    key,
    normalise,
    normalise_many,
    script_units,
)
from advisor.audit.tokens import TokenCounter
from core.data.formats import Sample, detect_format
from core.data.formats import normalise as to_sample
from core.data.layout import Layout
from core.data.reader import RawRecord, parse_line

_DIGIT_RUNS = re.compile(r"(\d\d*)")  # split: text and numbers alternating (`\d\d*`, not `\d+`: see text.runs)
NUMBERS_PROMPT_CHARS = 600  # a (normalised) question this long or shorter can be "about" its numbers
TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers and separators a chat template adds per message
BIGRAM_RECORDS = 5_000  # distinct-2 of answers is measured on the first records (a fixed sample, comparable)
BIGRAM_CHARS = 1000
SHOWN_CHARS = 160


@dataclass(slots=True)
class RecordFacts:
    """Everything the dataset stage needs from one record (small: it crosses a process boundary)."""

    index: int
    line: int
    found: list[tuple[str, str | None, str]]  # (code, variant, detail)
    shown: dict | None = None  # the record shortened, for a finding's samples (only when something was found)
    valid: bool = False
    tokens: tuple[int, int, int] = (0, 0, 0)  # prompt, answer, total
    turns: int = 0
    language: str = UND
    label: bool | None = None
    knowledge: bool = False
    system_key: int = 0
    instruction_key: int = 0
    intent: str = ""
    head: str = ""  # the instruction head, for task clustering
    answer_shape: str = ""
    exact: int = 0  # key of the whole normalised record
    prompt: int = 0  # key of the normalised prompt (0: no conflict check for this record)
    answer: int = 0
    near_text: str = ""  # the normalised near-duplicate text (its MinHash is computed a batch at a time)
    wording: int = 0  # key of the normalised prompt with its numbers masked (0: no digits in the prompt)
    numbers: int = 0  # key of the prompt's numbers
    result: int = 0  # key of the answer with the prompt's numbers masked
    preference: tuple[int, int] | None = None  # (what is judged, the verdict): contradicting preferences
    bigrams: np.ndarray | None = None


@dataclass
class FactsBatch:
    """The facts of consecutive records, column by column: what crosses from a worker to the parent (numpy columns
    pickle as bytes, not as thousands of small objects) and what the parent adds up in one step."""

    index: np.ndarray  # every record
    line: np.ndarray
    found: list[tuple[int, int, list, dict | None]]  # (index, line, findings, shown) of records with findings
    valid_index: np.ndarray  # the valid records, and their columns below
    tokens: np.ndarray  # (n, 3): prompt, answer, total
    turns: list[int]
    language: list[str]
    label: list[bool | None]
    knowledge: int
    system_key: np.ndarray
    instruction_key: np.ndarray
    intent: list[str]
    head: list[str]
    answer_shape: list[str]
    exact: np.ndarray
    prompt: np.ndarray
    answer: np.ndarray
    signatures: np.ndarray  # (n, NUM_PERM) uint32
    wording: np.ndarray
    numbers: np.ndarray
    result: np.ndarray
    preference: list[tuple[int, int, int]]  # (index, judged, verdict)
    bigrams: list[np.ndarray]
    bigram_index: np.ndarray  # the record of each bigrams entry

    @classmethod
    def of(cls, facts: list[RecordFacts]) -> FactsBatch:
        ok = [f for f in facts if f.valid]
        u64 = lambda xs: np.array(xs, dtype=np.uint64)  # noqa: E731 - keys are unsigned 64-bit
        return cls(
            index=np.array([f.index for f in facts], dtype=np.int64),
            line=np.array([f.line for f in facts], dtype=np.int64),
            found=[(f.index, f.line, f.found, f.shown) for f in facts if f.found],
            valid_index=np.array([f.index for f in ok], dtype=np.int64),
            tokens=np.array([f.tokens for f in ok], dtype=np.int64).reshape(len(ok), 3),
            turns=[f.turns for f in ok], language=[f.language for f in ok], label=[f.label for f in ok],
            knowledge=sum(f.knowledge for f in ok),
            system_key=u64([f.system_key for f in ok]), instruction_key=u64([f.instruction_key for f in ok]),
            intent=[f.intent for f in ok], head=[f.head for f in ok], answer_shape=[f.answer_shape for f in ok],
            exact=u64([f.exact for f in ok]), prompt=u64([f.prompt for f in ok]), answer=u64([f.answer for f in ok]),
            signatures=signatures([f.near_text for f in ok]).reshape(len(ok), NUM_PERM),
            wording=u64([f.wording for f in ok]), numbers=u64([f.numbers for f in ok]),
            result=u64([f.result for f in ok]),
            preference=[(f.index, *f.preference) for f in ok if f.preference is not None],
            bigrams=[f.bigrams for f in ok if f.bigrams is not None],
            bigram_index=np.array([f.index for f in ok if f.bigrams is not None], dtype=np.int64),
        )

    def shifted(self, by: int) -> FactsBatch:
        """The same facts with every record index `by` higher: a batch whose records were numbered from a lower
        bound of their first index (a JSON array's chunk, read by a worker before the records ahead were counted).
        Bigrams stay only for the records still under BIGRAM_RECORDS."""
        if not by:
            return self
        if by < 0:  # numbered from more than its first index: bigrams may be missing for records under the bound
            raise ValueError(f"a batch numbered {-by} past its first record")
        keep = self.bigram_index + by < BIGRAM_RECORDS
        return dataclasses.replace(
            self, index=self.index + by, valid_index=self.valid_index + by,
            found=[(i + by, line, found, shown) for i, line, found, shown in self.found],
            preference=[(i + by, judged, verdict) for i, judged, verdict in self.preference],
            bigrams=[b for b, k in zip(self.bigrams, keep.tolist(), strict=True) if k],
            bigram_index=self.bigram_index[keep] + by)

    def __len__(self) -> int:
        return len(self.index)


class RecordAuditor:
    """Audits one record at a time. Built once per process from plain settings (it pickles as its settings)."""

    def __init__(self, fmt: str, max_seq_len: int, enabled, model_path: str | None = None,
                 tokenizer_path: str | None = None, layout: Layout | None = None) -> None:
        self.fmt, self.max_seq_len, self.enabled, self.layout = fmt, max_seq_len, enabled, layout
        self.model_path, self.tokenizer_path = model_path, tokenizer_path
        self.count_tokens = TokenCounter(model_path, tokenizer_path)
        self.chosen_checks = enabled_checks(enabled)
        self.rejected_checks = enabled_checks(enabled, rejected_side=True)

    def __reduce__(self):
        return RecordAuditor, (self.fmt, self.max_seq_len, self.enabled, self.model_path, self.tokenizer_path,
                               self.layout)

    def batch(self, recs: list[RawRecord]) -> FactsBatch:
        """The facts of a batch of records: parsed and normalised first, the languages of all their turns worked out
        together (language.identify_batch: fastText's calls back to back), then each record checked."""
        read = [self._read(rec) for rec in recs]
        identify_batch(text for _, s in read if s is not None and not s.problems for text in language_texts(s))
        return FactsBatch.of([self._audit(rec, s) for rec, s in read])

    def __call__(self, rec: RawRecord) -> RecordFacts:
        return self._audit(*self._read(rec))

    def _read(self, rec: RawRecord) -> tuple[RawRecord, Sample | None]:
        rec = parse_line(rec)
        return rec, self._sample(rec)

    def _audit(self, rec: RawRecord, s: Sample | None) -> RecordFacts:
        facts = RecordFacts(rec.index, rec.line, [])
        if s is None:
            code = "invalid_json" if rec.error is not None else "schema"
            detail = rec.error or f"record does not look like `{self.fmt}` ({_describe_keys(rec.obj)})"
            self._report(facts, [(code, None, detail)], None, rec.error or rec.obj)
            return facts
        if s.problems:
            self._report(facts, [(code, None, msg) for code, msg in s.problems], s, rec.obj)
            return facts
        facts.valid = True
        tokens = self._tokens(s)
        view = RecordView(s, self.fmt, tokens=tokens, max_seq_len=self.max_seq_len)
        found = self._checks(view)
        self._report(facts, found, s, rec.obj)
        self._measure(facts, view, tokens)
        return facts

    # ---- stages ----------------------------------------------------------------------------------------------

    def _sample(self, rec: RawRecord) -> Sample | None:
        """The normalised sample, or None when the record is not JSON or not of the detected format."""
        if rec.error is not None:
            return None
        obj = rec.obj if self.layout is None else self.layout.apply(rec.obj)  # the columns mapped or found
        own = detect_format(obj)
        if own is None or (own != self.fmt and self.fmt != "text" and not _compatible(own, self.fmt)):
            return None
        s = to_sample(obj, self.fmt)
        if self.layout is not None and s.problems:
            s.problems = [(code, self.layout.explain(msg)) for code, msg in s.problems]
        return s

    def _checks(self, view: RecordView) -> list[tuple[str, str | None, str]]:
        found = run_record_checks(view, self.chosen_checks)
        s = view.sample
        rejected = s.rejected_sample()
        if rejected is not None:
            found += run_record_checks(RecordView(rejected, self.fmt, side="rejected side: "), self.rejected_checks)
            found += run_pair_checks(s, rejected, self.enabled)
        return found

    def _report(self, facts: RecordFacts, found: list, s: Sample | None, raw: object) -> None:
        facts.found = found
        if found:
            facts.shown = shorten(s, raw)

    def _tokens(self, s: Sample) -> TokenCounts:
        """Prompt, answer and total tokens (with the template's tokens per message). The answer is the last assistant
        message; of a preference pair, the longer of the two continuations (it decides whether the pair fits)."""
        msgs = s.messages
        if s.rejected is not None:
            prompt = self._count(msgs[:s.prompt_len])
            answer = max(self._count(msgs[s.prompt_len:]), self._count(s.rejected))
        else:
            last = s.last_assistant()
            answer = self._count(msgs[last:last + 1]) if last is not None else 0
            prompt = self._count(msgs if last is None else msgs[:last] + msgs[last + 1:])
        total = prompt + answer
        first = None
        if total > self.max_seq_len:  # the check needs the tokens before the first trained answer
            first = next((i for i, m in enumerate(msgs) if m.role == "assistant" and m.trainable), None)
        before = self._count(msgs[:first]) if first is not None else total
        return TokenCounts(prompt, answer, total, before)

    def _count(self, msgs: list) -> int:
        return self.count_tokens.total([m.content for m in msgs]) + TEMPLATE_TOKENS_PER_MESSAGE * len(msgs)

    def _measure(self, f: RecordFacts, view: RecordView, tokens: TokenCounts) -> None:
        s = view.sample
        f.tokens = (tokens.prompt, tokens.answer, tokens.total)
        roles = view.roles
        f.turns = roles.count("user") + roles.count("assistant")
        f.language = answer_language(s) if self.fmt != "text" else detect(s.answer)
        f.label = s.label
        answer = s.answer

        system = view.contents[roles.index("system")] if "system" in roles else ""
        f.system_key = key(system[:500].strip())
        f.instruction_key = key(s.instruction[:300].strip().lower())
        task = intent(s.instruction, (self._instruction_language(s, f.language),))
        f.intent = task if not s.has_tools else "tool_use"
        f.knowledge = carries_facts(s.instruction, answer, task)
        head = " ".join(s.instruction[:HEAD_CHARS * 3].split())
        f.head = head[:100]
        f.answer_shape = " ".join(answer[:200].split())[:HEAD_CHARS]
        self._comparison_keys(f, view)
        if f.index < BIGRAM_RECORDS:
            f.bigrams = bigram_keys(answer[:BIGRAM_CHARS])

    @staticmethod
    def _instruction_language(s: Sample, record_language: str) -> str:
        """The instruction's language; an instruction too short to tell (`und`) is taken to be in the record's."""
        lang = detect(s.instruction)
        return lang if lang != UND else record_language

    def _comparison_keys(self, f: RecordFacts, view: RecordView) -> None:
        """Exact key: the whole normalised record (every message with its role, the rejected side, the label).
        Near-duplicate text: the conversation without the system prompt; for alpaca records with a separate input,
        the input and answer only (the instruction there is the task statement shared by many records)."""
        s = view.sample
        norms = normalise_many(view.contents, view.low_by_nul)
        full = "\x00".join([f"{m.role}\x01{n}" for m, n in zip(s.messages, norms, strict=True)])
        rejected = normalise_many([m.content for m in s.rejected]) if s.rejected is not None else None
        if rejected is not None:
            full += "\x00rejected\x01" + "".join(rejected)
        if s.label is not None:
            full += f"\x00label\x01{s.label}"
        f.exact = key(full)
        body = [n for m, n in zip(s.messages, norms, strict=True) if m.role != "system"]
        user = s.messages[-2].content if len(s.messages) >= 2 else ""
        if self.fmt == "alpaca" and s.instruction and user.startswith(s.instruction) and \
                len(user) > len(s.instruction) + 1:
            body = body[:-2] + [normalise(user[len(s.instruction):]), body[-1]]
        f.near_text = "".join(body)
        last = s.last_assistant()
        prompt_side = s.prompt_len if s.rejected is not None else (last if last is not None else len(norms))
        context = "".join(norms[:prompt_side])
        answer = norms[last] if last is not None else ""
        if self.fmt != "text" and s.rejected is None and s.label is None and context:
            f.prompt, f.answer = key(context), key(answer)
            _number_keys(f, norms[prompt_side - 1], answer)
        if s.rejected is not None:  # the same prompt and the same two answers, preferred the other way round
            a, b = key(answer), key(rejected[-1] if rejected else "")
            f.preference = (key(f"{key(context)}|{min(a, b)}|{max(a, b)}"), a)
        elif s.label is not None:  # the same prompt and completion, labelled the other way
            f.preference = (key(f"{key(context)}|{key(answer)}"), int(s.label))


def _number_keys(f: RecordFacts, question: str, answer: str) -> None:
    """A short question about numbers: the same wording with other numbers (and an answer that does more than repeat
    them) is another example, not a near-duplicate. `question`: the normalised message the answer answers.
    One split per text gives both the numbers and the text around them (`findall`, `search` and `sub` with a
    callback per number: 11.9 µs a record of the bench; the splits 8.1)."""
    if len(question) > NUMBERS_PROMPT_CHARS:
        return
    parts = _DIGIT_RUNS.split(question)  # text, number, text, ..., text
    if len(parts) == 1:
        return
    numbers = parts[1::2]
    f.wording, f.numbers = key("#".join(parts[::2])), key("|".join(numbers))
    f.result = _result_key(answer, set(numbers), f.answer)


def _result_key(answer: str, asked: set[str], answer_key: int) -> int:
    """The key of the answer with each number the question asked about replaced by `#` (other numbers kept);
    the answer's own key when nothing is replaced."""
    if not any(number in answer for number in asked):  # a digit run equal to an asked number is a substring
        return answer_key  # (the split skipped: most answers hold none of the question's numbers)
    parts = _DIGIT_RUNS.split(answer)
    found = parts[1::2]
    if not asked.intersection(found):
        return answer_key
    parts[1::2] = ["#" if n in asked else n for n in found]
    return key("".join(parts))


def _describe_keys(obj: object) -> str:
    return f"keys: {sorted(obj)[:8]}" if isinstance(obj, dict) else type(obj).__name__


def _compatible(own: str, fmt: str) -> bool:
    """A record that reads as another format that `fmt` can still normalise (a sharegpt record with `messages`)."""
    return {own, fmt} <= {"sharegpt", "openai"}


def clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def shorten(s: Sample | None, raw: object, limit: int = SHOWN_CHARS) -> dict:
    """The last messages of a record, clipped, to show with a finding."""
    if s is None or not s.messages:
        return {"raw": clip(str(raw), limit)}
    out = {m.role: clip(m.content, limit) for m in s.messages[-3:]}
    if s.rejected:
        out["rejected"] = clip(s.rejected[-1].content, limit)
    return out


def bigram_keys(answer: str) -> np.ndarray:
    """Stable keys of the answer's word (or CJK character) bigrams, for the distinct-2 diversity measure."""
    units = script_units(answer)
    if len(units) < 2:
        return np.zeros(0, dtype=np.uint64)
    ids = np.fromiter((crc32(u.encode("utf-8", "surrogatepass")) for u in units), dtype=np.uint64, count=len(units))
    return (ids[:-1] << np.uint64(32)) | ids[1:]
