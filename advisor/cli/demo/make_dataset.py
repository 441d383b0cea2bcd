"""Writes advisor/cli/demo/assets/tickets.jsonl: support messages → strict JSON tickets (OpenAI chat format).

Run once when the example changes (`python -m advisor.cli.demo.make_dataset`); the file is shipped as written.
It carries a few deliberate defects for the audit to catch: exact duplicates, empty answers, an unfilled
placeholder, personal data, a template leak and a conflicting label."""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "Turn the customer's message into a support ticket. Reply with JSON only: {\"category\", \"priority\"}."
CATEGORIES = {
    "billing": ["I was charged twice for my {item}", "my invoice for the {item} shows the wrong amount",
                "the payment for my {item} failed but the money left my account", "why is there an extra fee on my bill"],
    "shipping": ["my {item} has not arrived yet", "the tracking page for my {item} has not moved in days",
                 "the parcel with my {item} was delivered to the wrong address", "can you ship my {item} faster"],
    "refund": ["I want my money back for the {item}", "please refund the {item}, it does not fit",
               "I returned the {item} two weeks ago and got no refund", "how do I get a refund for my {item}"],
    "technical": ["my {item} will not turn on", "the app crashes when I open the {item} settings",
                  "my {item} keeps disconnecting from wifi", "the screen of my {item} flickers"],
    "account": ["I cannot log in to my account", "please reset my password", "how do I change the email on my account",
                "my account was locked after too many attempts"],
}
ITEMS = ["headphones", "laptop", "phone case", "coffee machine", "desk lamp", "keyboard", "jacket", "camera", "printer"]
URGENT = ["This is urgent!", "I need this fixed today.", "Please help asap, it is urgent."]
CALM = ["No rush.", "Whenever you can.", "Thanks in advance."]
OPENERS = ["Hi,", "Hello,", "Hey there,", "Good morning,", ""]


def make(n: int = 300, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        cat = rng.choice(list(CATEGORIES))
        body = rng.choice(CATEGORIES[cat]).format(item=rng.choice(ITEMS))
        urgency = rng.random()
        if urgency < 0.3:
            tail, prio = rng.choice(URGENT), "high"
        elif urgency < 0.7:
            tail, prio = "", "medium"
        else:
            tail, prio = rng.choice(CALM), "low"
        msg = " ".join(x for x in (rng.choice(OPENERS), body[0].upper() + body[1:] + ".", tail) if x)
        rows.append(chat(msg, {"category": cat, "priority": prio}))
    # deliberate defects
    rows[10] = json.loads(json.dumps(rows[3]))                      # exact duplicate
    rows[11] = json.loads(json.dumps(rows[4]))                      # exact duplicate
    rows[20]["messages"][2]["content"] = ""                         # empty answer
    rows[21]["messages"][2]["content"] = " "                        # empty answer
    rows[30]["messages"][1]["content"] = "Hi {{customer_name}}, my laptop will not turn on."  # placeholder
    rows[40]["messages"][1]["content"] += " Reach me at jordan.miles@fastmail.com."            # personal data
    rows[50]["messages"][2]["content"] += "<|im_end|>"                                          # template leak
    rows[60] = chat(rows[5]["messages"][1]["content"], {"category": "refund", "priority": "low"})  # conflicting
    return rows


def chat(message: str, ticket: dict) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": message},
                         {"role": "assistant", "content": json.dumps(ticket)}]}


if __name__ == "__main__":
    out = Path(__file__).parent / "assets" / "tickets.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in make()), encoding="utf-8")
    print(f"wrote {out}")
