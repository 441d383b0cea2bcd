"""Task metrics for `tunewise eval` (torch-free): which metric fits the expected answers, and each metric's score.

- `json`: the answer parses as JSON (a ```json fence is allowed), equals the expected value, and matches a JSON
  Schema when one is given (`--schema`; the keywords below, others refused by name).
- `classification`: answers are labels (few distinct, short): accuracy and macro-F1 (scikit-learn).
- `chrf`: character n-gram F-score (chrF, Popović 2015; sacrebleu's defaults: orders 1-6, beta 2, whitespace
  ignored) for free text, with ROUGE-L (longest common subsequence F1 over words) beside it. Both are written here
  rather than added as dependencies: sacrebleu and rouge-score bring lxml, regex, nltk and more (~30 MB) for ~40
  lines, and these match them on 904 pairs of Stanford Alpaca answers (chrF to 1e-9; ROUGE-L on ASCII text)
  at the same speed (tests/test_eval.py pins reference values).
- `exact_match`: the whole answer, whitespace-normalised.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from core.errors import UserError
from core.metric_names import METRICS  # noqa: F401 - the names the config and the commands accept

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
_LABEL_WORDS = 4  # a label is at most this many words
_LABELS_MAX = 20  # ... and there are at most this many distinct ones


def squash(text: str) -> str:
    return " ".join(text.split())


def as_label(text: str) -> str:
    return squash(text).strip(" .!\"'").lower()


def parse_json(text: str) -> tuple[bool, object]:
    t = text.strip()
    if (m := _FENCE.match(t)) is not None:
        t = m.group(1)
    try:
        return True, json.loads(t)
    except (json.JSONDecodeError, ValueError, RecursionError):
        return False, None


@dataclass(frozen=True)
class MetricChoice:
    name: str
    why: str


def choose_metric(expected: list[str], asked: str | None = None) -> MetricChoice:
    """The metric the expected answers call for, or the one asked for if they fit it (exit 2 if not)."""
    n = len(expected)
    json_share = sum(isinstance(v, dict | list) for ok, v in map(parse_json, expected) if ok) / max(1, n)
    labels = {as_label(e) for e in expected}
    short = all(len(e.split()) <= _LABEL_WORDS for e in expected)
    is_labels = short and 2 <= len(labels) <= min(_LABELS_MAX, max(2, n // 2))
    if asked == "json" and json_share < 0.9:
        raise UserError(f"--metric json: {round((1 - json_share) * n)} of {n} expected answers are not a JSON object "
                        "or array; use --metric chrf or exact_match")
    if asked == "classification" and not is_labels:
        raise UserError(f"--metric classification: the expected answers are not labels ({len(labels)} distinct "
                        f"among {n}, {'some' if not short else 'none'} longer than {_LABEL_WORDS} words); use "
                        "--metric chrf or exact_match")
    if asked:
        return MetricChoice(asked, "set by --metric")
    if json_share >= 0.9:
        return MetricChoice("json", f"{json_share:.0%} of the expected answers are JSON objects or arrays")
    if is_labels:
        return MetricChoice("classification", f"the expected answers are {len(labels)} short labels")
    return MetricChoice("chrf", "the expected answers are free text")


# ---- JSON Schema (the keywords structured-output tasks use) --------------------------------------------------

SCHEMA_KEYWORDS = {"type", "properties", "required", "additionalProperties", "enum", "const", "items", "minItems",
                   "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern", "anyOf", "oneOf", "allOf",
                   "$schema", "$id", "title", "description", "default", "examples"}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def check_schema(schema: object, where: str = "schema") -> None:
    """Refuse keywords this validator does not apply, rather than pass everything silently."""
    if not isinstance(schema, dict):
        raise UserError(f"{where}: a JSON Schema is an object")
    unknown = sorted(set(schema) - SCHEMA_KEYWORDS)
    if unknown:
        raise UserError(f"{where}: unsupported JSON Schema keyword(s) {', '.join(unknown)}; supported: "
                        f"{', '.join(sorted(SCHEMA_KEYWORDS - {'$schema', '$id', 'title', 'description'}))}")
    check_schema_values(schema, where)
    for key, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.properties.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            check_schema(schema[key], f"{where}.{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            check_schema(sub, f"{where}.{key}[{i}]")


_SCHEMA_VALUE_KINDS = {"properties": (dict, "an object of property schemas"),
                       "required": (list, "a list of property names"), "enum": (list, "a list of values"),
                       "items": ((dict, bool), "a schema"), "additionalProperties": ((dict, bool), "a schema or a boolean"),
                       "anyOf": (list, "a list of schemas"), "oneOf": (list, "a list of schemas"),
                       "allOf": (list, "a list of schemas"), "pattern": (str, "a regular expression")}
_SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


def check_schema_values(schema: dict, where: str) -> None:
    """Each keyword's value of the kind JSON Schema defines (a typo would otherwise fail while scoring)."""
    for key, (kind, what) in _SCHEMA_VALUE_KINDS.items():
        if key in schema and not isinstance(schema[key], kind):
            raise UserError(f"{where}: `{key}` must be {what}, got {json.dumps(schema[key])[:60]}")
    for key in ("minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum"):
        v = schema.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise UserError(f"{where}: `{key}` must be a number, got {json.dumps(v)[:60]}")
    t = schema.get("type")
    types = [t] if isinstance(t, str) else t if isinstance(t, list) else None
    if "type" in schema and (types is None or not all(isinstance(x, str) and x in _SCHEMA_TYPES for x in types)):
        raise UserError(f"{where}: `type` must be one of {', '.join(sorted(_SCHEMA_TYPES))} (or a list of them), "
                        f"got {json.dumps(t)[:60]}")
    if any(not isinstance(x, str) for x in schema.get("required", [])):
        raise UserError(f"{where}: `required` must list property names (strings)")
    for key in ("anyOf", "oneOf", "allOf"):
        if any(not isinstance(x, dict) for x in schema.get(key, [])):
            raise UserError(f"{where}: every entry of `{key}` must be a schema (an object)")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as e:
            raise UserError(f"{where}: `pattern` is not a valid regular expression ({e})") from None


