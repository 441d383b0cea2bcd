"""Dataset formats → one normalised shape (a list of role/content messages).

Supervised formats: alpaca (instruction/input/output, optional system, history), sharegpt (conversations with
from/value, optional system, tools), OpenAI chat (messages with role/content, typed content parts, tool_calls,
weight), prompt/completion (also question/answer, query/response) and plain text.
Preference formats: DPO-style pairs (`prompt` | `conversations` | `messages` | alpaca fields, with `chosen` and
`rejected`; Anthropic-HH transcripts), OpenAI preference (`input`, `preferred_output`, `non_preferred_output`)
and KTO (a conversation or prompt/completion with a boolean `label`)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SFT_FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion", "text")
PREFERENCE_FORMATS = ("dpo", "openai_preference", "kto")
FORMATS = SFT_FORMATS + PREFERENCE_FORMATS
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool", "tool": "tool", "function": "tool",
                  "bot": "assistant", "model": "assistant", "chatgpt": "assistant", "prompter": "user", "ai": "assistant",
                  "char": "assistant", "ipython": "tool"}
OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
PROMPT_KEYS = ("prompt", "question", "query")
COMPLETION_KEYS = ("completion", "response", "answer")
KTO_LABEL_KEYS = ("label", "kto_tag")
TEXT_PART_TYPES = (None, "text", "input_text", "output_text")


@dataclass(slots=True)
class Message:
    role: str
    content: str  # for a tool call without text: the calls as JSON (what the audit reads)
    trainable: bool = True  # OpenAI `weight: 0` turns a message's training off
    tool_call: bool = False
    tool_calls: list | None = None  # structured calls, [{"type": "function", "function": {"name", "arguments"}}]
    text: str | None = None  # the message's own text when `content` stands in for tool calls
    name: str | None = None  # the tool a `tool` message answers
    reasoning: str | None = None  # an assistant's separate reasoning field (`reasoning_content`, `reasoning`, `thinking`)
    tool_call_id: str | None = None  # the call a `tool` message answers (templates such as Mistral's render it)


@dataclass(slots=True)
class Sample:
    messages: list[Message]
    has_tools: bool = False
    tools: list | None = None  # the tool schemas offered (JSON Schema functions), for chat templates
    instruction: str = ""  # the task statement (alpaca instruction, else the first user message)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (code, message)
    rejected: list[Message] | None = None  # preference pairs: the rejected continuation (after the shared prompt)
    prompt_len: int = 0  # preference pairs: how many of `messages` are the shared prompt
    label: bool | None = None  # KTO: desirable (True) or undesirable (False)

    @property
    def prompt(self) -> str:
        """Everything before the last assistant message."""
        last = self.last_assistant()
        msgs = self.messages if last is None else self.messages[:last]
        return "\n".join(m.content for m in msgs)

    @property
    def answer(self) -> str:
        last = self.last_assistant()
        return "" if last is None else self.messages[last].content

    @property
    def context(self) -> str:
        """What the answer responds to: the shared prompt of a preference pair, else `prompt`."""
        if self.rejected is None:
            return self.prompt
        return "\n".join(m.content for m in self.messages[:self.prompt_len])

    def last_assistant(self) -> int | None:
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                return i
        return None

    def rejected_sample(self) -> Sample | None:
        """The rejected side as a sample of its own (shared prompt + rejected continuation)."""
        if self.rejected is None:
            return None
        return Sample(self.messages[:self.prompt_len] + self.rejected, self.has_tools, self.instruction)


def kind_of(fmt: str) -> str:
    """`sft`, `preference` or `text`: what a format trains."""
    return "preference" if fmt in PREFERENCE_FORMATS else ("text" if fmt == "text" else "sft")


def _has_bool_label(obj: dict) -> bool:
    return any(isinstance(obj.get(k), bool) for k in KTO_LABEL_KEYS)


def detect_format(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    if "input" in obj and ("preferred_output" in obj or "non_preferred_output" in obj):
        return "openai_preference"
    if "chosen" in obj and "rejected" in obj:
        return "dpo"
    if _has_bool_label(obj) and ("messages" in obj or "conversations" in obj or
                                 ("prompt" in obj and "completion" in obj)):
        return "kto"
    if "conversations" in obj:
        return "sharegpt"
    if "messages" in obj:
        return "openai"
    if "instruction" in obj or ("output" in obj and "input" in obj):
        return "alpaca"
    if any(k in obj for k in PROMPT_KEYS) and any(k in obj for k in COMPLETION_KEYS):
        return "prompt_completion"
    if "text" in obj or "content" in obj:
        return "text"
    return None


def format_reason(fmt: str) -> str:
    """Why a record is taken for `fmt`: the keys that decide it."""
    return {
        "openai_preference": "`input` with `preferred_output` / `non_preferred_output` (OpenAI preference format)",
        "dpo": "`chosen` and `rejected` (a preference pair, DPO/ORPO style)",
        "kto": "a conversation or prompt/completion with a boolean `label` (KTO, unpaired preference)",
        "sharegpt": "`conversations` (sharegpt)",
        "openai": "`messages` (OpenAI chat)",
        "alpaca": "`instruction` / `input` / `output` (alpaca)",
        "prompt_completion": "a prompt key (prompt, question, query) and a completion key (completion, response, answer)",
        "text": "a single `text` field (plain text, continued pre-training)",
    }.get(fmt, fmt)


def majority_format(objs: list[Any]) -> str | None:
    counts = Counter(f for f in map(detect_format, objs) if f)
    return counts.most_common(1)[0][0] if counts else None


def _text(value: Any, key: str, problems: list, required: bool = True) -> str:
    if value is None:
        if required:
            problems.append(("schema", f"missing field `{key}`"))
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        problems.append(("schema", f"`{key}` is a number, expected text"))
        return str(value)
    if isinstance(value, list):
        return _content(value, key, problems)
    problems.append(("schema", f"`{key}` is {type(value).__name__}, expected text"))
    return ""


# where chat datasets keep an assistant's reasoning apart from its answer (Qwen3 / DeepSeek API, OpenRouter, Claude)
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def _content(value: Any, key: str, problems: list) -> str:
    """Content may be a string, null (with tool_calls) or a list of typed parts: `{"type": "text", "text": ...}`
    (OpenAI) or `{"type": "text", "value": ...}` (LLaMA-Factory)."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        texts, other = [], 0
        for p in value:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, dict) and p.get("type") in TEXT_PART_TYPES and isinstance(
                    p.get("text", p.get("value", p.get("content"))), str):
                texts.append(p.get("text", p.get("value", p.get("content"))))
            else:
                other += 1
        if other:
            problems.append(("schema", f"`{key}` has {other} non-text part(s) (images, audio): only text is audited"))
        return "\n".join(texts)
    problems.append(("schema", f"`{key}` is {type(value).__name__}, expected text"))
    return ""


