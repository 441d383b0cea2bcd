"""What `ask` writes when the answer is not a fine-tune: a starter prompt with few-shot examples chosen for
diversity from the user's data, or a retrieval plan."""

from __future__ import annotations

from collections import Counter
from itertools import islice

from advisor.answers import Answers

MAX_CHARS = 600


def _samples(path: str, limit: int = 2000):
    """Records read the audit's way (the published layouts, the project file's columns)."""
    from core.data.detect import open_dataset
    from core.errors import UserError
    from core.project import project_layout

    layout, origin = project_layout()
    try:
        det = open_dataset(path, "auto", layout, origin)
    except UserError:
        return [], None
    fmt = det.format
    if fmt in ("unknown", "text"):
        return [], None
    out = []
    for r in islice(det.records(path), limit):
        if r.error is None:
            s = det.sample(r.obj)
            if not s.problems and s.answer.strip():
                out.append((r.index, s))
    return out, fmt


def pick_examples(path: str, k: int = 4) -> list[tuple[int, object]]:
    """The most representative record (highest mean similarity to the rest), then the ones least like
    those already chosen (greedy max-min), over MinHash signatures."""
    import numpy as np

    from advisor.audit.dedup import signatures
    from advisor.audit.text import normalise

    samples, _fmt = _samples(path)
    if not samples:
        return []
    sigs = signatures([normalise(s.prompt + " " + s.answer) for _i, s in samples])
    sim = (sigs[:, None, :] == sigs[None, :, :]).mean(axis=2) if len(sigs) <= 800 else None
    if sim is None:
        rng = np.random.default_rng(0)
        idx = rng.choice(len(sigs), 800, replace=False)
        sigs, samples = sigs[idx], [samples[i] for i in idx]
        sim = (sigs[:, None, :] == sigs[None, :, :]).mean(axis=2)
    chosen = [int(sim.mean(axis=1).argmax())]
    while len(chosen) < min(k, len(samples)):
        nearest = sim[:, chosen].max(axis=1)
        nearest[chosen] = 2.0
        chosen.append(int(nearest.argmin()))
    return [samples[i] for i in chosen]


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + " …"


def starter_prompt(answers: Answers, dataset: str | None) -> str:
    lines = ["# Starter prompt (written by tunewise ask)", ""]
    examples = pick_examples(dataset) if dataset else []
    system = None
    if examples:
        systems = Counter(next((m.content for m in s.messages if m.role == "system"), "") for _i, s in examples)
        system = systems.most_common(1)[0][0] or None
    lines += ["## System prompt", "", system or (
        "You are an assistant for this task. Follow the format and tone of the examples exactly. "
        "If the input is missing information, say what is missing instead of guessing."), ""]
    if examples:
        lines += [f"## Few-shot examples ({len(examples)} from `{dataset}`, chosen to cover different cases)", ""]
        for n, (index, s) in enumerate(examples, 1):
            user = "\n".join(m.content for m in s.messages if m.role == "user")
            lines += [f"### Example {n} (record {index})", "", "**Input:**", "", _clip(user), "",
                      "**Output:**", "", _clip(s.answer), ""]
    else:
        lines += ["## Few-shot examples", "", "Add 3–5 real input → output pairs that differ from each other "
                  "(short and long inputs, an edge case, a malformed input).", ""]
    lines += ["## How to use it", "",
              "1. Put the system prompt first, then the examples as alternating user/assistant turns, then the real input.",
              "2. Score it on 50–100 held-out real inputs before changing anything; keep that test set.",
              "3. If output is still unstable after examples and a stricter format, re-run `tunewise ask`: "
              "with more data a fine-tune may pay off."]
    if answers.examples < 50:
        lines += ["4. Keep collecting examples: 50–100 clean ones are the least for a clear fine-tuning gain "
                  "(OpenAI fine-tuning guide)."]
    return "\n".join(lines) + "\n"


def rag_plan(answers: Answers, dataset: str | None) -> str:
    samples, _fmt = _samples(dataset) if dataset else ([], None)
    local = answers.private_data
    lines = ["# Retrieval plan (written by tunewise ask)", "",
             "Fine-tuning does not reliably store facts; retrieval keeps them current and citable "
             "(“Fine-tuning in practice: make the model a style master, not a knowledge base”, unsigned blog post, “Fine-tuning: the secret of making a model smarter at one task”, unsigned blog post on chinasem.cn, 2024).", "", "## 1. Documents to index", ""]
    if samples:
        lines += [f"- The {len(samples)} answers in `{dataset}` hold the facts: index each answer as a document, "
                  "with its question as metadata.",
                  "- Add the source documents those answers came from (manuals, policies, product pages)."]
    else:
        lines += ["- The source documents that hold the facts (manuals, policies, product pages, tickets)."]
    freshness = answers.knowledge_freshness or "static"
    lines += [f"- Facts change: {freshness}. Re-index on that schedule (or on every document change).", "",
              "## 2. Chunk and embed", "",
              "- Split documents into passages of 200–500 tokens with 10–20% overlap; keep the source id and title.",
              f"- Embed passages with {'a local embedding model (data must stay in your environment)' if local else 'an embedding model'}"
              " and store them in a vector index" + (" on your own hardware." if local else "."), "",
              "## 3. Check retrieval before generation", ""]
    qs = [s.prompt.strip().replace("\n", " ")[:160] for _i, s in samples[:5]]
    lines += ["- Hold out 50 real questions with the passage that answers each.",
              "- Measure recall@5: the share of questions whose answer passage is in the top 5. Aim for ≥ 0.9 "
              "before tuning the prompt."]
    if qs:
        lines += ["- Start with questions from your data, e.g.:", *[f"  - {q}" for q in qs]]
    lines += ["", "## 4. Generate", "",
              "- Put the top 3–5 passages in the prompt; tell the model to answer only from them and to say when "
              "they do not contain the answer."]
    if answers.needs_citations:
        lines += ["- Cite the source id of each passage used; check citation accuracy on the held-out set."]
    return "\n".join(lines) + "\n"
