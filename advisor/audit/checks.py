"""Record-level checks. Each returns findings as (code, severity, detail) for one normalised sample."""

from __future__ import annotations

import re

from advisor.audit.catalog import patterns
from advisor.audit.language import UND, detect
from advisor.audit.pii import PII_NAMES, pii_kinds
from advisor.audit.text import script_units
from advisor.data.formats import Message, Sample

Hit = tuple[str, str, str]  # code, severity, detail

TEMPLATE_LEAK = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|user|assistant|system|end)\|>|"
    r"\[/?INST\]|<</?SYS>>|</s>|<s>\s*\[|^\s*#{2,3}\s*(?:Instruction|Response|Input)\s*:|^\s*(?:Human|Assistant|USER|ASSISTANT):\s",
    re.MULTILINE)
TEMPLATE_HINTS = ("<|", "[INST", "[/INST", "<<SYS", "<</SYS", "</s>", "<s>", "###", "Human:", "Assistant:", "USER:",
                  "ASSISTANT:")
PLACEHOLDER_HINTS = ("{{", "<", "[", "【", "〔", "［", "lorem", "某某", "xx")
CODE_SPANS = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]{1,300}`|\{%.*?%\}", re.DOTALL)
CHAR_RUN = re.compile(r"([^\s\-=_*#.~`|+<>\d])\1{29,}")
TRANSLATE = re.compile(r"translat|翻译|翻譯|译成|译为|traduc|übersetz|翻訳|번역|перев|"
                       r"\b(?:into|in|to) (?:another|a different|other|a foreign) language|另一种语言|其他语言", re.IGNORECASE)
LANGUAGE_NAMES = {
    "en": r"english|英文|英语|inglés|anglais|englisch|inglês|inglese|英語|영어|английск",
    "es": r"spanish|español|西班牙|espagnol|spanisch|espanhol|spagnolo",
    "fr": r"french|français|法语|法文|francés|französisch|francês|francese",
    "de": r"german|deutsch|德语|德文|alemán|allemand|alemão|tedesco",
    "pt": r"portuguese|português|葡萄牙|portugués|portugais|portugiesisch|portoghese",
    "it": r"italian|italiano|意大利|italien|italienisch",
    "zh": r"chinese|mandarin|中文|汉语|普通话|chino|chinois|chinesisch|chinês|cinese|簡體|简体|繁体|繁體",
    "ja": r"japanese|日语|日文|日本語|japonés|japonais|japanisch",
    "ko": r"korean|韩语|韩文|한국어|coreano|coréen|koreanisch",
    "ru": r"russian|俄语|俄文|русск|ruso|russe|russisch",
    "nl": r"dutch|nederlands|荷兰", "ar": r"arabic|阿拉伯", "hi": r"hindi|印地",
}
MAX_LANGUAGE_PAIRS = 4  # answers per record compared with the user turn they answer (the last ones)


def role_checks(s: Sample, fmt: str) -> list[Hit]:
    if fmt == "text":
        return []
    hits: list[Hit] = []
    roles = [m.role for m in s.messages]
    if "assistant" not in roles:
        hits.append(("no_assistant", "error", "no assistant message: nothing to learn from this record"))
    if "user" not in roles:
        hits.append(("no_user", "warning", "no user message: the model learns to answer without a question"))
    convo = [r for r in roles if r != "system"]
    if "system" in roles and roles.index("system") != 0:
        hits.append(("role_order", "error", "system message is not first"))
    elif roles.count("system") > 1:
        hits.append(("role_order", "error", "more than one system message"))
    if convo and convo[0] not in ("user",) and "user" in convo:
        hits.append(("role_order", "error", f"conversation starts with `{convo[0]}`, not `user`"))
    for a, b in zip(convo, convo[1:], strict=False):
        if a == b and a in ("user", "assistant") and not s.has_tools:
            hits.append(("role_order", "error", f"two `{a}` messages in a row (roles must alternate)"))
            break
        if a == "tool" and b == "user":
            hits.append(("role_order", "warning", "a tool result is followed by the user, not by the assistant"))
            break
    if convo and convo[-1] != "assistant" and "assistant" in convo:
        hits.append(("role_order", "warning", f"conversation ends with `{convo[-1]}`: the last turn is not trained"))
    return hits + empty_turns(s, fmt)


