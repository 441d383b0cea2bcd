"""Record-level checks. Each returns findings as (code, severity, detail) for one normalised sample."""

from __future__ import annotations

import re

from advisor.audit.text import script_units
from advisor.data.formats import Sample

Hit = tuple[str, str, str]  # code, severity, detail

PLACEHOLDER = re.compile(
    r"\{\{\s*[\w.\- ]{1,40}\s*\}\}|<no ?input>|<no ?output>|\[(?:insert|your|placeholder|name of|enter)\b[^\]]{0,60}\]|"
    r"\blorem ipsum\b|<placeholder>|\bxxx+ placeholder\b", re.IGNORECASE)
TEMPLATE_LEAK = re.compile(
    r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|user|assistant|system|end)\|>|"
    r"\[/?INST\]|<</?SYS>>|</s>|<s>\s*\[|^\s*#{2,3}\s*(?:Instruction|Response|Input)\s*:|^\s*(?:Human|Assistant|USER|ASSISTANT):\s",
    re.MULTILINE)
REFUSAL = re.compile(
    r"\bas an ai(?: language)? model\b|\bas a(?:n)? (?:large )?language model\b|\bas an ai assistant, i (?:cannot|can't|don't)|"
    r"\bi(?:'m| am) (?:sorry|afraid),? but (?:as an ai|i (?:cannot|can't|am unable|am not able))|"
    r"\bi cannot (?:fulfill|comply with|assist with) (?:this|that|your)|\bi don't have personal (?:opinions|feelings|beliefs|experiences)|"
    r"作为一个?(?:人工智能|ai|AI)(?:语言)?模型|作为(?:一个)?(?:AI|ai|人工智能)助手，?我(?:无法|不能)", re.IGNORECASE)
PLACEHOLDER_HINTS = ("{{", "<no", "[", "lorem", "<placeholder", "placeholder")
TEMPLATE_HINTS = ("<|", "[INST", "[/INST", "<<SYS", "<</SYS", "</s>", "<s>", "###", "Human:", "Assistant:", "USER:",
                  "ASSISTANT:")
REFUSAL_HINTS = ("as an ai", "language model", "sorry", "cannot", "personal", "作为", "afraid", "as an ai assistant")
CHAR_RUN = re.compile(r"([^\s\-=_*#.~`|+<>\d])\1{29,}")
TRANSLATE = re.compile(r"translat|翻译|翻譯|traduc|übersetz|翻訳|번역", re.IGNORECASE)
LANGUAGE_NAMES = {
    "en": r"english|英文|英语", "es": r"spanish|español", "fr": r"french|français|法语", "de": r"german|deutsch|德语",
    "pt": r"portuguese|葡萄牙", "it": r"italian|意大利", "zh": r"chinese|mandarin|中文|汉语|普通话",
    "ja": r"japanese|日语|日本語", "ko": r"korean|韩语", "ru": r"russian|俄语", "ar": r"arabic", "hi": r"hindi",
}

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?![\w-]*example)(?!(?:yourdomain|domain|company|test|sample|email|mail|acme)\.)"
                   r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SECRET = re.compile(
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36}\b|"
    r"\bxox[abpr]-[A-Za-z0-9-]{10,}|\bAIza[0-9A-Za-z_-]{35}\b|\bhf_[A-Za-z0-9]{30,}\b|"
    r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----|"
    r"\b(?:api[_-]?key|secret|access[_-]?token|password)\s*[:=]\s*['\"]?[A-Za-z0-9_\-/+]{16,}", re.IGNORECASE)
SECRET_HINTS = ("sk-", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "aiza", "hf_", "eyj", "private key",
                "api", "secret", "token", "password")  # checked against the lower-cased text
