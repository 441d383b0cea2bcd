"""The method registry (advisor/methods.py): one entry per fine-tuning method, used everywhere a method matters."""

from __future__ import annotations

import typing

import pytest

from advisor.estimate.memory import EstimateRequest, Method
from advisor.methods import REGISTRY, TITLES, method
from advisor.rules.schema import FINE_TUNES, METHODS


def test_one_registry_names_every_fine_tune_everywhere():
    from trainer.config import TrainConfig

    assert set(REGISTRY) == set(FINE_TUNES) == set(typing.get_args(Method))
    assert set(TITLES) == set(METHODS)
    sections = {typing.get_args(t.model_fields["name"].annotation)[0]
                for t in typing.get_args(TrainConfig.model_fields["method"].annotation)}
    assert sections == set(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_entry_writes_a_valid_section_and_builds_its_peft_config(name):
    from trainer.config import TrainConfig

    spec = method(name)
    section = spec.config_section(EstimateRequest(method=name))
    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"}, "method": section})
    assert cfg.method.name == name
    peft = spec.peft_config(cfg.method)
    expected = {"full": None, "lora": "LoraConfig", "qlora": "LoraConfig", "p_tuning": "PromptEncoderConfig"}[name]
    assert (peft is None) if expected is None else type(peft).__name__ == expected
    rungs = spec.ladder(1)
    assert rungs and all(isinstance(r, dict) for r in rungs)
    assert len(spec.ladder(4)) >= len(rungs)  # several GPUs add sharded rungs


def test_registry_facts_the_estimator_uses():
    assert method("full").flops_per_token == 6.0 and method("lora").flops_per_token == 4.0
    assert method("qlora").slowdown == 1.3 and method("qlora").quantized_base and method("qlora").adapters
    assert method("p_tuning").soft_prompt and not method("p_tuning").adapters
    assert [m.learning_rate for m in REGISTRY.values()] == [2e-5, 2e-4, 2e-4, 1e-3]
