"""Personal data and secrets in text. Each kind has a pattern, a validation (checksum, structure, context) and a
confidence; a hit is reported when its confidence reaches REPORT_CONFIDENCE. Look-alikes that are not personal
data are rejected on purpose: arithmetic and number tables, documentation values (example.com, 2001:db8::,
555-01xx, well-known test card numbers), placeholder secrets (YOUR_API_KEY_HERE) and SSH remotes (git@github.com)."""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

from advisor.audit.regex_guard import guarded

REPORT_CONFIDENCE = 0.5
PII_NAMES = {"email": "email address", "apikey": "API key or secret", "card": "payment card number",
             "iban": "IBAN bank account", "cnid": "national ID number", "ssn": "US social security number",
             "phone": "phone number", "ip": "IP address"}


@dataclass(frozen=True, slots=True)
class PiiHit:
    kind: str
    value: str
    confidence: float
    span: tuple[int, int] = (0, 0)


# ---- e-mail ----------------------------------------------------------------------------------------------------
EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")
# Documentation domains: the RFC 2606 / 6761 reserved top-level names (.example, .test, .invalid, .localhost) and
# second-level `example` under any registry's suffix (example.com, example.co.uk, example.com.au, example.jp and
# the registries' own reserved example names), the word "example" in the languages the audit reads (beispiel.de,
# exemple.fr, ejemplo.es, esempio.it, voorbeeld.nl, exemplo.com.br, przyklad.pl, ornek.com.tr, contoh.co.id,
# primer.ru), and the stock placeholders of tutorials. Whole domains, not first labels: mail.example.co.uk is one,
# example-bank.com.evil.io is not.
_EXAMPLE_WORDS = r"example|examples|beispiel|exemple|ejemplo|esempio|voorbeeld|exemplo|przyklad|ornek|contoh|primer|eksempel|exempel|esimerkki"
_SUFFIX = r"(?:\.(?:co|com|net|org|ac|gov|edu|ne|or|go|gob|gouv|nom|biz|info))?\.[a-z]{2,}"
PLACEHOLDER_DOMAINS = re.compile(
    r"^(?:[\w-]+\.)*(?:example|test|invalid|localhost|local)$|"
    rf"^(?:[\w-]+\.)*(?:{_EXAMPLE_WORDS})(?:-?[a-z]+)?{_SUFFIX}$|"
    r"^(?:your-?domain|your-?company|your-?site|your-?email|my-?domain|my-?company|domain|company|email|"
    rf"sample|somewhere|website|foo|bar|acme){_SUFFIX}$", re.IGNORECASE)
PLACEHOLDER_LOCAL = re.compile(r"^(?:your[._-]?(?:name|email|user(?:name)?)?|user(?:name)?|name|someone|somebody|"
                               r"email|me|firstname\.lastname|first\.last|xxx+|abc)$", re.IGNORECASE)
SSH_REMOTES = re.compile(r"^(?:git|hg|svn|ubuntu|ec2-user|root|admin|pi)$", re.IGNORECASE)  # git@github.com:...


def _emails(text: str) -> list[PiiHit]:
    out = []
    for m in EMAIL.finditer(text):
        local, domain = m.group(1), m.group(2)
        if PLACEHOLDER_DOMAINS.search(domain) or PLACEHOLDER_LOCAL.match(local):
            continue
        if SSH_REMOTES.match(local) and (text[m.end():m.end() + 1] == ":" or "." not in local):
            continue  # git@github.com:org/repo.git, root@server
        if domain.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")):
            continue  # retina image names: icon@2x.png
        out.append(PiiHit("email", m.group(), 0.9))
    return out