DIGIT_SPAN = re.compile(r"[+(]?\d[\d ().-]{7,22}[\dXx]")
NUMBERS = re.compile(
    r"(?P<card>^(?:\d[ -]?){12,18}\d$)"
    r"|(?P<cnid>^\d{17}[\dXx]$)"
    r"|(?P<ssn>^(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$)"
    r"|(?P<phone>^(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}$|"
    r"^\+\d{1,3}[\s-]\d{2,4}[\s-]\d{3,4}[\s-]?\d{3,4}$|^1[3-9]\d{9}$)")
PII_NAMES = {"email": "email address", "apikey": "API key or secret", "card": "payment card number",
             "cnid": "national ID number", "ssn": "US social security number", "phone": "phone number"}
_CNID_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def cn_id_valid(s: str) -> bool:
    check = "10X98765432"[sum(int(c) * w for c, w in zip(s[:17], _CNID_W, strict=True)) % 11]
    return s[17].upper() == check


def pii_kinds(text: str, low: str | None = None) -> list[str]:
    """Kinds of personal data or secrets in `text`. Cheap substring guards first: most text has none."""
    found: list[str] = []
    low = text.lower() if low is None else low
    if "@" in text and EMAIL.search(text):
        found.append("email")
    if any(h in low for h in SECRET_HINTS) and SECRET.search(text):
        found.append("apikey")
    for m in DIGIT_SPAN.finditer(text):
        span = m.group().strip(" .-()")
        if m.group().startswith(("(", "+")):
            span = m.group().rstrip(" .-")
        hit = NUMBERS.match(span)
        if not hit:
            continue
        kind = hit.lastgroup
        if kind == "card":
            digits = re.sub(r"\D", "", span)
            if not (13 <= len(digits) <= 19 and digits[0] in "3456" and luhn(digits) and len(set(digits)) > 1):
                continue
        elif kind == "cnid" and not cn_id_valid(span):
            continue
        if kind and kind not in found:
            found.append(kind)
    return found


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
    return hits


def content_checks(s: Sample, fmt: str, lang_prompt: str, lang_answer: str) -> list[Hit]:
    hits: list[Hit] = []
    answer = s.answer
    if fmt != "text" and s.last_assistant() is not None and not answer.strip():
        hits.append(("empty_output", "error", "the answer is empty or whitespace"))
    all_text = "\n".join(m.content for m in s.messages)
    low = all_text.lower()
    ph = PLACEHOLDER.search(all_text) if any(h in low for h in PLACEHOLDER_HINTS) else None
    if ph:
        hits.append(("placeholder", "error", f"unfilled placeholder `{ph.group()[:40]}`"))
    leak = TEMPLATE_LEAK.search(all_text) if any(h in all_text for h in TEMPLATE_HINTS) else None
    if leak:
        hits.append(("template_leak", "warning", f"chat/instruction markup inside content: `{leak.group().strip()[:30]}`"))
    kinds = pii_kinds(all_text, low)
    if kinds:
        hits.append(("pii", "warning", "possible " + ", ".join(PII_NAMES[k] for k in kinds)))
    low_answer = answer.lower()
    if any(h in low_answer for h in REFUSAL_HINTS) and REFUSAL.search(answer):
        hits.append(("refusal_boilerplate", "warning", "refusal / 'as an AI language model' boilerplate in the answer"))
    rep = repetition(answer)
    if rep:
        hits.append(("degenerate_repetition", "warning", rep))
    if fmt != "text":
        mismatch = language_mismatch(s, lang_prompt, lang_answer)
        if mismatch:
            hits.append(("language_mismatch", "warning", mismatch))
    return hits


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


def language_mismatch(s: Sample, lp: str, la: str) -> str | None:
    """Prompt and answer in different languages, unless the task is translation or tool use."""
    if "und" in (lp, la) or lp == la or s.has_tools or TRANSLATE.search(s.prompt[:2000]):
        return None
    if la in LANGUAGE_NAMES and re.search(LANGUAGE_NAMES[la], s.prompt[:2000], re.IGNORECASE):
        return None  # the prompt asks for that language
    return f"prompt is `{lp}`, answer is `{la}`"
