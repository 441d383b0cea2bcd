"""DoRA (Liu et al. 2024, arXiv:2402.09353), added through its registry unit alone (core/methods.py `Dora`): it
estimates, trains, exports, reads back and merges, and the advisor offers it next to LoRA, never in its place."""

from __future__ import annotations

import json

import pytest

from core.estimate import EstimateRequest, estimate
from core.estimate.shapes import shape_from_params_b
from core.methods import DORA_KEPT_PER_OUTPUT, REGISTRY, method
from tests.conftest import write_yaml
from tests.trainer_fixtures import train_config, write_dataset

DORA = {"name": "dora", "lora_r": 8, "lora_alpha": 16}


# ---- the estimate: LoRA's terms plus the magnitude vectors and the measured activations --------------------------

def test_the_measured_constant_is_pinned():
    # bench/dora_memory.py: 2.000 values per token and adapted output feature beyond LoRA (peft 0.21, fp32 CPU)
    assert DORA_KEPT_PER_OUTPUT == 2


def test_dora_is_lora_plus_a_magnitude_per_output_feature_and_two_kept_values():
    shape = shape_from_params_b(7)
    req = dict(seq_len=2048, batch_size=4, gradient_checkpointing=False)
    lora, dora = (estimate(shape, EstimateRequest(method=m, **req)) for m in ("lora", "dora"))
    outs = sum(o for _i, o in shape.linear_shapes().values())  # every linear layer of a block is adapted by default
    assert dora.trainable_params - lora.trainable_params == outs * shape.layers
    kept = 2 * 4 * 2048 * shape.layers * outs * 2  # bf16: 2 bytes, 4 × 2048 tokens
    assert abs(dora.per_gpu_gb["activations"] - lora.per_gpu_gb["activations"] - kept / 1e9) < 0.002
    assert (lora.total_gb, dora.total_gb) == (135.054, 183.782)
    assert dora.assumptions["dora"].startswith("a magnitude per adapted output feature; 2 more values per token")
    assert dora.assumptions["lora"] == lora.assumptions["lora"]


def test_dora_that_does_not_fit_suggests_lora_and_qlora():
    est = estimate(shape_from_params_b(7), EstimateRequest(method="dora", seq_len=2048, batch_size=4,
                                                          gpu_memory_gb=16))
    by_flag = {s.flags: s for s in est.suggestions}
    assert by_flag["--method lora"].change == ("LoRA: the same adapter without DoRA's magnitude vectors and their kept "
                                               "activations")
    assert not by_flag["--method lora"].fits and by_flag["--method qlora"].fits  # fitting ones come first


def test_dora_section_and_peft_config():
    from core.train_config import TrainConfig

    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": "d"}, "method": DORA})
    assert cfg.method.name == "dora"
    peft = method("dora").peft_config(cfg.method)
    assert type(peft).__name__ == "LoraConfig" and peft.use_dora and peft.r == 8
    assert not method("lora").peft_config(cfg.method).use_dora


# ---- the exports: pinned exactly -----------------------------------------------------------------------------------

METHOD_KEYS = {
    "axolotl": {"adapter": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_target_linear": True,
                "peft_use_dora": True},
    "llamafactory": {"finetuning_type": "lora", "lora_rank": 8, "lora_alpha": 16, "lora_dropout": 0.05,
                     "lora_target": "all", "use_dora": True},
    "trl": {"use_peft": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
            "lora_target_modules": ["all-linear"], "use_dora": True},
}
LORA_KEYS = {"lora_r", "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "lora_target_linear",
             "lora_target_modules", "adapter", "finetuning_type", "use_peft", "peft_use_dora", "use_dora",
             "load_in_4bit", "quantization_bit"}