def _type_ok(value: object, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(t, object))


def matches(value: object, s: dict) -> bool:
    """Whether `value` satisfies schema `s` (the keywords of SCHEMA_KEYWORDS)."""
    if "type" in s and not any(_type_ok(value, t) for t in ([s["type"]] if isinstance(s["type"], str) else s["type"])):
        return False
    if ("enum" in s and value not in s["enum"]) or ("const" in s and value != s["const"]):
        return False
    by_kind = _object_ok if isinstance(value, dict) else _array_ok if isinstance(value, list) else \
        _string_ok if isinstance(value, str) else _number_ok if _type_ok(value, "number") else None
    if by_kind is not None and not by_kind(value, s):
        return False
    if "allOf" in s and not all(matches(value, x) for x in s["allOf"]):
        return False
    if "anyOf" in s and not any(matches(value, x) for x in s["anyOf"]):
        return False
    return "oneOf" not in s or sum(matches(value, x) for x in s["oneOf"]) == 1


def _object_ok(value: dict, s: dict) -> bool:
    if any(k not in value for k in s.get("required", [])):
        return False
    props, extra = s.get("properties", {}), s.get("additionalProperties", True)
    for k, v in value.items():
        if k in props:
            if not matches(v, props[k]):
                return False
        elif extra is False or (isinstance(extra, dict) and not matches(v, extra)):
            return False
    return True


def _array_ok(value: list, s: dict) -> bool:
    if not s.get("minItems", 0) <= len(value) <= s.get("maxItems", len(value)):
        return False
    return not isinstance(s.get("items"), dict) or all(matches(v, s["items"]) for v in value)


def _string_ok(value: str, s: dict) -> bool:
    if not s.get("minLength", 0) <= len(value) <= s.get("maxLength", len(value)):
        return False
    return "pattern" not in s or re.search(s["pattern"], value) is not None


def _number_ok(value: float, s: dict) -> bool:
    return s.get("minimum", value) <= value <= s.get("maximum", value)


# ---- free text -----------------------------------------------------------------------------------------------

def _char_ngrams(text: str, n: int) -> Counter:
    t = "".join(text.split())
    return Counter(t[i:i + n] for i in range(len(t) - n + 1))


def chrf(hyp: str, ref: str, order: int = 6, beta: float = 2.0) -> float:
    """Sentence chrF in 0-100 as sacrebleu 2.x computes it by default: character precision and recall per n-gram
    order (whitespace ignored), averaged over the orders both sides have, then their F-beta."""
    factor = beta ** 2
    avg_prec = avg_rec = 0.0
    effective = 0
    for n in range(1, order + 1):
        h, r = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        nh, nr = sum(h.values()), sum(r.values())
        if nh and nr:
            match = sum((h & r).values())
            avg_prec += match / nh
            avg_rec += match / nr
            effective += 1
    if not effective:
        return 0.0
    avg_prec, avg_rec = avg_prec / effective, avg_rec / effective
    if not avg_prec + avg_rec:
        return 0.0
    return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)


_WORD = re.compile(r"[^\W_]+")


