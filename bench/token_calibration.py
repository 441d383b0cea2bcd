"""Fit and check the audit's token approximation (advisor/audit/tokens.py) against real BPE tokenizers.

Needs a real tokenizer, offline: either tokenizer.json files (`--tokenizer PATH`, read with `tokenizers`) or the
`mistral-common[sentencepiece]` package, which bundles Mistral's SentencePiece 32k (the Llama-2 family's
vocabulary) and Tekken 131k tokenizers. Without either it says so and exits 0 (CI does not install them).
Texts: every message of the files in ../shared/data/external (English, Chinese, code, JSON, tool calls), plus
number tables and Latin-script prose in other languages, so each character class is represented.

    python bench/token_calibration.py            # error of the shipped constants, and a refit
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXTERNAL = ROOT.parent / "shared" / "data" / "external"
spec = importlib.util.spec_from_file_location("tokens", ROOT / "advisor" / "audit" / "tokens.py")
sys.path.insert(0, str(ROOT))
tokens = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tokens)

EXTRA = [
    "| year | revenue | cost |\n|------|---------|------|\n| 2019 | 1,234,567 | 987,654 |\n| 2020 | 2,345,678 | 1,876,543 |",
    "355909190063 - 746 = 355909189317; 12.5 * 48 = 600; 3.14159 2.71828 1.41421 1.73205",
    "El agua se evapora del mar, forma nubes y vuelve a caer como lluvia sobre la tierra.",
    "Die Firma hat im letzten Jahr ihren Umsatz verdoppelt und neue Mitarbeiter eingestellt.",
    "La réunion a été déplacée à vendredi parce que la salle était réservée.",
    "Встреча перенесена на пятницу, потому что комната была занята.",
]


def corpus(limit: int = 4000) -> list[str]:
    texts: list[str] = []
    for f in sorted(EXTERNAL.glob("*.json*")):
        try:
            data = json.loads(f.read_text()) if f.suffix == ".json" else [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        for rec in data:
            for v in _strings(rec):
                if v.strip():
                    texts.append(v)
    random.Random(0).shuffle(texts)
    return texts[:limit] + EXTRA * 20


def _strings(o):
    if isinstance(o, str):
        yield o
    elif isinstance(o, dict):
        for v in o.values():
            yield from _strings(v)
    elif isinstance(o, list):
        for v in o:
            yield from _strings(v)


def counters(paths: list[str]):
    out = {}
    for p in paths:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(p)
        out[Path(p).parent.name or p] = lambda t, tok=tok: len(tok.encode(t, add_special_tokens=False).ids)
    if not paths:
        try:
            import mistral_common
            from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
        except ImportError:
            return out
        data = Path(mistral_common.__file__).parent / "data"
        for name, file in (("sentencepiece-32k (llama-2/mistral v1)", "tokenizer.model.v1"),
                           ("tekken-131k (mistral nemo)", "tekken_240911.json")):
            tok = MistralTokenizer.from_file(str(data / file)).instruct_tokenizer.tokenizer
            out[name] = lambda t, tok=tok: len(tok.encode(t, bos=False, eos=False))
    return out


def report(name: str, est: np.ndarray, true: np.ndarray) -> None:
    rel = np.abs(est - true) / np.maximum(true, 1)
    big = true >= 20
    print(f"  {name:42s} median |err| {np.median(rel[big]):5.1%}  p90 {np.percentile(rel[big], 90):5.1%}  "
          f"total {est.sum() / true.sum() - 1:+6.1%}  (texts ≥ 20 tokens: {big.sum()})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", action="append", default=[], help="a tokenizer.json (repeatable)")
    args = ap.parse_args()
    found = counters(args.tokenizer)
    if not found:
        print("no real tokenizer available: pip install 'mistral-common[sentencepiece]' or pass --tokenizer")
        return 0
    texts = corpus()
    x = np.array([tokens.char_classes(t) for t in texts], dtype=float)
    shipped = np.array([tokens.approx_tokens(t) for t in texts], dtype=float)
    truths = {name: np.array([fn(t) for t in texts], dtype=float) for name, fn in found.items()}
    print(f"{len(texts)} texts")
    for name, y in truths.items():
        report(f"shipped constants vs {name}", shipped, y)
    y = np.mean(list(truths.values()), axis=0)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    coef = np.clip(coef, 0, None)
    names = ["PER_ASCII_WORD", "PER_ASCII_LETTER", "PER_DIGIT", "PER_PUNCT", "PER_NEWLINE", "PER_CJK", "PER_OTHER"]
    print("refit on the mean of the tokenizers: " + ", ".join(f"{n} = {c:.3f}" for n, c in zip(names, coef, strict=True)))
    for name, truth in truths.items():
        report(f"refit vs {name}", np.maximum(1, np.round(x @ coef)), truth)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