def normalise(obj: Any, fmt: str) -> Sample:
    problems: list[tuple[str, str]] = []
    if not isinstance(obj, dict):
        return Sample([], problems=[("schema", f"record is a JSON {type(obj).__name__}, expected an object")])
    reader = _READERS.get(fmt)
    if reader is None:
        text = _text(obj.get("text", obj.get("content")), "text", problems)
        return Sample([Message("assistant", text)], problems=problems)
    return reader(obj, problems)


def _prompt_completion(obj: dict, problems: list) -> Sample:
    pkey = next((k for k in PROMPT_KEYS if k in obj), "prompt")
    ckey = next((k for k in COMPLETION_KEYS if k in obj), "completion")
    prompt = _text(obj.get(pkey), pkey, problems)
    comp = _text(obj.get(ckey), ckey, problems)
    return Sample([Message("user", prompt), Message("assistant", comp)], instruction=prompt, problems=problems)


def _alpaca(obj: dict, problems: list) -> Sample:
    if "instruction" not in obj:
        problems.append(("schema", "missing field `instruction`"))
    msgs, instruction = _alpaca_prompt(obj, problems)
    out = _text(obj.get("output"), "output", problems)
    msgs.append(Message("assistant", out))
    return Sample(msgs, instruction=instruction, problems=problems)