def empty_turns(s: Sample, fmt: str) -> list[Hit]:
    """Empty answers (any trained assistant turn, not only the last) and empty user turns."""
    if fmt == "text":
        return []
    hits: list[Hit] = []
    last = s.last_assistant()
    empty_answers = [i for i, m in enumerate(s.messages)
                     if m.role == "assistant" and m.trainable and not m.tool_call and not m.content.strip()]
    if empty_answers:
        which = "the answer is" if empty_answers == [last] else f"assistant turn(s) {empty_answers} (0-based message index) are"
        hits.append(("empty_output", "error", f"{which} empty or whitespace"))
    empty_users = [i for i, m in enumerate(s.messages) if m.role == "user" and not m.content.strip()]
    if empty_users:
        hits.append(("empty_turn", "warning", f"user turn(s) {empty_users} (0-based message index) empty: "
                                              "the model learns to answer a question nobody asked"))
    return hits


def content_checks(s: Sample, fmt: str, side: str = "") -> list[Hit]:
    """Placeholders, template markup, personal data, refusals, loops and language, for one side of a record."""
    hits: list[Hit] = []
    all_text = "\n".join(m.content for m in s.messages)
    low = all_text.lower()
    ph = find_placeholder(all_text, low)
    if ph:
        hits.append(("placeholder", "error", f"{side}unfilled placeholder `{ph[:40]}`"))
    leak = TEMPLATE_LEAK.search(all_text) if any(h in all_text for h in TEMPLATE_HINTS) else None
    if leak:
        hits.append(("template_leak", "warning", f"{side}chat/instruction markup inside content: `{leak.group().strip()[:30]}`"))
    kinds = pii_kinds(all_text, low)
    if kinds:
        hits.append(("pii", "warning", side + "possible " + ", ".join(PII_NAMES[k] for k in kinds)))
    answers = [m.content for m in s.messages if m.role == "assistant" and m.trainable and not m.tool_call]
    if fmt == "text":
        answers = [all_text]
    if side != "rejected side: ":  # a refusal is what a rejected answer often is: not a defect there
        refusal = next((r for r in map(refusal_in, answers) if r), None)
        if refusal:
            hits.append(("refusal_boilerplate", "warning", f"{side}refusal / AI boilerplate in an answer: `{refusal}`"))
    rep = repetition(answers[-1] if answers else "")
    if rep:
        hits.append(("degenerate_repetition", "warning", side + rep))
    if fmt != "text":
        mismatch = language_mismatch(s)
        if mismatch:
            hits.append(("language_mismatch", "warning", side + mismatch))
    return hits


def find_placeholder(text: str, low: str | None = None) -> str | None:
    """The first unfilled placeholder outside code (template syntax inside code is code). Bracketed words that are
    a Markdown link (`[Name](url)`) or a type subscript (`List[Name]`) do not count."""
    low = text.lower() if low is None else low
    if not any(h in low for h in PLACEHOLDER_HINTS):
        return None
    if "`" in text or "~~~" in text or "{%" in text:
        text = CODE_SPANS.sub(" ", text)
    for m in patterns("placeholder").finditer(text):
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
    rx = patterns("refusal_boilerplate") if lang == UND else patterns("refusal_boilerplate", ("any", "en", lang))
    text = answer if len(answer) <= 2000 else answer[:1500] + "\n" + answer[-500:]
    m = rx.search(text)
    return m.group()[:60] if m else None


def repetition(answer: str) -> str | None:
    run = CHAR_RUN.search(answer[:20000])
    if run:
        return f"the character `{run.group(1)}` repeated {len(run.group())} times"
    units = script_units(answer[:20000])
    n = 4 if answer and not answer[:200].isascii() else 3
    if len(units) < 40:
        return None
    grams = [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]
    ratio = len(set(grams)) / len(grams)
    if ratio < 0.3:
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


def asks_for_language(request: str, lang: str) -> bool:
    """The request is a translation or names the answer's language ("answer in Spanish", "用英文回答")."""
    return bool(TRANSLATE.search(request) or (lang in LANGUAGE_NAMES and re.search(LANGUAGE_NAMES[lang], request, re.I)))


def language_mismatch(s: Sample) -> str | None:
    """An answer in another language than the user turn it answers, unless a translation or that language was
    asked for (in the turn or the system prompt), or the record uses tools."""
    if s.has_tools:
        return None
    system = next((m.content for m in s.messages if m.role == "system"), "")
    for i, user, answer in answer_pairs(s):
        lu = detect(user.content)
        if lu == UND:
            continue
        la = detect(answer.content)
        if la in (UND, lu):
            continue
        if asks_for_language(user.content[:3000] + "\n" + system[:3000], la):
            continue
        return f"message {i}: the user writes `{lu}`, the answer is `{la}`"
    return None


def answer_language(s: Sample) -> str:
    """The language of the last answer (else of the first user turn), for the language statistics."""
    la = detect(s.answer) if s.answer else UND
    return la if la != UND else detect(s.instruction)
