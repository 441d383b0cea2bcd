"""Shared builders for trainer tests: a tiny pre-trained Llama and a small structured-output dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Jade", "Kofi", "Lena"]
CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Accra", "Quito", "Porto", "Hanoi"]


def make_records(n: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, city, age = rng.choice(NAMES), rng.choice(CITIES), rng.randint(18, 80)
        out.append({"messages": [
            {"role": "system", "content": "Extract a JSON record."},
            {"role": "user", "content": f"{name} is {age} and lives in {city}."},
            {"role": "assistant", "content": json.dumps({"name": name, "age": age, "city": city})}]})
    return out


def write_dataset(path: Path, n: int = 60, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in make_records(n, seed)))
    return path


def train_config(model: Path, data: Path, out: Path, method: dict, **training) -> dict:
    t = {"max_steps": 30, "batch_size": 8, "learning_rate": 3e-3, "eval_steps": 10, "logging_steps": 2,
         "warmup_ratio": 0.0, "scheduler": "constant", **training}
    # the evaluation after training is off here (tests/test_eval.py runs it): it would add a base-vs-tuned pass
    return {"model": {"path": str(model)}, "data": {"path": str(data), "max_seq_len": 96, "val_size": 0.2},
            "method": dict(method), "training": t, "output": {"dir": str(out)}, "eval": {"enabled": False}}