def _alpaca_prompt(obj: dict, problems: list) -> tuple[list[Message], str]:
    """System, history and the user turn of an alpaca record (everything before the answer)."""
    instruction = _text(obj.get("instruction"), "instruction", problems, required=False)
    inp = _text(obj.get("input"), "input", problems, required=False)
    msgs: list[Message] = []
    system = _text(obj.get("system"), "system", problems, required=False)
    if system:
        msgs.append(Message("system", system))
    history = obj.get("history") or []
    if not isinstance(history, list):
        problems.append(("schema", "`history` must be a list of [instruction, response] pairs"))
        history = []
    for j, turn in enumerate(history):
        if not (isinstance(turn, list | tuple) and len(turn) == 2 and all(isinstance(x, str) for x in turn)):
            problems.append(("schema", f"`history[{j}]` must be a pair of strings [instruction, response]"))
            continue
        msgs += [Message("user", turn[0]), Message("assistant", turn[1])]
    msgs.append(Message("user", instruction + ("\n\n" + inp if inp.strip() else "")))
    return msgs, instruction


_NOT_JSON = object()


def _decoded(value: Any) -> Any:
    """A JSON string's value (datasets often store calls and schemas as strings); other values as they are;
    _NOT_JSON for a string that is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return _NOT_JSON


def tool_call(name: Any, arguments: Any) -> dict:
    """One call in the shape chat templates read: arguments as a mapping (JSON strings are parsed)."""
    parsed = _decoded(arguments)
    return {"type": "function", "function": {"name": name, "arguments": arguments if parsed is _NOT_JSON else parsed}}


def structured_calls(calls: Any) -> list | None:
    """OpenAI `tool_calls` / legacy `function_call`, or a sharegpt function_call value, as a list of calls."""
    calls = _decoded(calls)
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, list):
        return None
    out = []
    for c in calls:
        if not isinstance(c, dict):
            return None
        f = c.get("function", c)
        if not isinstance(f, dict) or not f.get("name"):
            return None
        out.append({**({"id": c["id"]} if "id" in c else {}), **tool_call(f["name"], f.get("arguments", {}))})
    return out


def tool_schemas(tools: Any) -> list | None:
    """Offered tools as the list of {"type": "function", "function": {...}} that templates' `tools` expects."""
    tools = _decoded(tools)
    if not isinstance(tools, list) or not tools:
        return None
    return [t if isinstance(t, dict) and t.get("type") == "function" else {"type": "function", "function": t}
            for t in tools if isinstance(t, dict)]


def _tools_present(tools: Any, problems: list) -> bool:
    if isinstance(tools, str) and tools.strip():
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            problems.append(("schema", f"`tools` is a string that is not valid JSON ({e.msg})"))
            return True
    return bool(tools)


def _turns(raw: Any, key: str, problems: list, shape: str = "{from, value} turns") -> list[Message]:
    """A list of sharegpt or OpenAI turns; `shape` names the expected items in the error."""
    if not isinstance(raw, list):
        problems.append(("schema", f"`{key}` must be a list of {shape}"))
        return []
    msgs = []
    for j, turn in enumerate(raw):
        if not isinstance(turn, dict):
            problems.append(("schema", f"`{key}[{j}]` is not an object"))
            continue
        plain = _plain_turn(turn)
        msg = plain if plain is not None else _turn(turn, f"{key}[{j}]", problems)
        if msg is not None:
            msgs.append(msg)
    return msgs


def _plain_turn(turn: dict) -> Message | None:
    """The common turn with text and nothing else, read directly: `{role, content}` with a chat role, or
    `{from, value}` with any sharegpt role but a function call. The same Message `_turn` makes of it, at a fraction
    of the cost (most turns are this); else None."""
    if len(turn) != 2:
        return None
    if "role" in turn:  # tool, developer and function turns are mapped by _openai_message
        role, content = turn["role"], turn.get("content")
        if role not in ("user", "assistant", "system"):
            return None
    else:
        who, content = turn.get("from"), turn.get("value")
        if type(who) is not str or who.lower() == "function_call":
            return None
        role = SHAREGPT_ROLES.get(who.lower())
    return Message(role, content) if role is not None and type(content) is str else None


def _turn(turn: dict, key: str, problems: list) -> Message | None:
    """One sharegpt ({from, value}) or OpenAI ({role, content}) turn."""
    if "role" in turn and "from" not in turn:
        return _openai_message(turn, key, problems)
    who = turn.get("from", turn.get("role"))
    value = _text(turn.get("value", turn.get("content")), f"{key}.value", problems)
    role = SHAREGPT_ROLES.get(str(who).lower()) if isinstance(who, str) else None
    if role is None:
        problems.append(("unknown_role", f"`{key}.from` is {who!r}; expected one of {sorted(SHAREGPT_ROLES)}"))
        return None
    if str(who).lower() == "function_call":
        calls = structured_calls(value)
        return Message(role, value, tool_call=True, tool_calls=calls, text="" if calls else None)
    return Message(role, value)


