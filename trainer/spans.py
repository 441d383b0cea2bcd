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

from core.errors import UserError

# end-of-turn markers of the families trl ships templates for (Llama 3, ChatML/Qwen/LFM2, Gemma, Phi-3, gpt-oss,
# DeepSeek, Cohere, GLM, Mistral/Llama 2)
END_OF_TURN = ("<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|return|>", "<|call|>", "<|eot|>",
               "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>", "<|user|>", "<|observation|>", "</s>",
               "<|endoftext|>", "<turn|>", "<end_of_utterance>")
GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
# a special token that closes something (`<|assistant_end|>`, `</assistant>`, `<|close|>`, `<|message_sep|>`): where
# the tokenizer's EOS does not follow a reply, the template's own closing markers right after it end the turn
END_LIKE = re.compile(r"end|eos|eot|close|sep\b|sep\||^</|^\[/", re.I)
# the fields templates read an assistant's reasoning from (Qwen3, GLM, DeepSeek: reasoning_content; gpt-oss:
# thinking; Nemotron, Apriel, Kimi K3, MiniMax: reasoning)
REASONING_FIELDS = {"reasoning_content": re.compile(r"reasoning_content"),
                    "thinking": re.compile(r"[.\[]\s*['\"]?thinking\b"),
                    "reasoning": re.compile(r"[.\[]\s*['\"]?reasoning\b(?!_)")}
# stands in for a reply when finding where a template renders a tool call (control characters no template writes)
SENTINEL = "\x02tunewise\x03"


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


