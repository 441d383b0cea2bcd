"""Which characters of a rendered conversation are trained: each trainable assistant reply plus the token the
model emits to end its turn, nothing else (no role header, no `<think></think>` the template adds, no newline
after the end token, no second end-of-text token).

The template's own turns are found in one of three ways, best first:
1. the template has `{% generation %}` markers (its own, or TRL's `*_training` variant of a known family's
   template, `trl.chat_template_utils.get_training_chat_template`, which also makes it prefix-preserving): the
   marked character ranges, from transformers' renderer;
2. otherwise the conversation is rendered up to each assistant turn (prefix-stable templates);
3. otherwise each reply is found verbatim, in order, in the whole rendering (templates such as Mistral's that
   re-render earlier turns); a template that does not render a reply verbatim is refused with the reason.
Within a turn the reply is located verbatim, and the trained end is the first end-of-turn token after it (the
tokenizer's EOS, the model's generation stop tokens, or a known family end marker); if the template writes none
(GLM-style turns that end with the next role token), the tokenizer's EOS is inserted after the reply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import UserError

# end-of-turn markers of the families trl ships templates for (Llama 3, ChatML/Qwen/LFM2, Gemma, Phi-3, gpt-oss,
# DeepSeek, Cohere, GLM, Mistral/Llama 2)
END_OF_TURN = ("<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|return|>", "<|call|>", "<|eot|>",
               "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>", "<|user|>", "<|observation|>", "</s>",
               "<|endoftext|>", "<turn|>", "<end_of_utterance>")
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")


THINK_BLOCK = re.compile(r"\s*<think>(.*?)</think>\s*", re.S)
REASONING_MODES = ("train", "drop")


@dataclass(frozen=True)
class Reasoning:
    """An assistant reply that reasons first: `block` is the reasoning as written before the answer
    (`<think>…</think>` and the whitespace after it), `text` the reasoning inside it, `answer` the rest."""
    block: str
    text: str
    answer: str


def split_reasoning(content: str, separate: str | None = None) -> Reasoning | None:
    """The reasoning of a reply: a separate field (`reasoning_content`), else a leading `<think>…</think>`."""
    if separate and separate.strip():
        return Reasoning(f"<think>\n{separate.strip()}\n</think>\n\n", separate.strip(), content)
    m = THINK_BLOCK.match(content or "")
    if m is None or not m.group(1).strip():
        return None
    return Reasoning(content[: m.end()], m.group(1).strip(), content[m.end():])


NOT_PREFIX_STABLE = ("the chat template is not prefix-stable and does not render an assistant reply verbatim, so "
                     "assistant-only loss cannot be placed; name another data.chat_template (one with "
                     "{% generation %} markers) or set data.assistant_only_loss: false")
REWRITES_REPLIES = ("the chat template does not render the assistant replies as they are written (it rewrites or "
                    "drops their text), so their loss cannot be placed; use another data.chat_template or set "
                    "data.assistant_only_loss: false")


class NotVerbatim(Exception):
    """A rendering in which an assistant reply cannot be found as written."""


@dataclass
class TemplatePlan:
    template: str
    mode: str  # "markers" | "trl_training" | "prefix"
    family: str | None = None  # the trl family whose training template is used


def generation_eos_ids(model_path: str | None) -> list[int]:
    """The model's own stop token ids: generation_config.json `eos_token_id` (an id or a list; none when the file
    is missing or unreadable)."""
    path = Path(model_path) / "generation_config.json" if model_path else None
    if path is None or not path.is_file():
        return []
    try:
        ids = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError):
        return []
    return [i for i in (ids if isinstance(ids, list) else [ids]) if isinstance(i, int)]


def _generation_stop_tokens(model_path: str | None, tokenizer) -> set[str]:
    """The model's own stop tokens, as text."""
    tokens = (tokenizer.convert_ids_to_tokens(i) for i in generation_eos_ids(model_path))
    return {t for t in tokens if isinstance(t, str)}