def rouge_l(hyp: str, ref: str) -> float:
    """ROUGE-L F1 (longest common subsequence of words), 0-1; words as rouge-score splits them (lower-cased
    letters and digits), in any script."""
    a, b = _WORD.findall(hyp.lower()), _WORD.findall(ref.lower())
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if not lcs:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


# ---- scoring -------------------------------------------------------------------------------------------------

def record_score(metric: str, output: str, expected: str, schema: dict | None = None) -> float:
    """One record's score in 0-1 (what the side-by-side table ranks by)."""
    if metric == "json":  # valid, equal to the expected value, and (with a schema) matching it: a share each
        ok, got = parse_json(output)
        parts = [ok, ok and got == parse_json(expected)[1]] + ([ok and matches(got, schema)] if schema else [])
        return sum(parts) / len(parts)
    if metric == "classification":
        return float(as_label(output) == as_label(expected))
    if metric == "chrf":
        return chrf(output, expected) / 100
    return float(squash(output) == squash(expected))


def record_values(metric: str, outputs: list[str], expected: list[str],
                  schema: dict | None = None) -> dict[str, list[float]]:
    """Each record's value of every per-record number of the metric (0 or 1 for the shares, 0-1 for chrF and
    ROUGE-L): what `aggregate` averages and `confidence_interval` resamples. macro-F1 is not per record."""
    pairs = list(zip(outputs, expected, strict=True))
    values = {"exact_match": [float(squash(o) == squash(e)) for o, e in pairs]}
    if metric == "json":
        parsed = [parse_json(o) for o in outputs]
        values["json_valid"] = [float(ok) for ok, _ in parsed]
        values["json_match"] = [float(ok and v == parse_json(e)[1]) for (ok, v), e in zip(parsed, expected, strict=True)]
        if schema is not None:
            values["schema_match"] = [float(ok and matches(v, schema)) for ok, v in parsed]
    elif metric == "classification":
        values["accuracy"] = [float(as_label(o) == as_label(e)) for o, e in pairs]
    elif metric == "chrf":
        values["chrf"] = [chrf(o, e) / 100 for o, e in pairs]
        values["rouge_l"] = [rouge_l(o, e) for o, e in pairs]
    return values


def aggregate(metric: str, outputs: list[str], expected: list[str], schema: dict | None = None) -> dict[str, float]:
    """The metric's numbers over all records (each in 0-1)."""
    n = max(1, len(outputs))
    scores = {k: sum(v) / n for k, v in record_values(metric, outputs, expected, schema).items()}
    if metric == "classification":
        from sklearn.metrics import f1_score

        refs, preds = [as_label(e) for e in expected], [as_label(o) for o in outputs]
        scores["macro_f1"] = float(f1_score(refs, preds, labels=sorted(set(refs)), average="macro", zero_division=0))
    return {k: round(v, 4) for k, v in scores.items()}


# ---- the headline number and its uncertainty ----------------------------------------------------------------

# the one number per metric that says whether the answers are right (the probe's verdict and the eval comparison
# read it): the expected JSON value, the right label, the character overlap, the whole answer
HEADLINE = {"json": "json_match", "classification": "accuracy", "chrf": "chrf", "exact_match": "exact_match"}
PROPORTIONS = {"exact_match", "json_valid", "json_match", "schema_match", "accuracy"}  # a share of records right
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def confidence_interval(key: str, values: list[float], confidence: float = CONFIDENCE,
                        seed: int = 0) -> tuple[float, float, str]:
    """(low, high, method) for the mean of one per-record number over a sample of records. A share of records
    right (PROPORTIONS) gets the Wilson score interval (Wilson 1927; Newcombe 1998 recommends it over the normal
    approximation, which breaks down near 0 and 1 and for small samples); a mean of graded scores (chrF, ROUGE-L)
    a bias-corrected and accelerated bootstrap over the records (Efron 1987), seeded. Both from scipy."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return 0.0, 1.0, "none"
    if key in PROPORTIONS:
        ci = stats.binomtest(int(round(sum(values))), n).proportion_ci(confidence_level=confidence, method="wilson")
        return round(float(ci.low), 4), round(float(ci.high), 4), "wilson"
    x = np.asarray(values, dtype=float)
    if n < 2 or np.all(x == x[0]):  # every record scored the same: no spread to resample
        return round(float(x[0]), 4), round(float(x[0]), 4), "bootstrap"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa warns (and gives NaN) on degenerate resamples; percentile then
        res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                              method="BCa", rng=np.random.default_rng(seed))
        low, high = res.confidence_interval
        if not (np.isfinite(low) and np.isfinite(high)):
            res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                                  method="percentile", rng=np.random.default_rng(seed))
            low, high = res.confidence_interval
    return round(float(low), 4), round(float(high), 4), "bootstrap"
