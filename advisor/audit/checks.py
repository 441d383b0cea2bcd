"""Record-level checks: one function per finding code, registered with `@record_check(code)` (or `@pair_check`
for preference pairs). A check reads a `RecordView` and yields `(variant, detail)` for each problem it sees; the
severity of a code and of its variants is the catalogue's (rules/audit_findings.yaml), never the code's. Adding a
finding is one catalogue entry and one check function (here, or in dataset_checks.py for dataset-level ones)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from advisor.audit.catalog import pattern_finditer, pattern_search
from advisor.audit.language import UND, detect, same_language
from advisor.audit.language_requests import asks_for_language
from advisor.audit.pii import PII_NAMES, pii_kinds
from advisor.audit.text import normalise, script_units
from core.data.formats import Message, Sample

Hit = tuple[str | None, str]  # (variant of the finding or None, detail)
RecordCheck = Callable[["RecordView"], Iterable[Hit]]
PairCheck = Callable[[Sample, Sample], Iterable[Hit]]
RECORD_CHECKS: dict[str, RecordCheck] = {}
PAIR_CHECKS: dict[str, PairCheck] = {}
CHOSEN_SIDE_ONLY: set[str] = set()  # codes not checked on the rejected side of a pair
READER_CODES = ("invalid_json", "schema", "unknown_role")  # found while reading and normalising (core/data)

# Special tokens of chat templates in general, not a list of known ones: every `<|name|>` token (ChatML, Llama 3,
# Phi, Qwen, GPT-OSS, Cohere, Granite, ...), the half-bar `<|name>` / `<name|>` pairs (Gemma 4), DeepSeek's
# full-width `<｜name｜>`, Gemma's turn markers, Llama 2 and Mistral markup, Alpaca / Vicuna role headers at a
# line start, and Anthropic's `Human:` / `Assistant:` inside a line (after a sentence or a run of spaces: "…the
# question.  Human: why…"). Checked against every template in trl.
TEMPLATE_LEAK = re.compile(
    r"<\|[A-Za-z_][\w.-]{0,40}\|?>|<[A-Za-z_][\w.-]{0,40}\|>|<｜[^｜\n]{1,40}｜>|<(?:start|end)_of_turn>|"
    r"\[/?INST\]|<</?SYS>>|</s>|<s>\s*\[|^\s*#{2,3}\s*(?:Instruction|Response|Input)\s*:|^\s*(?:Human|Assistant|USER|ASSISTANT):\s|"
    r"(?:(?<=[.!?。！？\"”'])[ \t]{1,4}|[ \t]{2,})(?:Human|Assistant):[ \t]",  # Anthropic's turn markers inside a line
    re.MULTILINE)
# What a TEMPLATE_LEAK match contains, by the character it needs: one scan for the character, then its hints
TEMPLATE_HINTS = {"<": ("<|", "|>", "<｜", "_of_turn>", "<<SYS", "<</SYS", "</s>", "<s>"), "[": ("[INST", "[/INST"),
                  "#": ("##",), ":": ("Human:", "Assistant:", "USER:", "ASSISTANT:")}
PLACEHOLDER_HINTS = ("{{", "<", "[", "【", "〔", "［", "lorem", "某某", "xx")
CODE_SPANS = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]{1,300}`|\{%.*?%\}", re.DOTALL)
UNFILLED_IN_CODE = re.compile(r"`\s*(<no ?(?:input|output)>)\s*`", re.IGNORECASE)  # an inline span holding only it
CHAR_RUN = re.compile(r"([^\s\-=_*#.~`|+<>\d])\1{29,}")
_RUN_GATE = re.compile(r"([^\s\-=_*#.~`|+<>\d])\1{4}")
LOOPING_DISTINCT = 0.3  # an answer with fewer distinct n-grams than this share loops (degenerate_repetition)
MAX_LANGUAGE_PAIRS = 4  # answers per record compared with the user turn they answer (the last ones)


def record_check(code: str, rejected_side: bool = True) -> Callable[[RecordCheck], RecordCheck]:
    def register(fn: RecordCheck) -> RecordCheck:
        RECORD_CHECKS[code] = fn
        if not rejected_side:
            CHOSEN_SIDE_ONLY.add(code)
        return fn
    return register


def pair_check(code: str) -> Callable[[PairCheck], PairCheck]:
    def register(fn: PairCheck) -> PairCheck:
        PAIR_CHECKS[code] = fn
        return fn
    return register


@dataclass
class TokenCounts:
    prompt: int
    answer: int
    total: int
    before_answer: int  # tokens before the first trained answer (the total when there is none, or it fits)


@dataclass
class RecordView:
    """One side of a record as the checks read it (text joined once, lower-cased once). Plain attributes set once,
    not cached properties: every record reads them, and a cached property takes a lock on each first read."""

    sample: Sample
    fmt: str
    side: str = ""  # "" or "rejected side: ", prefixed to every detail
    tokens: TokenCounts | None = None
    max_seq_len: int = 2048
    roles: list[str] = field(init=False)
    contents: list[str] = field(init=False)
    all_text: str = field(init=False)
    low: str = field(init=False)
    low_by_nul: str | None = field(init=False)  # the contents joined by NUL, lower-cased (None: a content has NUL)
    answers: list[str] = field(init=False)  # the trained answers (all text for plain-text records)

    def __post_init__(self) -> None:
        msgs = self.sample.messages
        self.roles = [m.role for m in msgs]
        self.contents = [m.content for m in msgs]
        self.all_text = "\n".join(self.contents)
        self.low_by_nul, self.low = _lowered(self.contents, self.all_text)
        self.answers = [self.all_text] if self.fmt == "text" else trained_answers(msgs)

    @property
    def chat(self) -> bool:
        return self.fmt != "text"


Found = tuple[str, str | None, str]  # code, variant, detail


def run_record_checks(view: RecordView, checks: list[tuple[str, RecordCheck]]) -> list[Found]:
    """(code, variant, detail) of the given record checks (`enabled_checks`) on one side of a record."""
    found = []
    for code, check in checks:
        for variant, detail in check(view):
            found.append((code, variant, view.side + detail))
    return found


def enabled_checks(enabled: Callable[[str], bool], rejected_side: bool = False) -> list[tuple[str, RecordCheck]]:
    """The record checks `enabled` selects; on the rejected side of a pair, those that apply there. Worked out once
    per audit (RecordAuditor), not once per record."""
    return [(code, check) for code, check in RECORD_CHECKS.items()
            if enabled(code) and not (rejected_side and code in CHOSEN_SIDE_ONLY)]


def run_pair_checks(chosen: Sample, rejected: Sample, enabled: Callable[[str], bool]) -> Iterator[Found]:
    for code, check in PAIR_CHECKS.items():
        if enabled(code):
            for variant, detail in check(chosen, rejected):
                yield code, variant, detail


# ---- roles and turns ---------------------------------------------------------------------------------------------

@record_check("no_assistant", rejected_side=False)  # an empty rejected side is pair_empty_side
def no_assistant(r: RecordView) -> Iterator[Hit]:
    if r.chat and "assistant" not in r.roles:
        yield None, "no assistant message: nothing to learn from this record"


@record_check("no_user")
def no_user(r: RecordView) -> Iterator[Hit]:
    if r.chat and "user" not in r.roles:
        yield None, "no user message: the model learns to answer without a question"


@record_check("role_order")
def role_order(r: RecordView) -> Iterator[Hit]:
    """System first and once; user first; user and assistant alternate; the last turn is an answer."""
    if not r.chat:
        return
    roles, s = r.roles, r.sample
    convo = [x for x in roles if x != "system"]
    if "system" in roles and roles.index("system") != 0:
        yield None, "system message is not first"
    elif roles.count("system") > 1:
        yield None, "more than one system message"
    if convo and convo[0] != "user" and "user" in convo:
        yield None, f"conversation starts with `{convo[0]}`, not `user`"
    for a, b in zip(convo, convo[1:], strict=False):
        if a == b and a in ("user", "assistant") and not s.has_tools:
            yield None, f"two `{a}` messages in a row (roles must alternate)"
            break
        if a == "tool" and b == "user":
            yield "tool_then_user", "a tool result is followed by the user, not by the assistant"
            break
    if convo and convo[-1] != "assistant" and "assistant" in convo:
        yield "last_turn_untrained", f"conversation ends with `{convo[-1]}`: the last turn is not trained"


@record_check("empty_output", rejected_side=False)  # an empty rejected side is pair_empty_side
def empty_output(r: RecordView) -> Iterator[Hit]:
    """Empty answers: any trained assistant turn, not only the last."""
    if not r.chat:
        return
    s = r.sample
    empty = [i for i, m in enumerate(s.messages)
             if m.role == "assistant" and m.trainable and not m.tool_call and not m.content.strip()]
    if empty:
        which = "the answer is" if empty == [s.last_assistant()] else \
            f"assistant turn(s) {empty} (0-based message index) are"
        yield None, f"{which} empty or whitespace"


@record_check("empty_turn")
def empty_turn(r: RecordView) -> Iterator[Hit]:
    empty = [i for i, m in enumerate(r.sample.messages) if m.role == "user" and not m.content.strip()] if r.chat else []
    if empty:
        yield None, (f"user turn(s) {empty} (0-based message index) empty: the model learns to answer a question "
                     "nobody asked")


# ---- content -----------------------------------------------------------------------------------------------------

@record_check("placeholder")
def placeholder(r: RecordView) -> Iterator[Hit]:
    found = find_placeholder(r.all_text, r.low)
    if found:
        yield None, f"unfilled placeholder `{found[:40]}`"


@record_check("template_leak")
def template_leak(r: RecordView) -> Iterator[Hit]:
    text = r.all_text
    leak = TEMPLATE_LEAK.search(text) if _template_hint(text) else None
    if leak:
        yield None, f"chat/instruction markup inside content: `{leak.group().strip()[:30]}`"


@record_check("pii")
def pii(r: RecordView) -> Iterator[Hit]:
    kinds = pii_kinds(r.all_text, r.low)
    if kinds:
        yield None, "possible " + ", ".join(PII_NAMES[k] for k in kinds)


@record_check("refusal_boilerplate", rejected_side=False)  # a refusal is what a rejected answer often is
def refusal_boilerplate(r: RecordView) -> Iterator[Hit]:
    found = next((x for x in map(refusal_in, r.answers) if x), None)
    if found:
        yield None, f"refusal / AI boilerplate in an answer: `{found}`"


@record_check("degenerate_repetition")
def degenerate_repetition(r: RecordView) -> Iterator[Hit]:
    found = repetition(r.answers[-1] if r.answers else "")
    if found:
        yield None, found


@record_check("language_mismatch")
def language_mismatch_check(r: RecordView) -> Iterator[Hit]:
    found = language_mismatch(r.sample) if r.chat else None
    if found:
        yield None, found


@record_check("too_long")
def too_long(r: RecordView) -> Iterator[Hit]:
    """Longer than the training window; `nothing_trained` when the window ends before the first trained answer."""
    t = r.tokens
    if t is None or t.total <= r.max_seq_len:
        return
    before = t.before_answer
    if r.chat and before >= r.max_seq_len:
        yield "nothing_trained", (f"{t.total} tokens; the first {before} come before any answer, so truncation at "
                                  f"{r.max_seq_len} leaves no trainable tokens")
    else:
        yield None, f"{t.total} tokens > --max-seq-len {r.max_seq_len}: truncated"


# ---- preference pairs --------------------------------------------------------------------------------------------

def _both(chosen: Sample, rejected: Sample) -> tuple[str, str] | None:
    """The two answers when neither is empty and they differ (else the pair is one of the other pair findings)."""
    a, b = chosen.answer, rejected.answer
    if not (a.strip() and b.strip()) or normalise(a) == normalise(b):
        return None
    return a, b


@pair_check("pair_empty_side")
def pair_empty_side(chosen: Sample, rejected: Sample) -> Iterator[Hit]:
    a, b = chosen.answer.strip(), rejected.answer.strip()
    if not a or not b:
        which = "both sides" if not (a or b) else ("chosen" if not a else "rejected")
        yield None, f"{which} empty: the pair teaches no preference"


@pair_check("pair_identical")
def pair_identical(chosen: Sample, rejected: Sample) -> Iterator[Hit]:
    a, b = chosen.answer, rejected.answer
    if a.strip() and b.strip() and normalise(a) == normalise(b):
        yield None, "chosen and rejected are the same text: no preference signal"


@pair_check("pair_language_mismatch")
def pair_language_mismatch(chosen: Sample, rejected: Sample) -> Iterator[Hit]:
    both = _both(chosen, rejected)
    if both is None:
        return
    la, lb = detect(both[0]), detect(both[1])
    if UND not in (la, lb) and not same_language(la, lb):
        yield None, f"chosen is `{la}`, rejected is `{lb}`: the model may learn to prefer a language, not a better answer"


# ---- what the checks share ---------------------------------------------------------------------------------------

def _lowered(contents: list[str], all_text: str) -> tuple[str | None, str]:
    """(the contents joined by NUL and lower-cased, `all_text` lower-cased) with one lower(): the first is what the
    record's comparison keys normalise (text.normalise_many), the second what the checks search. NUL and newline are
    neither cased nor case-ignorable, so they lower-case the same way (Greek final sigma included): the second is
    the first with NUL read as newline (2 µs a record of lower() saved)."""
    if len(contents) < 2 or "\x00" in all_text:
        return None, all_text.lower()
    low = "\x00".join(contents).lower()
    return low, low.replace("\x00", "\n")


def _template_hint(text: str) -> bool:
    for char, hints in TEMPLATE_HINTS.items():
        if char in text:
            for hint in hints:
                if hint in text:
                    return True
    return False


def find_placeholder(text: str, low: str | None = None) -> str | None:
    """The first unfilled placeholder outside code (template syntax inside code is code). Bracketed words that are
    a Markdown link (`[Name](url)`) or a type subscript (`List[Name]`) do not count."""
    low = text.lower() if low is None else low
    for hint in PLACEHOLDER_HINTS:  # a plain loop: any() over a generator costs twice as much for these 9 hints
        if hint in low:
            break
    else:
        return None
    if "`" in text or "~~~" in text or "{%" in text:
        unfilled = UNFILLED_IN_CODE.search(text) if "`<" in text or "` <" in text else None
        if unfilled:
            return unfilled.group(1)  # "`<noinput>`": Alpaca's unfilled input in backticks is not code
        text, low = CODE_SPANS.sub(" ", text), None
    for m in pattern_finditer("placeholder")(text, low):
        value = m.group()
        if value[0] == "[" and (text[m.end():m.end() + 1] == "(" or (m.start() and text[m.start() - 1].isascii()
                                                                             and text[m.start() - 1].isalnum())):
            continue
        return value
    return None


def refusal_in(answer: str) -> str | None:
    """Refusal boilerplate in English (it shows up in every language's data) or in the answer's own language;
    all languages when the answer's language is unclear. Boilerplate opens or closes an answer: the first 1,500
    and the last 500 characters are searched."""
    lang = detect(answer)
    langs = None if lang == UND else ("any", "en", lang)
    text = answer if len(answer) <= 2000 else answer[:1500] + "\n" + answer[-500:]
    m = pattern_search("refusal_boilerplate", langs)(text)
    return m.group()[:60] if m else None


def _five_in_a_row(text: str) -> bool:
    """Whether `text` may hold 5 equal characters in a row (False: it does not), tested in C: each character XOR the
    next, as one big integer over the encoded text, leaves a run of zero bytes where characters repeat (4 equal
    neighbours: 4 zero bytes in ASCII, 16 in UTF-32). A zero run the characters do not align with may say yes
    wrongly, never no: _RUN_GATE decides then. 2.9 -> 2.1 µs an answer (bench u20000 and ml20k), where prose has
    no such run and the regex tried its backreference at every character."""
    if text.isascii():
        raw, width = text.encode(), 1
    else:
        raw, width = text.encode("utf-32-le", "surrogatepass"), 4
    if len(raw) < 5 * width:
        return False
    xor = int.from_bytes(raw[width:], "little") ^ int.from_bytes(raw[:-width], "little")
    return bytes(4 * width) in xor.to_bytes(len(raw) - width, "little")


def repetition(answer: str) -> str | None:
    text = answer[:20000]
    # a run of 30 equal characters leaves 5 equal characters in a row in every 6th character (30 consecutive
    # positions hold 5 multiples of 6): a 6x shorter test first, on short answers too (a text under 30 characters
    # has no run): 12.7 -> 6.8 µs an answer under 500 characters (bench u20000, most answers)
    if len(text) >= 30 and _five_in_a_row(sampled := text[::6]) and _RUN_GATE.search(sampled):
        run = CHAR_RUN.search(text)
        if run:
            return f"the character `{run.group(1)}` repeated {len(run.group())} times"
    units = script_units(text)
    if len(units) < 40:
        return None
    n = 4 if not answer[:200].isascii() else 3
    count = len(units) - n + 1
    # n-grams that start with different units differ: at least as many distinct n-grams as distinct units among
    # the first `count`, so text with that many distinct words is not looping (exact, and a cheaper set)
    if len(set(units[:count])) >= LOOPING_DISTINCT * count:
        return None
    distinct = len(set(zip(*(units[i:] for i in range(n)), strict=False)))
    ratio = distinct / count
    if ratio < LOOPING_DISTINCT:
        return f"only {ratio:.0%} of the answer's {n}-grams are distinct (looping text)"
    return None


def answer_pairs(s: Sample) -> list[tuple[int, Message, Message]]:
    """(index, user turn, the assistant answer to it) for trained answers, the last MAX_LANGUAGE_PAIRS."""
    pairs, user = [], None
    for i, m in enumerate(s.messages):
        if m.role == "user":
            user = m
        elif m.role == "assistant" and user is not None and m.trainable and not m.tool_call and m.content.strip():
            pairs.append((i, user, m))
    return pairs[-MAX_LANGUAGE_PAIRS:]


def language_mismatch(s: Sample) -> str | None:
    """An answer in another language than the user turn it answers, unless a translation or that language was
    asked for (in the turn or the system prompt), or the record uses tools."""
    if s.has_tools:
        return None
    system = next((m.content for m in s.messages if m.role == "system"), "")
    for i, user, answer in answer_pairs(s):
        la = detect(answer.content)  # known already (the refusal check asked): the user turn only when it decides
        if la == UND:
            continue
        lu = detect(user.content)
        if lu == UND or same_language(lu, la):
            continue
        if asks_for_language(user.content[:3000] + "\n" + system[:3000], la):
            continue
        return f"message {i}: the user writes `{lu}`, the answer is `{la}`"
    return None


def trained_answers(messages: list[Message]) -> list[str]:
    """The texts of the trained assistant answers (not tool calls): what the answer checks read."""
    return [m.content for m in messages if m.role == "assistant" and m.trainable and not m.tool_call]


def language_texts(s: Sample) -> list[str]:
    """The texts whose language the checks ask for: the trained answers (refusal check; both sides of a pair), the
    instruction (its task intent is read with its language's cues) and, without tools, the user turns the mismatch
    check compares the answers with. Any other text `detect` is asked about is worked out then."""
    texts = trained_answers(s.messages) + [s.instruction]
    if not s.has_tools:
        texts += [user.content for _, user, _ in answer_pairs(s)]
    if s.rejected:
        texts += [m.content for m in s.rejected if m.role == "assistant"]
    return texts


def answer_language(s: Sample) -> str:
    """The language of the last answer (else of the first user turn), for the language statistics."""
    la = detect(s.answer) if s.answer else UND
    return la if la != UND else detect(s.instruction)