def _sharegpt(obj: dict, problems: list) -> Sample:
    msgs: list[Message] = []
    system = _text(obj.get("system"), "system", problems, required=False)
    if system:
        msgs.append(Message("system", system))
    has_tools = _tools_present(obj.get("tools"), problems)
    msgs += _turns(obj.get("conversations"), "conversations", problems)
    first_user = next((m.content for m in msgs if m.role == "user"), "")
    return Sample(msgs, has_tools=has_tools or any(m.tool_call for m in msgs), tools=tool_schemas(obj.get("tools")),
                  instruction=first_user, problems=problems)


def _openai_message(m: dict, key: str, problems: list) -> Message | None:
    role = m.get("role")
    if role not in OPENAI_ROLES and isinstance(role, str) and role.lower() in SHAREGPT_ROLES:
        role = SHAREGPT_ROLES[role.lower()]  # `prompter` (OpenAssistant), `human`, `gpt`, `bot` in a role field
    if role not in OPENAI_ROLES:
        problems.append(("unknown_role", f"`{key}.role` is {role!r}; expected one of {sorted(OPENAI_ROLES)}"))
        return None
    if "content" not in m and not m.get("tool_calls") and not m.get("function_call"):
        problems.append(("schema", f"`{key}` has no `content`"))
    content = _content(m.get("content"), f"{key}.content", problems)
    calls = m.get("tool_calls") or m.get("function_call")
    text = None
    if calls and not content:
        text, content = "", json.dumps(calls, ensure_ascii=False)
    weight = m.get("weight", 1)
    if weight not in (0, 1):
        problems.append(("schema", f"`{key}.weight` must be 0 or 1, got {weight!r}"))
    reasoning = next((m[k] for k in REASONING_KEYS if isinstance(m.get(k), str) and m[k].strip()), None)
    return Message("system" if role == "developer" else ("tool" if role == "function" else role),
                   content, trainable=weight != 0, tool_call=bool(calls),
                   tool_calls=structured_calls(calls) if calls else None, text=text,
                   name=m.get("name") if role in ("tool", "function") else None,
                   reasoning=reasoning if role == "assistant" else None,
                   tool_call_id=m["tool_call_id"] if role == "tool" and isinstance(m.get("tool_call_id"), str)
                   else None)


def _openai_messages(raw: Any, key: str, problems: list) -> list[Message]:
    return _turns(raw, key, problems, "{role, content} objects")


def _openai(obj: dict, problems: list) -> Sample:
    msgs = _openai_messages(obj.get("messages"), "messages", problems)
    has_tools = bool(obj.get("tools") or obj.get("functions")) or any(m.tool_call for m in msgs)
    first_user = next((x.content for x in msgs if x.role == "user"), "")
    return Sample(msgs, has_tools=has_tools, tools=tool_schemas(obj.get("tools") or obj.get("functions")),
                  instruction=first_user, problems=problems)


# ---- preference data -------------------------------------------------------------------------------------------

_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant|H|A):\s?")