@pytest.mark.parametrize("tool", sorted(METHOD_KEYS))
def test_dora_exports_exactly(tmp_path, tool):
    from advisor.export import export, write_export
    from advisor.export.read import read_tool_config
    from core.train_config import TrainConfig

    data = write_dataset(tmp_path / "d.jsonl")
    cfg = TrainConfig.model_validate(train_config(tmp_path / "model", data, tmp_path / "run", DORA))
    out = export(cfg, tool, tmp_path / f"{tool}.yaml")
    assert {k: v for k, v in out.config.items() if k in LORA_KEYS} == METHOD_KEYS[tool]
    assert ("method.name: dora", "peft_use_dora" if tool == "axolotl" else "use_dora") in out.mapped
    write_export(out, tmp_path / f"{tool}.yaml")
    assert read_tool_config(tmp_path / f"{tool}.yaml").method == "dora"  # and it reads back as DoRA


def test_lora_exports_carry_no_dora_key(tmp_path):
    from advisor.export import export
    from core.train_config import TrainConfig

    data = write_dataset(tmp_path / "d.jsonl")
    cfg = TrainConfig.model_validate(train_config(tmp_path / "model", data, tmp_path / "run", {**DORA, "name": "lora"}))
    for tool in METHOD_KEYS:
        assert not {"peft_use_dora", "use_dora"} & set(export(cfg, tool, tmp_path / "x.yaml").config)


# ---- the advisor: an option next to LoRA, never in its place ------------------------------------------------------

def _recommend(**over):
    from advisor.answers import Answers
    from advisor.recommend import recommend
    from tests.conftest import BASE_ANSWERS

    return recommend(Answers.model_validate({**BASE_ANSWERS, **over}))


def test_dora_is_offered_as_the_last_next_step_when_lora_is_chosen():
    rec = _recommend(goal="format", prompting="plateaued", examples=3000)
    assert rec.method == "lora"
    from advisor.rules.loader import load_next_steps

    assert rec.next_steps[len(load_next_steps()["lora"])] == REGISTRY["dora"].offer_text  # after LoRA's own steps
    dora = rec.ranking[-1]
    assert (dora.method, dora.feasible, dora.candidate) == ("dora", True, False)
    assert "dora" not in (rec.runner_up.method if rec.runner_up else "")


def test_dora_is_not_offered_when_lora_is_not_chosen_or_ruled_out():
    rec = _recommend(goal="format", prompting="plateaued", examples=3000, model_params_b=13)
    assert rec.method == "qlora" and REGISTRY["dora"].offer_text not in rec.next_steps
    frozen = _recommend(goal="format", prompting="plateaued", examples=3000, frozen_base=True)
    ranked = {r.method: r for r in frozen.ranking}
    assert not ranked["dora"].feasible and any(x.rule == "frozen-base" for x in ranked["dora"].reasons)


def test_dora_feasibility_rules_are_generated():
    from advisor.rules.loader import load_rules

    rules = {r.id: r for r in load_rules()}
    assert rules["no-fit-dora"].rationale.startswith("The standard configuration of the DoRA run needs "
                                                     "{memory_gb_dora:,.1f} GB")
    assert rules["over-budget-dora"].effect.veto == ["dora"] and rules["cpu-too-slow-dora"].effect.veto == ["dora"]


# ---- train and merge on a tiny local model (CPU) -------------------------------------------------------------------

@pytest.mark.slow
def test_dora_trains_saves_use_dora_and_merges(tmp_path, tiny_model):
    from trainer.merge import merge
    from trainer.run import train

    data = write_dataset(tmp_path / "d.jsonl")
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, out, DORA, max_steps=6, eval_steps=3))
    train(str(cfg), progress=False)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["use_dora"] is True and adapter["r"] == 8
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        names = f.keys()  # safetensors' reader: not iterable itself
    assert sum("lora_magnitude_vector" in k for k in names) == 14  # q, k, v, o, gate, up, down × 2 layers
    r = merge(str(out))
    assert r["ok"] and r["method"] == "dora" and r["max_abs_logit_diff"] < 1e-3
    assert (out / "merged" / "model.safetensors").is_file()
