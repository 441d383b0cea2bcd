"""Column layouts: which field of a record holds the prompt, the answer, the conversation, ... .

Two sources, one mechanism:
- the user's mapping, in the spirit of LLaMA-Factory's `dataset_info.json` `columns` / `tags`: `--columns
  prompt=Q,response=A` on `audit`, the `data:` section of `tunewise.yaml`, or `data.columns` / `data.tags` of a
  training config (the same `ColumnMap` / `TagMap` models everywhere, so the mapping the audit read is the one
  that trains);
- the common layouts people publish, recognised from the records' own keys (`infer_layout`): Dolly's
  `instruction/context/response`, GPTeacher's `instruction/input/response`, `input/output`, `question/answer`
  with a `context`, `problem/solution`, `inputs/targets`, conversations under `conversation`, `dialog`, `chat`,
  ... with `role/content`, `speaker/text`, ... turns.

Either way a `Layout` rewrites each record into the canonical keys of one format (alpaca's `instruction` /
`input` / `output`, `conversations`, `chosen` / `rejected`, ...), which `normalise` reads; messages about a
rewritten record name the user's own field (`explain`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.errors import UserError

TextUnit = Literal["auto", "line", "paragraph", "document"]


class ColumnMap(BaseModel):
    """Which column holds what (LLaMA-Factory's `columns` names). Give `prompt` + `response` for instruction data,
    `messages` for conversations, `chosen` + `rejected` for preference pairs, `kto_tag` for KTO labels, `text` for
    plain text."""

    model_config = ConfigDict(extra="forbid")
    prompt: str | None = Field(None, description="the instruction or question (alpaca `instruction`)")
    query: str | None = Field(None, description="extra input or context appended to the prompt (alpaca `input`)")
    response: str | None = Field(None, description="the answer to train (alpaca `output`)")
    system: str | None = Field(None, description="the system prompt")
    history: str | None = Field(None, description="earlier turns as [[instruction, response], ...]")
    messages: str | None = Field(None, description="a list of turns (sharegpt / OpenAI chat)")
    tools: str | None = Field(None, description="tool schemas offered to the model")
    chosen: str | None = Field(None, description="the preferred answer of a preference pair")
    rejected: str | None = Field(None, description="the rejected answer of a preference pair")
    kto_tag: str | None = Field(None, description="KTO: whether the answer is desirable (true/false, 1/0)")
    text: str | None = Field(None, description="plain text (continued pre-training)")

    @model_validator(mode="after")
    def _complete(self) -> ColumnMap:
        given = self.given()
        if not given:
            raise ValueError("name at least one column, e.g. prompt: Q and response: A")
        if (self.chosen is None) != (self.rejected is None):
            raise ValueError("a preference pair needs both `chosen` and `rejected`")
        if not ({"messages", "text", "chosen"} & set(given)) and not (self.prompt and self.response):
            raise ValueError("instruction data needs both `prompt` and `response` (or map `messages` for "
                             "conversations, `text` for plain text)")
        twice = [c for c, n in Counter(given.values()).items() if n > 1]
        if twice:
            raise ValueError(f"column `{twice[0]}` is mapped twice; each column holds one thing")
        return self

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class TagMap(BaseModel):
    """The keys and role names inside each turn of `messages` (LLaMA-Factory's `tags`). Unset: detected."""

    model_config = ConfigDict(extra="forbid")
    role_tag: str | None = Field(None, description="the key of a turn's role (e.g. `from`, `role`, `speaker`)")
    content_tag: str | None = Field(None, description="the key of a turn's text (e.g. `value`, `content`, `text`)")
    user_tag: str | None = Field(None, description="the role value of the user (e.g. `human`, `user`, `Q`)")
    assistant_tag: str | None = Field(None, description="the role value of the assistant (e.g. `gpt`, `bot`)")
    system_tag: str | None = Field(None, description="the role value of a system turn")
    observation_tag: str | None = Field(None, description="the role value of a tool result")
    function_tag: str | None = Field(None, description="the role value of a tool call")


class DataLayout(BaseModel):
    """How to read a data file: the `data:` section of `tunewise.yaml`, or a file given with `audit --columns`."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["auto", "alpaca", "sharegpt", "openai", "prompt_completion", "text", "dpo", "openai_preference",
                    "kto"] = Field("auto", description="record format (auto: detected; with `columns`, decided by "
                                   "the columns mapped)")
    columns: ColumnMap | None = Field(None, description="which column holds what (LLaMA-Factory `columns` names)")
    tags: TagMap | None = Field(None, description="the keys and role names inside each turn of `messages`")
    text_unit: TextUnit = Field("auto", description="plain-text files: one record per line, paragraph or document "
                                "(auto: decided from the text, and said)")


# ---- the runtime layout ----------------------------------------------------------------------------------------

ALTERNATING = "(alternating strings)"  # turn keys of a conversation that is a list of strings, user first
ROLE_NAMES = {"user": "human", "assistant": "gpt", "system": "system", "observation": "observation",
              "function": "function_call"}


@dataclass(frozen=True, slots=True)
class Layout:
    """A record → the canonical keys of `fmt`. `pairs`: (canonical key, the record's key); `turns`: (role key,
    content key, ((role value, canonical sharegpt role), ...)) to rewrite each turn of the conversation, or None.
    `origin` says where it came from (the flag, the file and field, or the detection)."""
    fmt: str
    pairs: tuple[tuple[str, str], ...]
    origin: str
    turns: tuple[str, str, tuple[tuple[str, str], ...]] | None = None

    def apply(self, obj: Any) -> Any:
        if not isinstance(obj, dict):
            return obj
        out = {dst: _value(dst, obj.get(src)) for dst, src in self.pairs}
        if self.turns is not None:
            for key in ("conversations", "messages"):
                if isinstance(out.get(key), list):
                    out[key] = self._turns(out[key])
        return out

    def _turns(self, turns: list) -> list:
        if self.turns[0] == ALTERNATING:  # UltraChat's `data`: plain strings, the user's first
            return [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)]
        return [self._turn(t) for t in turns]

    def _turn(self, turn: Any) -> Any:
        if not isinstance(turn, dict):
            return turn
        role_key, content_key, roles = self.turns
        role = turn.get(role_key)
        mapped = dict(roles).get(role, role) if isinstance(role, str) else role
        return {"from": mapped, "value": turn.get(content_key)}

    def explain(self, message: str) -> str:
        """A message about the rewritten record, naming the record's own fields (`output` → `A`)."""
        names = {dst: src for dst, src in self.pairs if dst != src}
        if not names:
            return message
        return re.sub(r"`(\w+)", lambda m: "`" + names.get(m.group(1), m.group(1)), message)

    @property
    def portable(self) -> bool:
        """Whether other tools' column mappings can say it (not a conversation of bare alternating strings)."""
        return self.turns is None or self.turns[0] != ALTERNATING

    def describe(self) -> str:
        shown = ", ".join(f"{src} → {dst}" for dst, src in self.pairs)
        if self.turns and self.turns[0] == ALTERNATING:
            shown += "; turns alternate user / assistant"
        elif self.turns:
            shown += f"; turns {{{self.turns[0]}, {self.turns[1]}}}"
        return shown


_TRUE = {"true", "1", "yes", "y", "good", "desirable", "positive", "pos", "chosen"}
_FALSE = {"false", "0", "no", "n", "bad", "undesirable", "negative", "neg", "rejected"}


def _value(key: str, v: Any) -> Any:
    """A column's value as the canonical key expects it: a KTO tag as a boolean, a JSON-encoded list (CSV, Parquet
    string columns) as the list."""
    if key == "label":
        if isinstance(v, int | float) and not isinstance(v, bool) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            return v.strip().lower() in _TRUE
        return v
    if key in ("conversations", "messages", "history", "chosen", "rejected") and isinstance(v, str) \
            and v.lstrip()[:1] == "[":
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


# ---- the user's mapping ----------------------------------------------------------------------------------------

def parse_columns_flag(spec: str) -> DataLayout:
    """`--columns`: `prompt=Q,response=A[,query=...]` or a YAML/JSON file holding a `DataLayout`."""
    from pathlib import Path

    from core.files import load_model_file, validate

    if "=" not in spec and Path(spec).is_file():
        return load_model_file(DataLayout, spec, "column mapping")
    if "=" not in spec:
        raise UserError(f"--columns: {spec!r} is neither a file nor ROLE=COLUMN pairs; e.g. --columns "
                        "prompt=Q,response=A (roles: " + ", ".join(ColumnMap.model_fields) + ")")
    columns: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        role, sep, column = (x.strip() for x in part.partition("="))
        if not sep or not role or not column:
            raise UserError(f"--columns: `{part}` is not ROLE=COLUMN (e.g. prompt=Q)")
        columns[role] = column
    return validate(DataLayout, {"columns": columns}, "--columns")


# ---- from the mapping to a Layout -------------------------------------------------------------------------------

def mapped_format(columns: ColumnMap) -> str:
    given = columns.given()
    if "chosen" in given:
        return "dpo"
    if "kto_tag" in given:
        return "kto"
    if "messages" in given:
        return "sharegpt"
    if "text" in given:
        return "text"
    return "alpaca" if {"query", "system", "history"} & set(given) else "prompt_completion"


_TARGETS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output"},
    "prompt_completion": {"prompt": "prompt", "response": "completion"},
    "kto": {"prompt": "prompt", "response": "completion", "kto_tag": "label", "messages": "conversations"},
    "dpo": {"prompt": "prompt", "query": "input", "messages": "conversations"},
    "sharegpt": {"messages": "conversations"},
}


def layout_from(columns: ColumnMap, tags: TagMap | None, origin: str, objs: list[Any]) -> Layout:
    """The user's mapping as a Layout, checked against the first records: a mapped column that no record has is an
    error naming the columns there are."""
    given = columns.given()
    fmt = mapped_format(columns)
    targets = _TARGETS.get(fmt, {})
    if fmt == "dpo" and "query" in given:
        targets = {**targets, "prompt": "instruction"}
    pairs = tuple((targets.get(role, role), col) for role, col in given.items())
    seen = {k for o in objs if isinstance(o, dict) for k in o}
    missing = [(role, col) for role, col in given.items() if col not in seen]
    if objs and missing:
        role, col = missing[0]
        close = [k for k in seen if k.lower() == col.lower()]
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise UserError(f"{origin}: column `{col}` (mapped to {role}) is in none of the first {len(objs)} records; "
                        f"their columns are {sorted(seen)[:20]}{hint}")
    turns = _turn_map(tags, objs, given.get("messages"))
    return Layout(fmt, pairs, origin, turns)


def _turn_map(tags: TagMap | None, objs: list[Any], key: str | None) -> tuple | None:
    """How to rewrite each turn: from the user's tags, else detected from the first records' turns (None when they
    are already {from, value} or {role, content})."""
    if key is None:
        return None
    sample = next((t for o in objs if isinstance(o, dict) and isinstance(o.get(key), list)
                   for t in o[key] if isinstance(t, dict)), None)
    found = _turn_keys(sample) if sample else None
    t = tags or TagMap()
    role_key = t.role_tag or (found[0] if found else None)
    content_key = t.content_tag or (found[1] if found else None)
    roles = tuple((getattr(t, f"{name}_tag"), canon) for name, canon in ROLE_NAMES.items()
                  if getattr(t, f"{name}_tag") is not None)
    if role_key is None or content_key is None:
        return None
    from core.data.formats import SHAREGPT_ROLES

    same = all(SHAREGPT_ROLES.get(value.lower()) == SHAREGPT_ROLES[canon] for value, canon in roles)
    if (role_key, content_key) in (("from", "value"), ("role", "content")) and same:
        return None  # the turns read as they are (tool calls and all)
    return role_key, content_key, roles


# ---- the layouts people publish, recognised --------------------------------------------------------------------

INSTRUCTION_KEYS = ("instruction", "instructions")
PROMPT_LIKE = ("prompt", "question", "query", "problem", "input", "inputs", "request", "human", "user", "q",
               "source", "src", "context_question")
CONTEXT_LIKE = ("input", "context", "passage", "document", "knowledge", "background", "reference")
RESPONSE_LIKE = ("output", "response", "answer", "completion", "solution", "target", "targets", "outputs",
                 "assistant", "gpt", "bot", "reply", "a", "tgt", "answers")
SYSTEM_LIKE = ("system", "system_prompt", "system_message")
CONVERSATION_LIKE = ("conversation", "conversations", "messages", "dialog", "dialogue", "chat", "turns",
                     "utterances", "text", "data")
TURN_ROLE_KEYS = ("from", "role", "speaker", "author", "sender")
TURN_CONTENT_KEYS = ("value", "content", "text", "message", "utterance", "msg")


def _turn_keys(turn: dict) -> tuple[str, str] | None:
    role = next((k for k in TURN_ROLE_KEYS if isinstance(turn.get(k), str)), None)
    content = next((k for k in TURN_CONTENT_KEYS if k in turn and k != role), None)
    return (role, content) if role and content else None


def _first(obj: dict, lowered: dict[str, str], names: tuple[str, ...], skip: set[str]) -> str | None:
    """The record's key (any case) for the first of `names` it has with a text value."""
    for n in names:
        k = lowered.get(n)
        if k is not None and k not in skip and (obj[k] is None or isinstance(obj[k], str)):
            return k
    return None


def infer_layout(obj: Any) -> tuple[str, tuple[tuple[str, str], ...], tuple | None] | None:
    """A record of a published layout the canonical readers would misread: (format, pairs, turn keys); None for a
    record the canonical readers read as it is (or one nothing here recognises)."""
    if not isinstance(obj, dict) or not obj:
        return None
    lowered = {k.lower(): k for k in obj if isinstance(k, str)}
    conv = _conversation_layout(obj, lowered)
    if conv is not None:
        return conv
    if any(k in obj for k in ("chosen", "rejected", "preferred_output", "messages", "conversations")):
        return None
    return _instruction_layout(obj, lowered)


def _conversation_layout(obj: dict, lowered: dict[str, str]) -> tuple | None:
    for name in CONVERSATION_LIKE:
        key = lowered.get(name)
        turns = obj.get(key) if key else None
        if isinstance(turns, list) and len(turns) >= 2 and name != "text" and all(isinstance(t, str) for t in turns):
            return "sharegpt", ((("conversations", key),)), (ALTERNATING, "", ())
        if not (isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns[:4])):
            continue
        keys = _turn_keys(turns[0])
        if keys is None:
            continue
        canonical = keys in (("from", "value"), ("role", "content"))
        if canonical and key in ("conversations", "messages"):
            return None  # sharegpt / OpenAI chat as they are
        target = "messages" if keys == ("role", "content") else "conversations"
        pairs = [(target, key)]
        system = _first(obj, lowered, SYSTEM_LIKE, {key})
        if system:
            pairs.append(("system", system))
        tools = lowered.get("tools") or lowered.get("functions")
        if tools and obj.get(tools):
            pairs.append(("tools", tools))
        fmt = "openai" if target == "messages" else "sharegpt"
        return fmt, tuple(pairs), None if canonical else (keys[0], keys[1], ())
    return None