# ---- secrets ---------------------------------------------------------------------------------------------------
PROVIDER_KEYS = re.compile(
    r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}|\b(?:sk|rk|pk)_live_[A-Za-z0-9]{16,}|\bAKIA[0-9A-Z]{16}\b|"
    r"\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{40,}|\bxox[abpr]-[A-Za-z0-9-]{10,}|"
    r"\bAIza[0-9A-Za-z_-]{35}\b|\bhf_[A-Za-z0-9]{30,}\b|\bglpat-[A-Za-z0-9_-]{20}\b|"
    r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}|"
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY-----")
ASSIGNED_SECRET = guarded(
    r"\b(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password|passwd|client[_-]?secret)"
    r"\s*[:=]\s*['\"]?([A-Za-z0-9_\-/+.]{12,})", re.IGNORECASE)
FAKE_SECRET = re.compile(r"your|here|example|sample|dummy|placeholder|change.?me|redacted|secret|token|xxxx|\*\*\*|"
                         r"test_?key|my_?key|api_?key|password|insert|replace|<|\.\.\.|abc123|123456|0000|1234",
                         re.IGNORECASE)
# Gates: every provider key above is a run of 15+ key characters (or a PEM header); an assigned secret follows
# `:` or `=` within a few characters of its keyword. Prose rarely has either, so most texts skip the patterns.
# On the UTF-8 bytes: key characters (ASCII letters, digits, `_`, `-`) → "k", the rest → " ". Every provider key
# above is a run of 15+ key characters.
_KEY_SHAPE = bytes(107 if (chr(c).isascii() and chr(c).isalnum()) or c in b"_-" else 32 for c in range(256))
_KEY_RUN = b"k" * 15
_DIGIT_BYTES = re.compile(rb"\d")
ASSIGN_OP = re.compile(r"[:=]")
ASSIGNED_HINTS = ("key", "secret", "token", "passw")


def _entropy(s: str) -> float:
    counts = {c: s.count(c) for c in set(s)}
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def _looks_random(value: str) -> bool:
    """A real key: letters and digits mixed, high character entropy, no placeholder words."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha and _entropy(value) >= 3.5 and not FAKE_SECRET.search(value)


def _secrets(text: str, low: str, raw: bytes) -> list[PiiHit]:
    out = []
    if "-----BEGIN" in text or _random_looking_run(raw):
        for m in PROVIDER_KEYS.finditer(text):
            value = m.group()
            if value.startswith("-----BEGIN") or _looks_random(value.split("-", 1)[-1].split("_", 2)[-1]):
                out.append(PiiHit("apikey", value, 0.95))
    if _hint_in(low, 0, len(low)):
        out += _assigned_secrets(text, low)
    return out


def _random_looking_run(raw: bytes) -> bool:
    """A run of 15+ key characters with a digit in it (long words and identifiers are runs too, without digits);
    `raw`: the text's UTF-8 bytes."""
    shape = raw.translate(_KEY_SHAPE)
    at = shape.find(_KEY_RUN)
    while at >= 0:
        end = shape.find(b" ", at)
        end = len(shape) if end < 0 else end
        if _DIGIT_BYTES.search(raw, at, end):
            return True
        at = shape.find(_KEY_RUN, end)
    return False


def _hint_in(low: str, start: int, end: int) -> bool:
    """A keyword of ASSIGNED_HINTS in `low[start:end]`, searched in place (no slice copied per `:` or `=`)."""
    for hint in ASSIGNED_HINTS:  # noqa: SIM110 - a plain loop: any() over a generator costs more
        if low.find(hint, start, end) >= 0:
            return True
    return False


def _assigned_secrets(text: str, low: str) -> list[PiiHit]:
    """`password = "…"`-style secrets, searched only around each `:` or `=` that follows a keyword."""
    out, end = [], 0
    for op in ASSIGN_OP.finditer(text):
        start = max(end, op.start() - 40)
        if not _hint_in(low, start, op.start()):
            continue
        m = ASSIGNED_SECRET.search(text, start, op.end() + 200)
        if m and m.start() <= op.start() and _looks_random(m.group(1)):
            out.append(PiiHit("apikey", m.group(), 0.7))
            end = m.end()
    return out


