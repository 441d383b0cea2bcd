"""Token counts for the audit: exact with a local tokenizer (`--model DIR` or `--tokenizer tokenizer.json`),
otherwise an approximation calibrated per character class against real BPE tokenizers (bench/token_calibration.py
refits it and prints the error)."""

from __future__ import annotations

from pathlib import Path

from advisor.audit.text import char_count, runs
from core.errors import UserError

# Tokens per unit of each character class, fitted by least squares (clipped at 0) on 4,120 texts drawn from the
# files in shared/data/external (English and Chinese prose, code, JSON, number tables), averaged over two real
# BPE vocabularies (Llama-2/Mistral SentencePiece 32k and Mistral Tekken 131k, from the `mistral-common` package).
# Refit with `python bench/token_calibration.py`; tests/test_audit_tokens_and_tasks.py pins the values.
PER_ASCII_WORD = 1.035  # an ASCII letter run ("hello") is about one token, long words more
PER_ASCII_LETTER = 0.011  # ... plus a little per letter
PER_DIGIT = 1.0  # SentencePiece splits every digit; Tekken/tiktoken-style vocabularies 1-3 digits a token
PER_PUNCT = 0.652  # ASCII punctuation and symbols: mostly a token each, some merge with neighbours
PER_NEWLINE = 1.793  # newlines and the indentation after them
PER_CJK = 1.038  # a Han / kana / hangul character
PER_OTHER = 0.454  # other non-ASCII characters (accented Latin, Cyrillic, emoji bytes...)
STATED_ERROR = "median |error| 6-7%, p90 17-22% per text against two real BPE vocabularies"

_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))
_DIGITS = b"0123456789"
_ASCII_PUNCT = bytes(c for c in range(33, 127) if not chr(c).isalnum())
_WORD_TABLE = bytes(97 if c in _LETTERS else 32 for c in range(256))  # letters → "a", the rest → " "
_CLASS_TABLE = bytes(100 if c in _DIGITS else 112 if c in _ASCII_PUNCT else 104 if c >= 128 else 32 for c in range(256))
_CJK = runs(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def char_classes(text: str) -> tuple[int, int, int, int, int, int, int]:
    """(ASCII words, ASCII letters, digits, punctuation, newlines, CJK, other non-ASCII) of `text`. Counted on the
    UTF-8 bytes: an ASCII byte never occurs inside a multi-byte character, so every ASCII class is exact."""
    b = text.encode("utf-8", "surrogatepass")
    n = len(b)
    shape = b.translate(_WORD_TABLE)  # a word starts where " a" is (or at 0)
    words = shape.count(b" a") + (shape[:1] == b"a")
    letters = shape.count(b"a")
    classes = b.translate(_CLASS_TABLE)  # digits → "d", ASCII punctuation → "p", non-ASCII bytes → "h"
    digits, punct = classes.count(b"d"), classes.count(b"p")
    newlines = b.count(b"\n")
    if n == len(text):
        return words, letters, digits, punct, newlines, 0, 0
    cjk = char_count(_CJK, text)
    other = len(text) - (n - classes.count(b"h")) - cjk  # non-ASCII characters that are not CJK
    return words, letters, digits, punct, newlines, cjk, other


def approx_tokens(text: str) -> int:
    if not text:
        return 0
    return max(1, round(_estimate(char_classes(text))))


def approx_tokens_of(texts: list[str]) -> int:
    """`approx_tokens` of several texts counted together: the estimate is a sum over character classes, so the
    texts are classified in one pass, joined by newlines that are taken off again (a newline is no letter, digit
    or punctuation and ends a word), and rounded once (a record is 2 passes, not one per message)."""
    texts = [t for t in texts if t]
    if len(texts) < 2:
        return approx_tokens(texts[0]) if texts else 0
    w, letters, d, p, nl, cjk, other = char_classes("\n".join(texts))
    return max(1, round(_estimate((w, letters, d, p, nl - (len(texts) - 1), cjk, other))))


def _estimate(classes: tuple[int, int, int, int, int, int, int]) -> float:
    w, letters, d, p, nl, cjk, other = classes
    return (PER_ASCII_WORD * w + PER_ASCII_LETTER * letters + PER_DIGIT * d + PER_PUNCT * p + PER_NEWLINE * nl
            + PER_CJK * cjk + PER_OTHER * other)


class TokenCounter:
    """Counts tokens of message contents: a local tokenizer when given, else the calibrated approximation."""

    def __init__(self, model_path: str | None = None, tokenizer_path: str | None = None) -> None:
        self.tok = None
        self.how = f"approximation calibrated per character class ({STATED_ERROR}); pass --model or --tokenizer " \
                   "for exact counts"
        path = None
        if tokenizer_path:
            path = Path(tokenizer_path)
            if path.is_dir():
                path = path / "tokenizer.json"
            if not path.is_file():
                raise UserError(f"--tokenizer: `{tokenizer_path}` is not a tokenizer.json file (or a folder with one)")
        elif model_path:
            path = Path(model_path) / "tokenizer.json"
            if not path.is_file():
                raise UserError(f"--model: no tokenizer.json in `{model_path}` (a fast tokenizer is needed); or pass "
                                "--tokenizer PATH/tokenizer.json")
        if path is not None:
            from tokenizers import Tokenizer  # light (Rust), no torch

            try:
                self.tok = Tokenizer.from_file(str(path))
            except Exception as e:  # noqa: BLE001 - the library raises a bare Exception for a bad file
                raise UserError(f"{path}: cannot load the tokenizer ({str(e)[:200]})") from None
            self.how = f"exact: tokenizer of {path}"

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self.tok is None:
            return approx_tokens(text)
        return len(self.tok.encode(text, add_special_tokens=False).ids)

    def total(self, texts: list[str]) -> int:
        """Tokens of several texts (a record's messages) together."""
        if self.tok is None:
            return approx_tokens_of(texts)
        return sum(map(self, texts))
