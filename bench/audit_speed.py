"""Audit throughput and peak memory on real chat records, JSONL and JSON array, every check on.

The input is built from the real public files in ../shared/data/external (alpaca en/zh, Stanford Alpaca, glaive
tool calls): their instruction/answer pairs are recombined into distinct OpenAI-chat records of 1-2 KB (1-4 turns,
English and Chinese, some with a system prompt, some tool conversations), with about 3% exact copies.
`--unique-messages` numbers every message (no text repeats, no cache helps); `--multilingual` builds the records in
17 languages from the labelled sentences of tests/labelled instead (most texts then need the language model).

Targets (issue #13): >= 5,000 records/s wall on a 2-core machine for JSONL and JSON array alike, < 2 GB peak at
1M records, and findings identical to the single-process run (`--check-serial`). Prints the numbers. Memory is the
peak of the whole process tree (parent, workers, the forked processes of the dataset stage) as the sum of their
proportional set sizes: a page that forked processes share counts once, not once per process as RSS counts it."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXTERNAL = ROOT.parent / "shared" / "data" / "external"
SYSTEMS = ["You are a helpful assistant.", "Answer briefly and precisely.", "你是一个乐于助人的助手。",
           "You are a patient tutor. Explain step by step."]


def _pairs(name: str) -> list[tuple[str, str]]:
    out = []
    for r in json.loads((EXTERNAL / name).read_text(encoding="utf-8")):
        prompt = r["instruction"] + (("\n\n" + r["input"]) if r.get("input") else "")
        if r["output"].strip():
            out.append((prompt, r["output"]))
    return out


def _tool_chats() -> list[dict]:
    roles = {"human": "user", "gpt": "assistant", "function_call": "assistant", "observation": "tool"}
    out = []
    for r in json.loads((EXTERNAL / "llamafactory_glaive_toolcall_en_demo.json").read_text(encoding="utf-8")):
        msgs = [{"role": roles[t["from"]], "content": t["value"]} for t in r["conversations"]]
        out.append({"messages": msgs, "tools": r["tools"]})
    return out


def make_records(n: int, seed: int = 0, copies: float = 0.03, unique_messages: bool = False) -> list[str]:
    """`n` JSON lines: distinct recombined chats of 1-2 KB, `copies` of them exact copies of an earlier one. Each
    real pair recurs in many records; with `unique_messages` every user turn gets a record number, so no message
    text repeats and per-message caches (language identification) stop helping: a lower bound for natural data."""
    rng = random.Random(seed)
    en = _pairs("llamafactory_alpaca_en_demo.json") + _pairs("stanford_alpaca_sample_1727.json")
    zh = _pairs("llamafactory_alpaca_zh_demo.json")
    tools = _tool_chats()
    lines: list[str] = []
    while len(lines) < n:
        if lines and rng.random() < copies:
            lines.append(lines[rng.randrange(len(lines))])
            continue
        if rng.random() < 0.05:
            chat = rng.choice(tools)  # a tool conversation, made distinct by a follow-up turn
            q, a = rng.choice(en)
            msgs = chat["messages"] + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            lines.append(json.dumps({"messages": msgs, "tools": chat["tools"]}, ensure_ascii=False))
            continue
        pool = zh if rng.random() < 0.35 else en
        msgs = [{"role": "system", "content": rng.choice(SYSTEMS)}] if rng.random() < 0.3 else []
        size, target = 0, rng.randint(900, 1900)  # JSON lines of 1-2 KB, ~1.6 KB on average
        for _ in range(40):
            q, a = rng.choice(pool)
            more = len(q.encode()) + len(a.encode()) + 90  # and the JSON around two messages
            if msgs and msgs[-1]["role"] == "assistant" and size + more > 2000:
                continue  # keep the record within 2 KB
            if unique_messages:
                q = f"{q} (#{len(lines)}-{len(msgs)})"
                a = f"{a} (#{len(lines)}-{len(msgs)})"
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            size += more
            if size >= target:
                break
        lines.append(json.dumps({"messages": msgs}, ensure_ascii=False))
    return lines


LABELLED = ROOT / "tests" / "labelled"


def _language_pools() -> dict[str, tuple[list[str], list[str]]]:
    """Per language, (questions, answers) from the labelled multilingual sets: the instructions and answers of
    knowledge.yaml and faq_es.yaml, the short and long texts of language_id.yaml (17 languages)."""
    import yaml

    pools: dict[str, tuple[list[str], list[str]]] = {}
    for lang, items in yaml.safe_load((LABELLED / "knowledge.yaml").read_text(encoding="utf-8")).items():
        q, a = pools.setdefault(lang, ([], []))
        q += [i[0] for i in items]
        a += [i[1] for i in items]
    q, a = pools.setdefault("es", ([], []))
    for question, answer in yaml.safe_load((LABELLED / "faq_es.yaml").read_text(encoding="utf-8")):
        q.append(question)
        a.append(answer)
    for lang, groups in yaml.safe_load((LABELLED / "language_id.yaml").read_text(encoding="utf-8")).items():
        if lang == "und":
            continue
        q, a = pools.setdefault(lang, ([], []))
        q += groups.get("short", [])
        a += groups.get("long", [])
    return {lang: (q, a) for lang, (q, a) in pools.items() if q and a}


def make_multilingual_records(n: int, seed: int = 0) -> list[str]:
    """`n` JSON lines of 1-2 KB in 17 languages (a language per record, 1-4 turns, no message repeated), built from
    the labelled multilingual sentences: each message joins sentences of its language and swaps a third of its
    words for other words of that language, so records are distinct texts (not near-duplicates) that still read as
    the language to a language identifier. A stand-in for real multilingual chat data, which this machine lacks."""
    rng = random.Random(seed)
    pools = _language_pools()
    vocab = {lang: sorted({w for t in q + a for w in t.split()}) for lang, (q, a) in pools.items()}
    langs = sorted(pools)

    def message(texts: list[str], lang: str, sentences: int) -> str:
        words = " ".join(rng.choice(texts) for _ in range(sentences)).split()
        return " ".join(rng.choice(vocab[lang]) if rng.random() < 0.33 else w for w in words)

    lines: list[str] = []
    while len(lines) < n:
        lang = rng.choice(langs)
        questions, answers = pools[lang]
        msgs, size, target = [], 0, rng.randint(1200, 2200)  # ~1.6 KB on average, as the en/zh records
        while size < target and len(msgs) < 8:
            q = f"{message(questions, lang, rng.randint(1, 2))} (#{len(lines)}-{len(msgs)})"
            a = f"{message(answers, lang, rng.randint(1, 4))} (#{len(lines)}-{len(msgs)})"
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            size += len(q.encode()) + len(a.encode()) + 90
        lines.append(json.dumps({"messages": msgs}, ensure_ascii=False))
    return lines


def write_inputs(lines: list[str], folder: Path) -> tuple[Path, Path]:
    jsonl, array = folder / "chat.jsonl", folder / "chat.json"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with array.open("w", encoding="utf-8") as f:  # pretty-printed like the LLaMA-Factory files: many lines per record
        f.write("[\n")
        for i, line in enumerate(lines):
            f.write(json.dumps(json.loads(line), ensure_ascii=False, indent=2) + (",\n" if i < len(lines) - 1 else "\n"))
        f.write("]\n")
    return jsonl, array


MEASURE = """
import json, os, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
from advisor.audit import audit_file

