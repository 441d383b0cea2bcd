"""What the prompting probe tries, before anything runs: how many held-out records it scores, how many few-shot
examples it shows and the meaning-preserving rewordings of the instruction it tries (Sclar et al. 2023). Plain
data, light to import: the command line reads it for its flags' defaults on every start, where trainer/probe.py
(its report models and the runner) is imported only when a probe runs."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LIMIT = 100
DEFAULT_SHOTS = 5  # "3-5 diverse examples" (the prompting next step); fewer when the context cannot hold them
NO_INSTRUCTION = "Answer the request below the way the examples answer theirs."


@dataclass(frozen=True)
class Rewording:
    """One meaning-preserving change of the instruction (the kind of change Sclar et al. 2023 measure)."""
    name: str
    prefix: str = ""  # said before the instruction
    suffix: str = ""  # said after it
    in_user_turn: bool = False  # the instruction opens the first user message instead of a system message

    def instruction(self, original: str | None) -> str:
        text = original or NO_INSTRUCTION
        return " ".join(p for p in (self.prefix, text, self.suffix) if p)


REWORDINGS = (
    Rewording("instruction in the user turn", in_user_turn=True),
    Rewording("role first", prefix="You are an assistant that does exactly one job, described here."),
    Rewording("answer only", suffix="Reply with the answer only, in the same form as the examples, with nothing "
                                    "before or after it."),
)