# ---- numbers: cards, IBAN, national IDs, SSN, phones -----------------------------------------------------------
# The number patterns below consume their first character before they look behind it (`\d(?<![…]\d)` is
# `(?<![…])\d`): a pattern that starts with a character set lets the regex engine skip to the next candidate
# character in a tight loop, one that starts with a lookbehind or a repeat is tried in full at every character
# (3-4x slower on the records with long digit runs; tests/test_audit_speed.py checks the matches against the
# patterns written lookbehind first).
CARD = re.compile(r"\d(?<![\d.,/:+=*×x-]\d)(?:\d{3}([ -]?)\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?|\d{3}([ -]?)\d{6}\2\d{5})"
                  r"(?!\d|[.,/:×x*]\d|\s*[-+*/=×÷]\s*\d)")
TEST_CARDS = frozenset({
    "4111111111111111", "4242424242424242", "4012888888881881", "4222222222222", "4000056655665556",
    "5555555555554444", "5105105105105100", "5200828282828210", "2223003122003222", "378282246310005",
    "371449635398431", "378734493671000", "6011111111111117", "6011000990139424", "3056930009020004",
    "30569309025904", "38520000023237", "3566002020360505", "6200000000000005", "4000000000000002",
    "4000000000000077", "4000000000000093", "5454545454545454", "4444333322221111", "4917610000000000"})
IBAN = re.compile(r"([A-Z](?<=\b[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)\b")
IBAN_LENGTHS = {"AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
                "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
                "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
                "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "AE": 23, "SA": 24, "IL": 23, "BR": 29,
                "QA": 29, "KW": 30, "JO": 30, "EG": 29, "UA": 29, "MU": 30, "PK": 24, "RS": 22, "ME": 22, "MK": 19}
EXAMPLE_IBANS = frozenset({"GB82WEST12345698765432", "DE89370400440532013000", "GB29NWBK60161331926819",
                           "FR1420041010050500013M02606", "NL91ABNA0417164300"})
CNID = re.compile(r"([1-9](?<!\d[1-9])\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx])(?!\d)")
_CNID_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
SSN = re.compile(r"(\d(?<![\d-]\d)\d\d)(?<!000)(?<!666)(?<!9\d\d)-(?!00)(\d{2})-(?!0000)(\d{4})(?![\d-])")
SSN_CONTEXT = re.compile(r"\bssn\b|social security|\bsocial\b|社会安全|社保号", re.IGNORECASE)
PHONE = re.compile(  # each number starts with `+`, `(` or a digit: consumed first, then looked at behind
    r"[+(\d](?<![\w+.-][+(\d])(?:"
    r"(?<=\+)\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"  # E.164 with separators
    r"|(?<=\()\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (415) 555-0134
    r"|(?<=\d)(?:\d{2}[.-]\d{3}[.-]\d{4}"  # 415-555-0134
    r"|(?<=0)\d{1,4}[\s-]\d{3,4}[\s-]?\d{3,4}"  # national trunk prefix: 020 7946 0958, 030 1234567
    r"|(?<=0)[1-9](?:[\s.]\d{2}){4}"  # French 06 12 34 56 78
    r"|(?<=1)[3-9]\d{9})"  # Chinese mobile
    r")(?![\w.-]*\d)")
PHONE_CONTEXT = re.compile(r"phone|call|tel\b|mobile|cell|whatsapp|fax|contact|ring|电话|手机|致电|联系|"
                           r"teléfono|llam|téléphone|appel|telefon|anruf|telefone|ligue|電話|전화|телефон|звон",
                           re.IGNORECASE)
_NON_DIGIT = re.compile(r"\D")
ARITHMETIC = re.compile(r"[=+*/×÷^]|\d\s*-\s*\d+\s*=")


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


def iban_valid(value: str) -> bool:
    s = value.replace(" ", "")
    if IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def cn_id_valid(s: str) -> bool:
    check = "10X98765432"[sum(int(c) * w for c, w in zip(s[:17], _CNID_W, strict=True)) % 11]
    return s[17].upper() == check