def tree(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass  # a process or thread that ended while it was read
    return [pid] + [p for k in kids for p in tree(k)]

def pss_mb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("Pss:")) / 1024

peak = {"mb": 0.0}
done = threading.Event()
def sample():  # the memory of the whole process tree: shared pages (fork) counted once, split by PSS
    while not done.wait(0.1):
        total = 0.0
        for pid in tree(os.getpid()):
            try:
                total += pss_mb(pid)
            except (OSError, StopIteration):
                pass  # a process that just ended
        peak["mb"] = max(peak["mb"], total)
threading.Thread(target=sample, daemon=True).start()
workers = None if sys.argv[3] == "auto" else int(sys.argv[3])
t = time.perf_counter()
r = audit_file(sys.argv[2], workers=workers)
dt = time.perf_counter() - t
done.set()
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
status = open("/proc/self/status").read()  # VmHWM: this process's own peak (ru_maxrss survives exec)
me = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"records": r.records, "seconds": dt, "peak_mb": peak["mb"], "parent_mb": me, "worker_mb": kids,
                  "findings": r.model_dump(mode="json")["findings"], "signals": r.signals.model_dump(mode="json")}))
"""


def measure(path: Path, workers: int | None) -> dict:
    """Audit in a fresh process: records/s wall; peak memory of the process tree (the sum of every process's PSS,
    sampled every 0.1 s: pages that forked processes share are counted once), and the peak RSS of the audit
    process and of its largest child (RSS counts shared pages in each process that maps them)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), str(path), str(workers or "auto")],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=150_000)
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    ap.add_argument("--check-serial", action="store_true", help="also run single-process and compare the findings")
    ap.add_argument("--unique-messages", action="store_true",
                    help="number every message so no text repeats across records (no per-message cache hits)")
    ap.add_argument("--multilingual", action="store_true",
                    help="records in 17 languages built from tests/labelled (no message repeats), not en/zh from "
                         "external/: most texts then need the language model")
    args = ap.parse_args()
    if args.multilingual:
        lines = make_multilingual_records(args.records)
    elif EXTERNAL.is_dir():
        lines = make_records(args.records, unique_messages=args.unique_messages)
    else:
        sys.exit(f"needs the real files in {EXTERNAL} (or --multilingual)")
    source = "tests/labelled, 17 languages (recombined)" if args.multilingual else \
        f"{EXTERNAL.name}/ (recombined, ~3% copies)"
    with tempfile.TemporaryDirectory() as d:
        jsonl, array = write_inputs(lines, Path(d))
        del lines
        print(f"input              {args.records:,} records from {source}; "
              f"JSONL {jsonl.stat().st_size / 1e6:.0f} MB, JSON array {array.stat().st_size / 1e6:.0f} MB; "
              f"{os.cpu_count()} cores")
        results = {}
        for label, path in (("jsonl", jsonl), ("json array", array)):
            r = measure(path, args.workers)
            results[label] = r
            rate = r["records"] / r["seconds"]
            print(f"{label:<18} {rate:,.0f} records/s wall ({r['seconds']:.1f} s), peak memory {r['peak_mb']:,.0f} MB "
                  f"(process tree, PSS; peak RSS: parent {r['parent_mb']:,.0f}, largest child {r['worker_mb']:,.0f})  "
                  f"(targets >= 5,000/s, < 2,000 MB) {'OK' if rate >= 5000 and r['peak_mb'] < 2000 else 'MISSED'}")
        print("findings           " + ", ".join(f"{f['code']}={f['count']}" for f in results["jsonl"]["findings"]))
        same = _comparable(results["jsonl"]) == _comparable(results["json array"])
        print(f"jsonl == array     {'identical findings' if same else 'DIFFERENT FINDINGS'}")
        if args.check_serial:
            r = measure(jsonl, 1)
            same = _comparable(r) == _comparable(results["jsonl"])
            print(f"single process     {r['records'] / r['seconds']:,.0f} records/s wall, peak memory {r['peak_mb']:,.0f} MB; "
                  f"{'identical findings' if same else 'DIFFERENT FINDINGS'}")


def _comparable(r: dict) -> tuple:
    """Findings without line numbers (a JSON array spreads a record over many lines), and the signals."""
    return (json.dumps([{k: v for k, v in f.items() if k != "line"} for f in r["findings"]], sort_keys=True),
            json.dumps(r["signals"], sort_keys=True))


if __name__ == "__main__":
    main()