def plan_template(tokenizer) -> TemplatePlan:
    """The template to render with, and how its assistant turns are found."""
    template = tokenizer.chat_template
    if not isinstance(template, str) or not template:
        raise UserError("the tokenizer has no chat template: set data.chat_template (inline or a .jinja path)")
    if GENERATION_MARKER.search(template):
        return TemplatePlan(template, "markers")
    try:
        from trl.chat_template_utils import get_training_chat_template

        training = get_training_chat_template(tokenizer)
    except (ImportError, ValueError, TypeError):
        training = None
    if training:
        return TemplatePlan(training, "trl_training", _family(training))
    return TemplatePlan(template, "prefix")


def _family(training_template: str) -> str | None:
    try:
        import trl
    except ImportError:
        return None
    for f in (Path(trl.__file__).parent / "chat_templates").glob("*_training.jinja"):
        if f.read_text(encoding="utf-8") == training_template:
            return f.name.removesuffix("_training.jinja")
    return None


INTERNAL_KEYS = ("train", "tools", "reasoning", "restore_reasoning")  # the loader's notes, not for the template


def split_tools(msgs: list[dict]) -> tuple[list[dict], list | None]:
    """(the messages as a template reads them, the record's tool schemas): the loader carries the tools on a
    message and marks untrained messages with `train`; neither is for the template."""
    tools = next((m["tools"] for m in msgs if m.get("tools")), None)
    return [{k: v for k, v in m.items() if k not in INTERNAL_KEYS} for m in msgs], tools


def answer_only(m: dict, hand_over: bool) -> dict:
    """A reasoning reply reduced to its answer; `hand_over` passes the reasoning in `reasoning_content` (the field
    Qwen3, GLM and DeepSeek templates render themselves)."""
    r = m.get("reasoning")
    if not isinstance(r, Reasoning):
        return m
    out = {**{k: v for k, v in m.items() if k != "reasoning"}, "content": r.answer}
    if hand_over:
        out["reasoning_content"] = r.text
        out["restore_reasoning"] = r
    return out


def _calls_as_text(m: dict) -> dict:
    """A tool-call message for a template that does not render calls: the calls as JSON text."""
    return {**{k: v for k, v in m.items() if k != "tool_calls"},
            "content": json.dumps(m["tool_calls"], ensure_ascii=False)}


def _as_parts(m: dict) -> dict:
    """A message with its text as one typed part, for templates that iterate content parts."""
    content = m.get("content")
    return {**m, "content": [{"type": "text", "text": content}]} if isinstance(content, str) else m


