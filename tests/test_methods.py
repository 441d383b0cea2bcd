"""The method registry (core/methods.py): one entry per fine-tuning method, used everywhere a method matters."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from advisor.rules.schema import FINE_TUNES, METHODS
from core.estimate.memory import EstimateRequest, Method
from core.methods import REGISTRY, TITLES, method


def test_one_registry_names_every_fine_tune_everywhere():
    from core.train_config import TrainConfig

    assert set(REGISTRY) == set(FINE_TUNES) == set(typing.get_args(Method))
    assert set(TITLES) == set(METHODS)
    sections = {typing.get_args(t.model_fields["name"].annotation)[0]
                for t in typing.get_args(TrainConfig.model_fields["method"].annotation)}
    assert sections == set(REGISTRY)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_entry_writes_a_valid_section_and_builds_its_peft_config(name):
    from core.train_config import TrainConfig

    spec = method(name)
    section = spec.config_section(EstimateRequest(method=name))
    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"}, "method": section})
    assert cfg.method.name == name
    peft = spec.peft_config(cfg.method)
    expected = {"full": None, "lora": "LoraConfig", "qlora": "LoraConfig", "p_tuning": "PromptEncoderConfig",
                "dora": "LoraConfig"}[name]
    assert (peft is None) if expected is None else type(peft).__name__ == expected
    rungs = spec.ladder(1)
    assert rungs and all(isinstance(r, dict) for r in rungs)
    assert len(spec.ladder(4)) >= len(rungs)  # several GPUs add sharded rungs


def test_registry_facts_the_estimator_uses():
    assert method("full").flops_per_token == 6.0 and method("lora").flops_per_token == 4.0
    assert method("qlora").slowdown == 1.3 and method("qlora").quantized_base and method("qlora").adapters
    assert method("p_tuning").soft_prompt and not method("p_tuning").adapters
    assert [m.learning_rate for m in REGISTRY.values()] == [2e-5, 2e-4, 2e-4, 1e-3, 2e-4]
    assert method("dora").adapters and not method("dora").quantized_base and method("dora").offered_next_to == "lora"


# ---- a method's facts come from one place --------------------------------------------------------------------------

NAMES = "|".join(["full", "lora", "qlora", "p_tuning", "dora"])
# a method name compared, tested for membership or used as a dict key / index outside the registry: the fact it
# decides belongs in the method's unit (core/methods.py)
NAMED_METHOD = re.compile(
    rf"""(?:==|!=|\bin|\bnot in)\s*[(\[{{]?\s*["'](?:{NAMES})["']"""  # m.name == "qlora", m in ("lora", "qlora")
    rf"""|["'](?:{NAMES})["']\s*(?:==|!=)"""  # "qlora" == m.name
    rf"""|[{{,]\s*["'](?:{NAMES})["']\s*:"""  # {"full": ..., "p_tuning": ...}: a per-method table
    rf"""|\[\s*["'](?:{NAMES})["']\s*\]""")  # feasible["lora"]


def _sources():
    root = Path(__file__).resolve().parent.parent
    for folder in ("core", "advisor", "trainer"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.relative_to(root).as_posix() != "core/methods.py":
                yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")


def test_no_method_named_outside_the_registry():
    found = [f"{name}:{i}: {line.strip()}" for name, text in _sources()
             for i, line in enumerate(text.splitlines(), 1) if NAMED_METHOD.search(line)]
    assert found == []


def test_the_grep_catches_what_it_should():
    for line in ('if m.name == "qlora":', 'if m.name in ("lora", "qlora"):', 'x = {"full": 1, "p_tuning": 2}',
                 'if feasible["lora"] or feasible["qlora"]:', 'typical = 3e-1 if cfg.method.name == "p_tuning"',
                 'if "dora" != name:'):
        assert NAMED_METHOD.search(line), line
    for line in ('out.map("method.name: qlora", "quantization_bit", 4)', 'kind = d.get("finetuning_type", KIND)',
                 '("LoRA instead of a full fine-tune", "lora")'):
        assert not NAMED_METHOD.search(line), line


def test_feasibility_rules_are_generated_per_registered_method():
    from advisor.rules.loader import load_rules

    rules = {r.id: r for r in load_rules()}
    text = (Path(__file__).resolve().parent.parent / "rules" / "decide_50_methods.yaml").read_text(encoding="utf-8")
    for concern in ("no-fit", "over-budget", "cpu-too-slow"):
        assert f"id: {concern}-$method_id" in text  # written once, as a template
        for name, unit in REGISTRY.items():
            rid = f"{concern}-{name.replace('_', '-')}"
            assert f"id: {rid}\n" not in text  # not written out by hand
            assert rules[rid].effect.veto == [name]
            assert unit.run_phrase in rules[rid].rationale
    # the ids and texts users see are the ones written out by hand before (rule ids are a public contract)
    assert rules["no-fit-p-tuning"].rationale.startswith("The standard configuration of the P-tuning run needs "
                                                         "{memory_gb_p_tuning:,.1f} GB")
    assert rules["over-budget-full"].source == ("tunewise estimate (training FLOPs ≈ 6 × params × tokens; Kaplan et "
                                                "al. 2020, arXiv:2001.08361)")
    assert rules["no-fit-qlora"].example == {"gpu_memory_gb": 8, "gpu_count": 1, "model_params_b": 70}
    ids = [r.id for r in load_rules()]
    first = ids.index("no-fit-full")
    expected = [f"{c}-{m.replace('_', '-')}" for m in REGISTRY for c in ("no-fit", "over-budget", "cpu-too-slow")]
    assert ids[first:first + len(expected)] == expected  # each method's three rules together, in registry order


def test_a_template_with_an_unknown_name_names_its_file(tmp_path):
    from advisor.rules.loader import load_rules_from
    from core.errors import UserError

    (tmp_path / "decide_1.yaml").write_text(
        "- for_each_fine_tune:\n  - id: x-$method_id\n    when: {fits_$method: false}\n    effect: {veto: [$method]}\n"
        "    rationale: \"$nonsense does not fit\"\n    source: test\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"decide_1.yaml:2: template #1: unknown or malformed \$name \('nonsense'\)"):
        load_rules_from(tmp_path)


def test_method_names_in_every_contract_come_from_the_registry():
    from advisor.cli.demo.pipeline import DEMO_TRAINING
    from advisor.export.read import ToolJob
    from core.train_config import METHOD_NAMES

    assert typing.get_args(ToolJob.model_fields["method"].annotation) == tuple(REGISTRY)
    assert METHOD_NAMES == "full, lora, qlora, p_tuning or dora"
    assert set(DEMO_TRAINING) == {m for m, u in REGISTRY.items() if u.demo_training}
    assert METHODS == ("prompting", "rag", "lora", "qlora", "p_tuning", "full", "dora")  # offered-only last


def test_a_unit_without_its_trainable_parameters_cannot_be_registered():
    from core.methods import FineTuneMethod, register

    class Half(FineTuneMethod):
        name, title = "half", "Half"

    with pytest.raises(TypeError, match="trainable_params"):
        register(Half())


def test_offered_only_is_dora_beside_lora():
    from core.methods import REGISTRY, offered_only

    assert [m for m in REGISTRY if offered_only(m)] == ["dora"]
    assert not offered_only("prompting") and not offered_only("nonexistent")