def _instruction_layout(obj: dict, lowered: dict[str, str]) -> tuple | None:
    instruction = _first(obj, lowered, INSTRUCTION_KEYS, set())
    # the context alone is the prompt where nothing else is (mental_health_counseling_conversations: Context/Response)
    prompt = instruction or _first(obj, lowered, PROMPT_LIKE, set()) or _first(obj, lowered, CONTEXT_LIKE, set())
    if prompt is None:
        return None
    response = _first(obj, lowered, RESPONSE_LIKE, {prompt})
    if response is None:
        return None
    context = _first(obj, lowered, CONTEXT_LIKE, {prompt, response})
    system = _first(obj, lowered, SYSTEM_LIKE, {prompt, response})
    if instruction == "instruction" and response == "output" and context in (None, "input"):
        return None  # alpaca as it is
    if context is None and system is None and prompt in ("prompt", "question", "query") and \
            response in ("completion", "response", "answer"):
        return None  # prompt/completion as it is
    pairs = [("instruction", prompt), ("output", response)]
    if context:
        pairs.insert(1, ("input", context))
    if system:
        pairs.insert(0, ("system", system))
    history = lowered.get("history")
    if history and isinstance(obj[history], list):
        pairs.append(("history", history))
    return "alpaca", tuple(pairs), None


def majority_layout(objs: list[Any]) -> tuple[str, tuple, tuple | None, int] | None:
    """The most common published layout among the first records, with how many have it; None when most records
    are read as they are."""
    shapes = Counter(infer_layout(o) for o in objs)
    if not shapes:
        return None
    shape, n = shapes.most_common(1)[0]
    if shape is None:
        return None
    return (*shape, n)


def inferred_reason(fmt: str, pairs: tuple, turns: tuple | None) -> str:
    src = dict(pairs)
    if fmt == "alpaca":
        parts = [f"`{src['instruction']}` (the instruction)"]
        if "input" in src:
            parts.append(f"`{src['input']}` (its input or context)")
        parts.append(f"`{src['output']}` (the answer)")
        if "system" in src:
            parts.insert(0, f"`{src['system']}` (the system prompt)")
        return ", ".join(parts) + " (an alpaca-style layout)"
    key = src.get("conversations") or src.get("messages")
    how = f" with {{{turns[0]}, {turns[1]}}} turns" if turns else ""
    if turns and turns[0] == ALTERNATING:
        how = " as alternating strings, the user's first"
    return f"a conversation in `{key}`{how} ({'OpenAI chat' if fmt == 'openai' else 'sharegpt'} style)"