def _hh_transcript(text: str) -> list[Message] | None:
    """Anthropic HH style `\\n\\nHuman: ...\\n\\nAssistant: ...` transcripts → messages (None if not one)."""
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    roles = {"Human": "user", "H": "user", "Assistant": "assistant", "A": "assistant"}
    return [Message(roles[parts[i]], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def _side(value: Any, key: str, problems: list) -> list[Message]:
    """One side of a pair: a string (the answer), one turn, or a list of turns."""
    if value is None:
        problems.append(("schema", f"missing field `{key}`"))
        return []
    if isinstance(value, str):
        return _hh_transcript(value) or [Message("assistant", value)]
    if isinstance(value, dict):
        msg = _turn(value, key, problems)
        return [msg] if msg else []
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):  # LLaMA-Factory's older list-of-strings form
            return [Message("assistant", v) for v in value]
        return _openai_messages(value, key, problems)
    problems.append(("schema", f"`{key}` is {type(value).__name__}, expected text or a list of turns"))
    return []


def _prompt_side(value: Any, problems: list) -> list[Message]:
    """The `prompt` of a pair or KTO record: a plain string is the user's turn, a list keeps its roles."""
    prompt = _side(value, "prompt", problems)
    return [Message("user" if m.role == "assistant" and len(prompt) == 1 else m.role, m.content) for m in prompt]


def _common_prefix(a: list[Message], b: list[Message]) -> int:
    n = 0
    while n < min(len(a), len(b)) - 1 and (a[n].role, a[n].content) == (b[n].role, b[n].content):
        n += 1
    return n


def _pair(prompt: list[Message], chosen: list[Message], rejected: list[Message], problems: list,
          has_tools: bool = False) -> Sample:
    """A preference pair. When both sides carry the whole conversation (UltraFeedback, Anthropic HH), the shared
    turns at their start are the prompt."""
    if not prompt and chosen and rejected:
        n = _common_prefix(chosen, rejected)
        prompt, chosen, rejected = chosen[:n], chosen[n:], rejected[n:]
    elif prompt and len(chosen) > 1 and [(m.role, m.content) for m in chosen[:len(prompt)]] == \
            [(m.role, m.content) for m in prompt]:
        chosen, rejected = chosen[len(prompt):], rejected[len(prompt):]  # sides repeat the prompt
    first_user = next((m.content for m in prompt if m.role == "user"), "")
    return Sample(prompt + chosen, has_tools=has_tools, instruction=first_user, problems=problems,
                  rejected=rejected, prompt_len=len(prompt))


def _dpo(obj: dict, problems: list) -> Sample:
    if "conversations" in obj:
        prompt = _turns(obj["conversations"], "conversations", problems)
    elif "messages" in obj:
        prompt = _openai_messages(obj["messages"], "messages", problems)
    elif "instruction" in obj:
        prompt, _ = _alpaca_prompt(obj, problems)
    elif "prompt" in obj:
        prompt = _prompt_side(obj["prompt"], problems)
    elif (key := next((k for k in PROMPT_KEYS[1:] + ("input",) if isinstance(obj.get(k), str)), None)) is not None:
        prompt = [Message("user", obj[key])]  # question / chosen / rejected (Intel orca_dpo_pairs), query, input
    else:
        prompt = []
    system = obj.get("system")
    if isinstance(system, str) and system and not any(m.role == "system" for m in prompt):
        prompt.insert(0, Message("system", system))
    chosen = _side(obj.get("chosen"), "chosen", problems)
    rejected = _side(obj.get("rejected"), "rejected", problems)
    return _pair(prompt, chosen, rejected, problems, _tools_present(obj.get("tools"), problems))


def _openai_preference(obj: dict, problems: list) -> Sample:
    inp = obj.get("input")
    if not isinstance(inp, dict):
        problems.append(("schema", "`input` must be an object with `messages`"))
        inp = {}
    prompt = _openai_messages(inp.get("messages"), "input.messages", problems)
    chosen = _side(obj.get("preferred_output"), "preferred_output", problems)
    rejected = _side(obj.get("non_preferred_output"), "non_preferred_output", problems)
    return _pair(prompt, chosen, rejected, problems, bool(inp.get("tools")))


def _kto(obj: dict, problems: list) -> Sample:
    if "messages" in obj or "conversations" in obj:
        s = _sharegpt(obj, problems) if "conversations" in obj else _openai(obj, problems)
    else:
        prompt = _prompt_side(obj.get("prompt"), problems)
        answer = _side(obj.get("completion"), "completion", problems)
        first_user = next((m.content for m in prompt if m.role == "user"), "")
        s = Sample(prompt + answer, instruction=first_user, problems=problems)
    label = next((obj[k] for k in KTO_LABEL_KEYS if k in obj), None)
    if not isinstance(label, bool):
        problems.append(("schema", f"`label` must be true or false, got {label!r}"))
    s.label = label if isinstance(label, bool) else None
    return s


_READERS = {"alpaca": _alpaca, "sharegpt": _sharegpt, "openai": _openai, "prompt_completion": _prompt_completion,
            "dpo": _dpo, "openai_preference": _openai_preference, "kto": _kto}