class SpanFinder:
    """Character spans to train in a rendered conversation."""

    def __init__(self, tokenizer, model_path: str | None = None, reasoning: str = "train") -> None:
        if reasoning not in REASONING_MODES:
            raise ValueError(f"reasoning must be one of {REASONING_MODES}")
        self.tok = tokenizer
        self.reasoning = reasoning
        self.reasoning_records = 0  # conversations with reasoning replies
        self.reasoning_restored = 0  # ... whose reasoning the template drops and tunewise rendered back
        self.plan = plan_template(tokenizer)
        self.eos = tokenizer.eos_token or ""
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        specials |= set(getattr(tokenizer, "added_tokens_encoder", {}) or {})
        self.specials = sorted((s for s in specials if s), key=len, reverse=True)
        self.stops = set(END_OF_TURN) | {self.eos} | _generation_stop_tokens(model_path, tokenizer)

    # ---- rendering -----------------------------------------------------------------------------------------

    def _kwargs(self) -> dict:
        return {k: v for k, v in (self.tok.special_tokens_map or {}).items() if isinstance(v, str)}

    def render(self, msgs: list[dict], add_generation_prompt: bool = False, tools=None) -> str:
        return self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt,
                                            chat_template=self.plan.template, tools=tools)

    def _marked(self, msgs: list[dict], tools) -> tuple[str, list[tuple[int, int]]]:
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered, indices = render_jinja_template(conversations=[msgs], tools=tools, chat_template=self.plan.template,
                                                  return_assistant_tokens_mask=True, **self._kwargs())
        text, merged = rendered[0], []
        for a, b in sorted(tuple(x) for x in indices[0]):
            # a marked block right after another (Phi-3 marks the closing EOS on its own) belongs to the same turn
            if merged and not text[merged[-1][1]:a].strip():
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return text, merged

    def _prefix_turns(self, msgs: list[dict], tools) -> tuple[str, list[tuple[int, int]]]:
        text = self.render(msgs, tools=tools)
        turns = []
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            before = self.render(msgs[:i], add_generation_prompt=True, tools=tools) if i else ""
            upto = self.render(msgs[: i + 1], tools=tools)
            if not (text.startswith(upto) and upto.startswith(before)):
                return self._anchored_turns(text, msgs)
            turns.append((len(before), len(upto)))
        return text, turns

    def _anchored_turns(self, text: str, msgs: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        """Templates that re-render earlier turns (Mistral moves the system text into the last user turn): find
        each reply verbatim in the whole rendering, in order, each after the previous one and after the user
        message before it."""
        turns, cursor = [], 0
        for m in msgs:
            content = (m.get("content") or "").strip()
            if m["role"] != "assistant":
                # a user turn precedes the next reply; the system text may have moved anywhere, so it sets nothing
                if m["role"] == "user" and content and (at := text.find(content, cursor)) >= 0:
                    cursor = at + len(content)
                continue
            at = text.find(content, cursor) if content else -1
            if at < 0:
                raise NotVerbatim(NOT_PREFIX_STABLE)
            turns.append((at, at + len(content)))
            cursor = at + len(content)
        return text, turns

    # ---- the reply and its end token --------------------------------------------------------------------------

    def _special_at(self, text: str, pos: int) -> str | None:
        for s in self.specials:
            if text.startswith(s, pos):
                return s
        return None

    def _trim(self, text: str, turn: tuple[int, int], content: str) -> tuple[str, tuple[int, int]]:
        """(text, span): the reply within the turn and the end-of-turn token after it (inserted when missing)."""
        a, b = turn
        start = text.find(content, a, max(b, a + len(content))) if content else -1
        if content and start < 0 and content.strip():
            content = content.strip()
            start = text.find(content, a, max(b, a + len(content)))
        if start < 0:  # a tool call (no text), or a reply the template rewrote: the turn up to its end token
            start = a + len(text[a:b]) - len(text[a:b].lstrip())
            ends = [(at, s) for s in self.stops if s and (at := text.find(s, start, b)) >= 0]
            if not ends:
                return text, (start, b)
            at, stop = min(ends)
            return text, (start, at + len(stop))
        pos = start + len(content)
        while (tok := self._special_at(text, pos)) is not None:
            pos += len(tok)
            if tok in self.stops:
                return text, (start, pos)
        if not self.eos:
            return text, (start, pos)
        # no end-of-turn token after the reply (the turn ends with the next role's token, or nothing)
        text = text[:pos] + self.eos + text[pos:]
        return text, (start, pos + len(self.eos))

    @staticmethod
    def _replies_rendered(text: str, turns: list[tuple[int, int]], plain: list[dict]) -> bool:
        """Every assistant reply with text appears in its turn (at least once stripped of outer whitespace)."""
        replies = [m for m in plain if m["role"] == "assistant"]
        return all(not (m.get("content") or "").strip() or (m["content"].strip() in text[a:b] or
                                                            m["content"].strip() in text[a:])
                   for m, (a, b) in zip(replies, turns, strict=False))

    def _turns(self, plain: list[dict], tools) -> tuple[str, list[tuple[int, int]]]:
        return self._prefix_turns(plain, tools) if self.plan.mode == "prefix" else self._marked(plain, tools)

    def _render(self, msgs: list[dict]) -> tuple[str, list[tuple[int, int]], list[dict], str | None]:
        """(text, assistant turns, the messages as rendered, why the replies cannot be placed or None)."""
        try:
            return self._render_verbatim(msgs)
        except NotVerbatim as e:
            return "", [], msgs, str(e)

    def _render_verbatim(self, msgs: list[dict]) -> tuple[str, list[tuple[int, int]], list[dict], str | None]:
        from jinja2 import TemplateError

        plain, tools = split_tools(msgs)
        try:
            text, turns = self._turns(plain, tools)
        except TemplateError:  # LLaVA-NeXT-style templates accept content only as typed parts
            if not any(isinstance(m.get("content"), str) for m in plain):
                raise
            text, turns = self._turns([_as_parts(m) for m in plain], tools)
        turn_of = dict(zip((i for i, m in enumerate(plain) if m["role"] == "assistant"), turns, strict=False))
        dropped = [i for i, m in enumerate(plain) if m.get("tool_calls") and i in turn_of and not all(
            c["function"]["name"] in text[turn_of[i][0]:turn_of[i][1]] for c in m["tool_calls"])]
        if dropped:  # the template does not render tool calls (Llama 3.0, Phi-3): train them as JSON text instead
            msgs = [_calls_as_text(m) if i in dropped else m for i, m in enumerate(msgs)]
            plain, tools = split_tools(msgs)
            text, turns = self._turns(plain, tools)
        if self._replies_rendered(text, turns, plain):
            return text, turns, msgs, None
        # multimodal templates (SmolVLM, Idefics3) read `content` as a list of typed parts
        try:
            text, turns = self._turns([_as_parts(m) for m in plain], tools)
        except (TemplateError, TypeError):  # a template that concatenates content as a string
            return text, turns, msgs, REWRITES_REPLIES
        return text, turns, msgs, None if self._replies_rendered(text, turns, plain) else REWRITES_REPLIES

    def spans(self, msgs: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        has_reasoning = any(isinstance(m.get("reasoning"), Reasoning) for m in msgs)
        self.reasoning_records += has_reasoning
        if has_reasoning and self.reasoning == "drop":
            msgs = [answer_only(m, hand_over=False) for m in msgs]
        text, turns, msgs, why = self._render(msgs)
        if why and has_reasoning and self.reasoning == "train":
            # the template strips the reasoning (DeepSeek-R1, Qwen3 before the last user turn): render the answers
            # (reasoning handed over as `reasoning_content`) and put each missing reasoning block back before its answer
            text, turns, msgs, why = self._render([answer_only(m, hand_over=True) for m in msgs])
            self.reasoning_restored += why is None
        if why:
            raise UserError(why)
        assistants = [m for m in msgs if m["role"] == "assistant"]
        if len(turns) != len(assistants):
            raise UserError(f"the chat template marks {len(turns)} assistant turn(s) in a conversation with "
                            f"{len(assistants)}: it drops or merges assistant messages, so their loss cannot be "
                            "placed; use another data.chat_template")
        spans = []
        shift = 0
        for m, (a, b) in zip(assistants, turns, strict=True):
            before = len(text)
            a, b = a + shift, b + shift
            start = None
            if isinstance(m.get("restore_reasoning"), Reasoning):
                text, start, a, b = self._restore_reasoning(text, (a, b), m["restore_reasoning"])
            text, span = self._trim(text, (a, b), m.get("content") or "")
            shift += len(text) - before
            if m.get("train", True):
                spans.append((span[0] if start is None else min(start, span[0]), span[1]))
        return text, spans

    @staticmethod
    def _restore_reasoning(text: str, turn: tuple[int, int], r: Reasoning) -> tuple[str, int, int, int]:
        """(text, where the trained reasoning starts, where its answer is looked for, the turn's new end): the
        reasoning as the template rendered it, or, where it dropped it, the block as written inserted right before
        the answer (less any part the template already wrote there, such as a generation prompt ending in
        `<think>`)."""
        a, b = turn
        answer = r.answer.strip()
        at = text.rfind(answer, a, b) if answer else -1
        at = at if at >= 0 else b
        inside = text.find(r.text, a, at)
        if inside >= 0:  # rendered by the template itself (reasoning_content): train from its opening tag
            tag = text.rfind("<think>", a, inside)
            return text, tag if tag >= 0 else inside, inside + len(r.text), b
        block = r.block if answer else r.block.rstrip()
        k = next((k for k in range(len(block), 0, -1) if text[a:at].endswith(block[:k])), 0)
        insert = block[k:]
        return text[:at] + insert + text[at:], at, at + len(insert), b + len(insert)