class TemplateFailure(Exception):
    """The chat template raised while rendering a conversation (a jinja error, or a TypeError and the like from
    the template's own code): the record cannot be rendered as it is."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(f"{type(error).__name__}: {error}")


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


def answer_only(m: dict, hand_over: bool, fields: tuple[str, ...] = ("reasoning_content",)) -> dict:
    """A reasoning reply reduced to its answer; `hand_over` passes the reasoning in the `fields` the template reads
    (`reasoning_content` for Qwen3, GLM and DeepSeek; `thinking` for gpt-oss; `reasoning` for others)."""
    r = m.get("reasoning")
    if not isinstance(r, Reasoning):
        return m
    out = {**{k: v for k, v in m.items() if k != "reasoning"}, "content": r.answer}
    if hand_over:
        out.update({f: r.text for f in fields or ("reasoning_content",)})
        out["restore_reasoning"] = r
    return out


def _string_arguments(m: dict) -> dict:
    """A message whose tool-call arguments are JSON text (templates that concatenate them as strings)."""
    calls = m.get("tool_calls")
    if not calls:
        return m
    return {**m, "tool_calls": [{**c, "function": {**c["function"], "arguments": c["function"]["arguments"] if isinstance(
        c["function"].get("arguments"), str) else json.dumps(c["function"].get("arguments"), ensure_ascii=False)}}
        if isinstance(c.get("function"), dict) else c for c in calls]}


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on equal prefixes (renderings are long, differences few)
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    n = min(len(a), len(b), limit)
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


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
        # the reasoning fields the template reads: reasoning is handed to it there, and trained as it renders it
        self.reads = tuple(f for f, rx in REASONING_FIELDS.items() if rx.search(self.plan.template))
        self._probed: tuple[str, str] | None = None

    # ---- rendering -----------------------------------------------------------------------------------------

    def _kwargs(self) -> dict:
        return {k: v for k, v in (self.tok.special_tokens_map or {}).items() if isinstance(v, str)}

    def render(self, msgs: list[dict], add_generation_prompt: bool = False, tools=None) -> str:
        try:
            return self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                chat_template=self.plan.template, tools=tools)
        except Exception as e:  # the template's own code failed (jinja, or a TypeError in its expressions)
            raise TemplateFailure(e) from e

    def _marked(self, msgs: list[dict], tools) -> tuple[str, list[tuple[int, int]]]:
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            rendered, indices = render_jinja_template(conversations=[msgs], tools=tools,
                                                      chat_template=self.plan.template,
                                                      return_assistant_tokens_mask=True, **self._kwargs())
        except Exception as e:
            raise TemplateFailure(e) from e
        text, merged = rendered[0], []
        for a, b in sorted(tuple(x) for x in indices[0]):
            # a marked block right after another (Phi-3 marks the closing EOS on its own) belongs to the same turn
            if merged and not text[merged[-1][1]:a].strip():
                merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        return text, merged

    def _prefix_turns(self, msgs: list[dict], tools, calls: dict) -> tuple[str, list[tuple[int, int]]]:
        text = self.render(msgs, tools=tools)
        turns = []
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            before = self.render(msgs[:i], add_generation_prompt=True, tools=tools) if i else ""
            upto = self.render(msgs[: i + 1], tools=tools)
            if not (text.startswith(upto) and upto.startswith(before)):
                return self._anchored_turns(text, msgs, calls)
            turns.append((len(before), len(upto)))
        return text, turns

    def _anchored_turns(self, text: str, msgs: list[dict], calls: dict) -> tuple[str, list[tuple[int, int]]]:
        """Templates that re-render earlier turns (Mistral moves the system text into the last user turn, Qwen3
        drops earlier reasoning): find each reply verbatim in the whole rendering, in order, each after the previous
        one and after the user message before it; a tool-call turn is where the template renders the call."""
        turns, cursor = [], 0
        for i, m in enumerate(msgs):
            content = (m.get("content") or "").strip() if isinstance(m.get("content"), str) else ""
            if m["role"] != "assistant":
                # a user turn precedes the next reply; the system text may have moved anywhere, so it sets nothing
                if m["role"] == "user" and content and (at := text.find(content, cursor)) >= 0:
                    cursor = at + len(content)
                continue
            at = text.find(content, cursor) if content else -1
            region = calls.get(i)
            if region is not None and region[0] >= cursor and (at < 0 or at >= region[0]):
                turns.append((region[0] if at < 0 else at, region[1]))
            elif at >= 0:
                turns.append((at, at + len(content)))
            else:
                raise NotVerbatim(NOT_PREFIX_STABLE)
            cursor = turns[-1][1]
        return text, turns

    def _call_regions(self, msgs: list[dict], tools) -> dict[int, tuple[int, int]]:
        """Where the template renders each tool-call turn. The conversation up to that turn is rendered twice,
        once as it is and once with the turn replaced by a plain reply (a marker no template writes): where the two
        differ is the call as the model writes it (after any header or empty `<think></think>` the template adds
        either way, before its end token). That text is then found, in order, in the whole rendering."""
        idx = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and m.get("tool_calls")]
        if not idx:
            return {}
        text = self.render(msgs, tools=tools)
        regions, cursor = {}, 0
        for i, m in enumerate(msgs):
            content = m.get("content") if isinstance(m.get("content"), str) else ""
            if i not in idx:
                if content.strip() and (at := text.find(content.strip(), cursor)) >= 0:
                    cursor = at + len(content.strip())
                continue
            try:
                upto = self.render(msgs[: i + 1], tools=tools)
                alt = self.render([*msgs[:i], {"role": "assistant", "content": SENTINEL}], tools=tools)
            except TemplateFailure:
                continue
            p = _common_prefix(upto, alt)
            s = _common_suffix(upto, alt, min(len(upto), len(alt)) - p)
            p, q = self._snap(upto, p, len(upto) - s)
            call = whole = upto[p:q].strip()
            if SENTINEL not in alt[p:len(alt) - s] or not call or any(
                    c["function"]["name"] not in call for c in m["tool_calls"]):
                continue
            at = text.find(call, cursor)
            while at < 0 and (tok := self._special_at_end(call)):  # the end token written otherwise in the whole
                call = call[: -len(tok)].rstrip()
                at = text.find(call, cursor) if call else -1
            if at < 0:
                region = self._call_by_ends(text, whole, cursor, m, msgs[i + 1:])
                if region is None:
                    continue
                at, call = region[0], text[region[0]:region[1]]
            regions[i] = (at, at + len(call))
            cursor = at + len(call)
        return regions

    def _snap(self, text: str, p: int, q: int) -> tuple[int, int]:
        """The differing stretch widened to whole special tokens (`<|START_ACTION|>` against `<|START_RESPONSE|>`
        share `<|START_`), and back to the end of the generation prompt where only plain text on the same line
        lies between (gpt-oss-style headers the model writes itself: `<|start|>assistant to=...`)."""
        for s in self.specials:
            lo = max(0, p - len(s) + 1)
            at = text.find(s, lo, p + len(s) - 1)
            if 0 <= at < p < at + len(s):
                p = at
            lo = max(0, q - len(s) + 1)
            at = text.find(s, lo, q + len(s) - 1)
            if 0 <= at < q < at + len(s):
                q = at + len(s)
        gen = self._probe()[0]
        g = text.rfind(gen, 0, p) if gen else -1
        if g >= 0 and g + len(gen) < p:
            between = text[g + len(gen):p]
            if "\n" not in between and self._special_at_end(between) is None and not any(
                    s in between for s in self.specials):
                p = g + len(gen)
        return p, q

    @staticmethod
    def _call_by_ends(text: str, call: str, cursor: int, m: dict, later: list[dict]) -> tuple[int, int] | None:
        """A call the whole rendering writes a little differently (Apriel adds the call's id once its result
        follows): from the call's opening up to its first function name, to the longest tail of it found before
        the next message's text."""
        name = m["tool_calls"][0]["function"]["name"]
        head = call[: call.find(name) + len(name)]
        at = text.find(head, cursor)
        if at < 0:
            return None
        nxt = next((c.strip() for c in (x.get("content") for x in later) if isinstance(c, str) and c.strip()), None)
        limit = text.find(nxt, at) if nxt else len(text)
        limit = len(text) if limit < 0 else limit
        for k in range(len(call) - len(head), 2, -1):
            end = text.rfind(call[-k:], at + len(head), limit)
            if end >= 0:
                return at, end + k
        return None

    # ---- the reply and its end token --------------------------------------------------------------------------

    def _special_at(self, text: str, pos: int) -> str | None:
        for s in self.specials:
            if text.startswith(s, pos):
                return s
        return None

    def _special_at_end(self, text: str) -> str | None:
        return next((s for s in self.specials if text.endswith(s)), None)

    def _end(self, text: str, pos: int, limit: int) -> int | None:
        """Where the turn that has its reply end at `pos` ends: after the first end-of-turn token in the turn
        (up to `limit`; whitespace and the template's closing text before it included, as the model writes them),
        else after the end-of-turn token or closing markers that follow right after (whitespace between allowed);
        None when the template writes none."""
        found = [at + len(s) for s in self.stops if s and (at := text.find(s, pos, limit)) >= 0]
        if found:
            return min(found)
        i, last = pos, None
        while True:
            j = len(text) - len(text[i:].lstrip())
            tok = self._special_at(text, j)
            if tok is None:
                return last
            if tok in self.stops:
                return j + len(tok)
            if END_LIKE.search(tok.strip("<>|｜")) or END_LIKE.search(tok):
                last = j + len(tok)
            elif last is not None:
                return last  # the next turn's opening marker
            i = j + len(tok)

    def _trim(self, text: str, turn: tuple[int, int], content: str, tail: int | None = None
              ) -> tuple[str, tuple[int, int]]:
        """(text, span): the reply within the turn and the end-of-turn token after it (inserted when missing).
        `tail`: where a tool-call turn's call ends (its end token is looked for from there)."""
        a, b = turn
        start = text.find(content, a, max(b, a + len(content))) if content else -1
        if content and start < 0 and content.strip():
            content = content.strip()
            start = text.find(content, a, max(b, a + len(content)))
        if tail is not None:  # a call turn: its first end token (a call's markup never holds one before its end)
            lo = start if start >= 0 else a
            found = [at + len(s) for s in self.stops if s and (at := text.find(s, lo, tail)) >= 0]
            if found:
                return text, (lo, min(found))
        if start < 0:  # a tool call (no text), or a reply the template rewrote: the turn up to its end token
            start = a + len(text[a:b]) - len(text[a:b].lstrip())
            end = self._end(text, max(start, tail or start), max(b, tail or b))
            return text, (start, end if end is not None else (tail or b))
        pos = start + len(content)
        end = self._end(text, max(pos, tail or pos), max(b, pos))
        if end is not None or tail is not None:
            return text, (start, end if end is not None else tail)
        if not self.eos:
            return text, (start, pos)
        # no end-of-turn token after the reply (the turn ends with the next role's token, or nothing)
        text = text[:pos] + self.eos + text[pos:]
        return text, (start, pos + len(self.eos))

    @staticmethod
    def _replies_rendered(text: str, turns: list[tuple[int, int]], plain: list[dict]) -> bool:
        """Every assistant reply with text appears in its turn (at least once stripped of outer whitespace)."""
        replies = [m for m in plain if m["role"] == "assistant"]
        return all(not isinstance(m.get("content"), str) or not m["content"].strip() or (
            m["content"].strip() in text[a:b] or m["content"].strip() in text[a:])
            for m, (a, b) in zip(replies, turns, strict=False))

    def _turns(self, plain: list[dict], tools) -> tuple[str, list[tuple[int, int]], dict]:
        calls = self._call_regions(plain, tools)
        if self.plan.mode == "prefix":
            text, turns = self._prefix_turns(plain, tools, calls)
        else:
            text, turns = self._marked(plain, tools)
            if calls and text != self.render(plain, tools=tools):
                calls = {}
        return text, turns, calls

    def _first_rendering(self, plain: list[dict], tools):
        """(text, turns, call regions, the messages and tools as rendered): as they are, else in the forms some
        templates need: `tools` as an empty list (templates that loop over it unconditionally), tool-call
        arguments as JSON text (templates that concatenate them), content as typed parts (LLaVA-NeXT)."""
        tries = [(plain, tools)]
        if tools is None:
            tries.append((plain, []))
        if any(m.get("tool_calls") for m in plain):
            tries.append(([_string_arguments(m) for m in plain], tools))
        if tools:  # templates that read the function itself (`tool.name`, `tool.description`)
            tries.append((plain, [t.get("function", t) if isinstance(t, dict) else t for t in tools]))
        if any(isinstance(m.get("content"), str) for m in plain):
            tries.append(([_as_parts(m) for m in plain], tools))
        failure = None
        for p, t in tries:
            try:
                return (*self._turns(p, t), p, t)
            except TemplateFailure as e:
                failure = failure or e
        raise failure

    def _render(self, msgs: list[dict]):
        """(text, assistant turns, call regions, the messages as rendered, why the replies cannot be placed)."""
        try:
            return self._render_verbatim(msgs)
        except NotVerbatim as e:
            return "", [], {}, msgs, str(e)

    def _render_verbatim(self, msgs: list[dict]):
        plain, tools = split_tools(msgs)
        try:
            text, turns, calls, plain, tools = self._first_rendering(plain, tools)
        except NotVerbatim:
            if not any(m.get("tool_calls") and m.get("content") == "" for m in msgs):
                raise
            # templates that render calls only where `content` is null (DeepSeek-R1 distills)
            msgs = [{**m, "content": None} if m.get("tool_calls") and m.get("content") == "" else m for m in msgs]
            plain, tools = split_tools(msgs)
            text, turns, calls, plain, tools = self._first_rendering(plain, tools)
        turn_of = dict(zip((i for i, m in enumerate(plain) if m["role"] == "assistant"), turns, strict=False))
        dropped = [i for i, m in enumerate(plain) if m.get("tool_calls") and i in turn_of and i not in calls and not all(
            c["function"]["name"] in text[turn_of[i][0]:turn_of[i][1]] for c in m["tool_calls"])]
        if dropped and any(m.get("content") == "" for i, m in enumerate(plain) if i in dropped):
            # templates that render calls only where `content` is null (DeepSeek-R1 distills)
            none = [{**m, "content": None} if i in dropped and m.get("content") == "" else m
                    for i, m in enumerate(plain)]
            try:
                t2, tu2, c2, p2, tools2 = self._first_rendering(none, tools)
            except TemplateFailure:
                t2 = None
            if t2 is not None and all(i in c2 for i in dropped):
                text, turns, calls, plain, tools = t2, tu2, c2, p2, tools2
                msgs = [{**m, "content": None} if i in dropped and m.get("content") == "" else m
                        for i, m in enumerate(msgs)]
                dropped = []
        if dropped:  # the template does not render tool calls (Llama 3.0, Phi-3): train them as JSON text instead
            msgs = [_calls_as_text(m) if i in dropped else m for i, m in enumerate(msgs)]
            plain, tools = split_tools(msgs)
            text, turns, calls, plain, tools = self._first_rendering(plain, tools)
        if self._replies_rendered(text, turns, plain):
            return text, turns, calls, msgs, None
        # multimodal templates (SmolVLM, Idefics3) read `content` as a list of typed parts
        try:
            text, turns, calls = self._turns([_as_parts(m) for m in plain], tools)
        except TemplateFailure:  # a template that concatenates content as a string
            return text, turns, calls, msgs, REWRITES_REPLIES
        return text, turns, calls, msgs, None if self._replies_rendered(text, turns, plain) else REWRITES_REPLIES

    def spans(self, msgs: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        has_reasoning = any(isinstance(m.get("reasoning"), Reasoning) for m in msgs)
        self.reasoning_records += has_reasoning
        if has_reasoning and self.reasoning == "drop":
            msgs = [answer_only(m, hand_over=False) for m in msgs]
        elif has_reasoning and self.reads:  # the template renders reasoning itself: hand it over, in its markup
            msgs = [answer_only(m, hand_over=True, fields=self.reads) for m in msgs]
        text, turns, calls, msgs, why = self._render(msgs)
        if why and has_reasoning and self.reasoning == "train" and not self.reads:
            # the template strips the reasoning (DeepSeek-R1): render the answers and put each reasoning block
            # back before its answer
            text, turns, calls, msgs, why = self._render([answer_only(m, hand_over=True) for m in msgs])
        if why:
            raise UserError(why)
        assistants = [(i, m) for i, m in enumerate(msgs) if m["role"] == "assistant"]
        if len(turns) != len(assistants):
            raise UserError(f"the chat template marks {len(turns)} assistant turn(s) in a conversation with "
                            f"{len(assistants)}: it drops or merges assistant messages, so their loss cannot be "
                            "placed; use another data.chat_template")
        spans, shift, restored = [], 0, False
        for (i, m), (a, b) in zip(assistants, turns, strict=True):
            before = len(text)
            a, b = a + shift, b + shift
            tail = None
            if i in calls:
                p, q = calls[i][0] + shift, calls[i][1] + shift
                content = (m.get("content") or "").strip()
                a = min(a, p) if content and text.find(content, a, b) >= 0 else p
                b, tail = max(b, q), q
            start = None
            if isinstance(m.get("restore_reasoning"), Reasoning):
                text, start, a, b, put_back = self._restore_reasoning(text, (a, b), m["restore_reasoning"])
                restored |= put_back
            text, span = self._trim(text, (a, b), m.get("content") or "", tail)
            shift += len(text) - before
            if m.get("train", True):
                spans.append((span[0] if start is None else min(start, span[0]), span[1]))
        self.reasoning_restored += restored
        return text, spans

    # ---- reasoning ------------------------------------------------------------------------------------------

    def _probe(self) -> tuple[str, str]:
        """(the generation prompt the template ends a prompt with, how it writes a reply's reasoning: the text
        between that prompt and the answer with `{R}` where the reasoning goes). From renderings of a one-turn
        conversation with marker texts; `<think>` markup where the template shows none."""
        if self._probed is None:
            default = "<think>\n{R}\n</think>\n\n"
            user = {"role": "user", "content": "\x02u\x03"}
            reply = {"role": "assistant", "content": "\x02a\x03", **{f: "\x02r\x03" for f in self.reads}}
            try:
                prompt = self.render([user])
                gen = self.render([user], add_generation_prompt=True)
                full = self.render([user, reply])
            except TemplateFailure:
                self._probed = ("", default)
                return self._probed
            g = gen[_common_prefix(prompt, gen):]
            u = full.find("\x02u\x03")
            start = full.find(g, u) + len(g) if g and full.find(g, u) >= 0 else -1
            r, ans = full.find("\x02r\x03"), full.find("\x02a\x03")
            wrapper = full[start:ans].replace("\x02r\x03", "{R}") if 0 <= start <= r < ans else default
            self._probed = (g, wrapper if "{R}" in wrapper else default)
        return self._probed

    def _restore_reasoning(self, text: str, turn: tuple[int, int], r: Reasoning) -> tuple[str, int, int, int, bool]:
        """(text, where the trained reasoning starts, where its answer is looked for, the turn's new end, whether
        it was put back): the reasoning as the template rendered it (trained from where the model starts writing:
        after the generation prompt), or, where it dropped it, the block in the template's own markup inserted
        right before the answer (less any part the template already wrote there, such as a generation prompt
        ending in `<think>`)."""
        a, b = turn
        gen, wrapper = self._probe()
        answer = r.answer.strip()
        at = text.rfind(answer, a, b) if answer else -1
        at = at if at >= 0 else b
        inside = text.find(r.text, a, at)
        if inside >= 0:  # rendered by the template itself
            lo = max(0, a - len(gen))
            g = text.rfind(gen, lo, inside) if gen else -1
            if g >= 0:
                return text, g + len(gen), inside + len(r.text), b, False
            opening = wrapper.split("{R}")[0].strip()
            tag = text.rfind(opening, a, inside) if opening else -1
            return text, tag if tag >= 0 else inside, inside + len(r.text), b, False
        block = wrapper.replace("{R}", r.text)
        block = block if answer else block.rstrip()
        k = next((k for k in range(len(block), 0, -1) if text[a:at].endswith(block[:k])), 0)
        insert = block[k:]
        return text[:at] + insert + text[at:], at, at + len(insert), b + len(insert), True
