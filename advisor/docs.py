"""Reference tables for the README, generated from the code: `python -m advisor.docs --write README.md`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel


def _type(field) -> str:
    return _name(field.annotation)


def _name(ann) -> str:
    import types
    import typing

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" (optional)" if type(None) in args else "")
    if origin is list:
        return f"list of {_name(args[0])}" if args else "list"
    return getattr(ann, "__name__", str(ann))


def model_table(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, f in model.model_fields.items():
        sub = [a for a in (getattr(f.annotation, "__args__", None) or (f.annotation,))
               if isinstance(a, type) and issubclass(a, BaseModel)]
        if sub and name != "method":
            rows += model_table(sub[0], f"{prefix}{name}.")
            continue
        default: Any = "required" if f.is_required() else f.default
        if callable(getattr(f, "default_factory", None)):
            default = "(see section)"
        aliases = [a for a in getattr(f.validation_alias, "choices", ()) or () if a != name]
        desc = (f.description or "") + (f" Aliases: {', '.join(aliases)}." if aliases else "")
        rows.append(f"| `{prefix}{name}` | {_type(f)} | `{default}` | {desc} |")
    return rows


def answers_reference() -> str:
    from advisor.answers import Answers

    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *model_table(Answers)])


def config_reference() -> str:
    from core.methods import REGISTRY
    from core.train_config import TrainConfig

    names = ", ".join(f"`{m}`" for m in REGISTRY)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|", *model_table(TrainConfig),
             f"| `method.name` | one of {names} | `{TrainConfig.model_fields['method'].default_factory().name}` | the method; "
             "the keys below belong to the methods that use them |"]
    for unit in REGISTRY.values():  # every registered method's own section (core/methods.py)
        lines += [row for row in model_table(unit.section_model, "method.") if not row.startswith("| `method.name`")]
    seen, out = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return "\n".join(out)


def rules_reference() -> str:
    from advisor.rules.loader import load_rules

    stage_order = {"constraint": 0, "decisive": 1, "preference": 2, "note": 3, "after_choice": 4}
    lines = ["| rule | stage | effect | rationale | source |", "|---|---|---|---|---|"]
    for r in sorted(load_rules(), key=lambda r: (stage_order[r.stage], r.precedence or 0)):
        eff = []
        if r.effect.decide:
            eff.append("decides " + ", ".join(r.effect.decide))
        if r.effect.veto:
            eff.append("rules out " + ", ".join(r.effect.veto))
        if r.effect.score:
            eff.append(", ".join(f"{m} {v:+g}" for m, v in r.effect.score.items()))
        if r.effect.warn:
            eff.append(f"warns `{r.effect.warn.code}`")
        stage = r.stage.replace("_", "-") + (f" {r.precedence}" if r.precedence is not None else "")
        rationale = r.rationale.replace("|", "\\|")
        lines.append(f"| `{r.id}` | {stage} | {'; '.join(eff) or 'next step'} | {rationale} | {r.source} |")
    return "\n".join(lines)


def facts_reference() -> str:
    """The derived facts a rule may test or write as a {placeholder} (besides every answers key)."""
    from advisor.rules.schema import DERIVED_FACTS, STAGE_HELP

    lines = ["| stage | what it does |", "|---|---|", *(f"| {k.replace('_', '-')} | {v} |" for k, v in STAGE_HELP.items()),
             "", "| fact | meaning |", "|---|---|", *(f"| `{k}` | {v} |" for k, v in DERIVED_FACTS.items()),
             "| `finding_CODE`, `finding_CODE_share` | records (and their share) with that audit finding, for every "
             "code in the catalogue |"]
    return "\n".join(lines)


def findings_reference() -> str:
    from advisor.audit.catalog import catalog

    lines = ["| code | severity | why it matters | known problems | patterns | source |", "|---|---|---|---|---|---|"]
    for e in catalog().values():
        langs = ", ".join(f"{k} {len(v)}" for k, v in (e.patterns or {}).items()) or "-"
        if e.slots:
            langs += "; slot words: " + ", ".join(f"{k} {len(v.nouns) + len(v.opens)}" for k, v in e.slots.items())
        if e.intents:
            langs = (langs if langs != "-" else "") + "task intents: " + ", ".join(e.intents) + "; in " + \
                ", ".join(dict.fromkeys(k for cues in e.intents.values() for k in cues))
        sev = e.severity + "".join(f"; {v.severity} when {v.when}" for v in e.variants.values())
        lines.append(f"| `{e.code}` | {sev} | {e.rationale} | {e.known_problems} | {langs} | {e.source} |")
    return "\n".join(lines)


def project_reference() -> str:
    from core.data.layout import DataLayout
    from core.project import AuditSettings

    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *model_table(AuditSettings, "audit."),
                      *model_table(DataLayout, "data.")])


def formats_reference() -> str:
    from core.data.formats import FORMATS, format_reason, kind_of

    lines = ["| format (`--format`) | kind | recognised by |", "|---|---|---|"]
    lines += [f"| `{f}` | {kind_of(f)} | {format_reason(f)} |" for f in FORMATS]
    lines += ["", "| container | recognised by |", "|---|---|",
              "| JSON Lines | one JSON object per line (`.jsonl`, `.ndjson`, or any file whose lines parse alone) |",
              "| JSON array | the file starts with `[` (streamed, never loaded whole) |",
              "| one JSON object | a `.json` file that is one object: a record, or a wrapper whose list of records sits "
              "under `data`, `train`, `examples`, `records`, `rows`, ... (the largest list otherwise) |",
              "| CSV / TSV | `.csv` / `.tsv` suffix; the header names the fields |",
              "| Parquet | the `PAR1` magic bytes (Hugging Face `datasets` exports); read in batches with pyarrow |",
              "| compressed | any of the above gzip-, bzip2-, xz- or zstd-compressed (`data.jsonl.gz`, `corpus.txt.zst`): "
              "recognised by the magic bytes, read as a stream; the inner suffix decides CSV/TSV |",
              "| plain text | not JSON: one record per line, per paragraph when blank lines separate multi-line "
              "paragraphs, or the whole file when lines break mid-sentence; `--text-unit` (line, paragraph or document) "
              "(`data.text_unit`) chooses, and the report says which was used |",
              "| refused (exit 2, once) | UTF-16, Latin-1 and other non-UTF-8 text, binary files, `.json`/`.jsonl` that "
              "is not JSON, a JSON Lines file whose first records mostly do not parse, a truncated compressed file |"]
    lines += ["", "| published layout (read without a mapping) | read as |", "|---|---|",
              *(f"| {keys} | {read} |" for keys, read in LAYOUT_EXAMPLES)]
    return "\n".join(lines)


LAYOUT_EXAMPLES = (
    ("`instruction` / `context` / `response` (Dolly)", "alpaca: the context after the instruction, `response` trained"),
    ("`instruction` / `input` / `response` (GPTeacher)", "alpaca"),
    ("`input` / `output`, `inputs` / `targets` (xP3, FLAN), `problem` / `solution` (NuminaMath), `Q` / `A`, "
     "`Question` / `Answer`", "alpaca: the first the prompt, the second the answer"),
    ("`question` / `answer` / `context`, `system_prompt` / `question` / `response` (OpenOrca)",
     "alpaca: the context or system prompt kept"),
    ("`conversation` / `dialog` / `chat` / `turns` / `text` holding turns; turns as `{speaker, text}`, "
     "`{author, message}`, ...", "sharegpt or OpenAI chat"),
    ("`system` / `question` / `chosen` / `rejected` (orca_dpo_pairs)", "dpo, the question as the prompt"),
)


TABLES = {"answers": answers_reference, "config": config_reference, "rules": rules_reference,
          "facts": facts_reference, "findings": findings_reference, "project": project_reference,
          "formats": formats_reference}


def write_readme(path: str) -> list[str]:
    """Replace every generated block (between `<!-- generated: NAME ... -->` and `<!-- end: NAME -->`)."""
    import re

    from core.files import atomic_write

    text = Path(path).read_text(encoding="utf-8")
    done = []
    for name, fn in TABLES.items():
        pattern = re.compile(rf"(<!-- generated: {name} [^\n]*-->\n)(.*?)(<!-- end: {name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m, fn=fn: m.group(1) + fn() + "\n" + m.group(3), text)
            done.append(name)
    atomic_write(path, text)
    return done


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        print("regenerated:", ", ".join(write_readme(sys.argv[2])))
    else:
        for title, fn in TABLES.items():
            print(f"<!-- {title} -->\n{fn()}\n")