def _in_number_table(text: str, start: int, end: int) -> bool:
    """The match sits in a line that is mostly other numbers (a table row, measurements, a sequence)."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    tokens = [t.strip(",;|()[]") for t in (text[line_start:start] + " " + text[end:line_end]).split()]
    tokens = [t for t in tokens if t]
    numeric = sum(1 for t in tokens if t.replace(".", "").replace("-", "").replace(":", "").isdigit())
    return len(tokens) >= 3 and numeric >= 0.6 * len(tokens)


# A calculation: two numbers joined by an operator (a sign or a word in the languages the audit reads)
CALCULATION = re.compile(r"(\d(?<![\w.]\d)\d{0,29})\s*(?:[-+*/×÷x]|\b(?:plus|minus|times|multiplied by|divided by|"
                         r"más|menos|moins|fois|vezes|più|meno)\b|加上?|减去?|乘以?|除以)\s*"
                         r"(\d{1,30})(?![\w.])", re.IGNORECASE)


def _calculation_numbers(text: str) -> set[str]:
    """Every number that takes part in a calculation written in the text (the operands of `A + B`, `A x B`, `A plus
    B`, ...), and the sum, difference, product and quotient of each: a record whose answer is 472547338 + 960397912423686
    = 960398384971024 holds no card number, whatever the Luhn check says of the result."""
    out: set[str] = set()
    for m in CALCULATION.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        out.update((m.group(1), m.group(2), str(a + b), str(abs(a - b)), str(a * b)))
        if b and a % b == 0:
            out.add(str(a // b))
    return out


def _numbers(text: str) -> list[PiiHit]:
    ibans, cards = list(IBAN.finditer(text)), list(CARD.finditer(text))  # the phones need both again
    out = _ibans(ibans)
    taken = [h.span for h in out]
    calculated = _calculation_numbers(text)
    for m in cards:
        if any(a < m.end() and m.start() < b for a, b in taken):
            continue
        digits = _NON_DIGIT.sub("", m.group())
        if digits in calculated:
            continue
        if (13 <= len(digits) <= 19 and digits[0] in "23456" and luhn(digits) and len(set(digits)) > 2
                and digits not in TEST_CARDS and not _in_number_table(text, m.start(), m.end())):
            out.append(PiiHit("card", m.group(), 0.95))
    for m in CNID.finditer(text):
        if cn_id_valid(m.group(1)) and m.group(1) not in calculated:
            out.append(PiiHit("cnid", m.group(1), 0.9))
    for m in SSN.finditer(text):
        context = text[max(0, m.start() - 40):m.start()]
        out.append(PiiHit("ssn", m.group(), 0.9 if SSN_CONTEXT.search(context) else 0.5))
    blocked = [m.span() for m in ibans + cards]  # digit groups of account numbers
    out += [h for h in _phones(text, blocked) if _NON_DIGIT.sub("", h.value) not in calculated]
    return out


NANP_SHAPE = re.compile(r"^(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}$")


def _fictional_nanp(digits: str) -> bool:
    """A North American number that cannot be real: area code or exchange starting with 0/1, or the 555 exchange
    (555-0100..0199 is reserved for fiction; the rest of 555 is the film and textbook convention)."""
    d = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    if len(d) != 10:
        return False
    return d[0] in "01" or d[3] in "01" or d[3:6] == "555" or d[:3] == "555"


def _ibans(matches: list[re.Match]) -> list[PiiHit]:
    out = []
    for m in matches:
        compact = m.group(1).replace(" ", "")
        if iban_valid(compact) and compact not in EXAMPLE_IBANS:
            out.append(PiiHit("iban", m.group(1), 0.95, m.span(1)))
    return out


def _phones(text: str, blocked: list[tuple[int, int]]) -> list[PiiHit]:
    """Phone numbers outside the `blocked` spans (IBANs and card numbers)."""
    out = []
    for m in PHONE.finditer(text):
        value = m.group()
        if any(a < m.end() and m.start() < b for a, b in blocked):
            continue
        digits = _NON_DIGIT.sub("", value)
        if not 8 <= len(digits) <= 15 or len(set(digits)) <= 2:
            continue
        around = text[max(0, m.start() - 3):m.start()] + text[m.end():m.end() + 3]
        if _in_number_table(text, m.start(), m.end()) or ARITHMETIC.search(around):
            continue
        if NANP_SHAPE.match(value) and _fictional_nanp(digits):
            continue
        context = text[max(0, m.start() - 50):m.start()]
        formatted = value.startswith("+") or value.startswith("(") or re.search(r"\d[\s.-]\d", value)
        confidence = 0.85 if PHONE_CONTEXT.search(context) else (0.6 if formatted else 0.4)
        out.append(PiiHit("phone", value, confidence))
    return out


# ---- IP addresses ----------------------------------------------------------------------------------------------
IPV4 = guarded(r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w.]*\d)")  # ASCII digits: the guard is [0-9]
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|[0-9A-Fa-f]{1,4})(?:[0-9A-Fa-f:]*)(?![\w:])")
VERSION_CONTEXT = re.compile(r"(?:version|ver\.?|v|release|build|版本)\s*$", re.IGNORECASE)
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def _public_ip(value: str) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    if any(ip in net for net in DOC_NETS if net.version == ip.version):
        return False
    return ip.is_global and not ip.is_multicast


def _ips(text: str) -> list[PiiHit]:
    out = []
    if text.count(".") >= 3 and IPV4_GATE.search(text):
        for m in IPV4.finditer(text):
            if VERSION_CONTEXT.search(text[max(0, m.start() - 12):m.start()]):
                continue
            if _public_ip(m.group()):
                out.append(PiiHit("ip", m.group(), 0.6))
    if text.count(":") >= 3 and IPV6_GATE.search(text):
        for m in IPV6.finditer(text):
            value = m.group()
            if value.count(":") >= 3 and _public_ip(value):
                out.append(PiiHit("ip", value, 0.6))
    return out


# Every card, IBAN, national ID, SSN and phone number the patterns above accept holds 8 digits or more, each
# separated from the next by at most two separator characters (spaces, dashes, dots, brackets): a text without
# such a run has none of them, and most text has none (years, prices and counts are shorter).
# (ASCII digits: the patterns' \d matches other scripts' digits too, but no validation accepts them.) Tested on
# the UTF-8 bytes with digits → "d" and separators → "s": a literal-first pattern, 10x faster than on the text.
_DIGIT_SHAPE = bytes(100 if 48 <= c <= 57 else 115 if c in b" \t\n\r\x0b\x0c().-/\xc2\xa0" else 120 for c in range(256))
DIGIT_RUN = re.compile(rb"d(?:s{0,2}d){7}")
IPV4_GATE = re.compile(r"\.[0-9]{1,3}\.[0-9]")  # a dot first: the engine skips to each `.` (10x faster than a digit)
IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")


def find_pii(text: str, low: str | None = None) -> list[PiiHit]:
    """Every personal-data or secret hit in `text` at or above REPORT_CONFIDENCE."""
    low = text.lower() if low is None else low
    raw = text.encode("utf-8", "surrogatepass")  # for both byte-level gates
    hits: list[PiiHit] = []
    if "@" in text:
        hits += _emails(text)
    hits += _secrets(text, low, raw)
    if DIGIT_RUN.search(raw.translate(_DIGIT_SHAPE)):
        hits += _numbers(text)
    hits += _ips(text)
    return [h for h in hits if h.confidence >= REPORT_CONFIDENCE]


def pii_kinds(text: str, low: str | None = None) -> list[str]:
    """Kinds of personal data or secrets in `text`, in order of first appearance."""
    return list(dict.fromkeys(h.kind for h in find_pii(text, low)))
