"""Configs for the trainers users already run (issue 18): every exported key is one the tool accepts (TRL: its own
parser; Axolotl 0.19.0 and LLaMA-Factory 0.9.5: the keys their config classes declare, snapshotted from the
released wheels in tests/data/interop/; `make interop` runs the tools themselves), the job is the same, and every
tunewise setting is either mapped or listed as not expressed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import write_yaml
from tests.trainer_fixtures import train_config, write_dataset

INTEROP = Path(__file__).parent / "data" / "interop"
AXOLOTL = json.loads((INTEROP / "axolotl-0.19.0.json").read_text())
LLAMAFACTORY = json.loads((INTEROP / "llamafactory-0.9.5.json").read_text())
METHODS = {"full": {"name": "full"},
           "lora": {"name": "lora", "lora_r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
           "qlora": {"name": "qlora", "lora_r": 4, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False},
           "dora": {"name": "dora", "lora_r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}}
RECORDS = {
    "openai": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
    "alpaca": {"instruction": "Say hello", "input": "", "output": "Hello"},
    "prompt_completion": {"prompt": "Say hello", "completion": "Hello"},
    "text": {"text": "Hello there, general text."},
}


def _config(tmp_path, method: str, fmt: str, **over):
    from core.train_config import TrainConfig

    data = tmp_path / f"{fmt}.jsonl"
    data.write_text("".join(json.dumps(RECORDS[fmt]) + "\n" for _ in range(20)))
    c = train_config(tmp_path / "model", data, tmp_path / "run", METHODS[method], max_steps=7, eval_steps=5,
                     save_steps=5, gradient_checkpointing=True, precision="bf16-mixed", early_stopping_patience=2)
    c["eval"] = {"enabled": True}
    for k, v in over.items():
        section, key = k.split("__")
        c.setdefault(section, {})[key] = v
    return TrainConfig.model_validate(c)


def _hf_fields() -> set[str]:
    from transformers import Seq2SeqTrainingArguments

    return {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}


@pytest.mark.parametrize("fmt", sorted(RECORDS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_llamafactory_export_uses_only_keys_it_declares(tmp_path, method, fmt):
    from advisor.export import export

    out = export(_config(tmp_path, method, fmt), "llamafactory", tmp_path / "lf.yaml")
    unknown = set(out.config) - set(LLAMAFACTORY["keys"]) - _hf_fields()
    assert not unknown, unknown
    entry = json.loads(out.files["dataset_info.json"])["tunewise_train"]
    assert set(entry) <= {"file_name", "formatting", "columns", "tags"}
    assert set(entry.get("columns", {})) | set(entry.get("tags", {})) <= set(LLAMAFACTORY["dataset_attrs"])
    assert out.config["stage"] == ("pt" if fmt == "text" else "sft")
    # optional columns only where the records have them (LLaMA-Factory fails on a declared column that is missing)
    if fmt == "alpaca":
        assert entry["columns"] == {"prompt": "instruction", "response": "output", "query": "input"}
    if fmt == "openai":
        assert entry["columns"] == {"messages": "messages"}
    c = out.config
    if method == "qlora":
        assert (c["finetuning_type"], c["quantization_bit"], c["quantization_type"], c["double_quantization"],
                c["lora_rank"], c["lora_target"]) == ("lora", 4, "fp4", False, 4, "all")
    elif method in ("lora", "dora"):
        assert (c["lora_rank"], c["lora_alpha"], c["lora_target"]) == (8, 16, "q_proj,v_proj")
        assert c.get("use_dora", False) == (method == "dora")
    else:
        assert c["finetuning_type"] == "full" and "lora_rank" not in c
    assert (c["cutoff_len"], c["max_steps"], c["eval_steps"], c["save_steps"], c["disable_gradient_checkpointing"],
            c["bf16"], c["train_on_prompt"]) == (96, 7, 5, 5, False, True, False)


@pytest.mark.parametrize("fmt", sorted(RECORDS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_axolotl_export_uses_only_keys_it_declares(tmp_path, method, fmt):
    from advisor.export import export

    out = export(_config(tmp_path, method, fmt), "axolotl", tmp_path / "ax.yaml")
    assert not set(out.config) - set(AXOLOTL["keys"]), set(out.config) - set(AXOLOTL["keys"])
    ds = out.config["datasets"][0]
    assert not set(ds) - set(AXOLOTL["dataset_keys"]) and out.config["chat_template"] in AXOLOTL["chat_templates"]
    c = out.config
    if method == "qlora":
        assert (c["adapter"], c["load_in_4bit"], c["bnb_config_kwargs"]["bnb_4bit_quant_type"]) == ("qlora", True,
                                                                                                   "fp4")
    elif method in ("lora", "dora"):
        assert (c["adapter"], c["lora_r"], c["lora_target_modules"]) == ("lora", 8, ["q_proj", "v_proj"])
        assert c.get("peft_use_dora", False) == (method == "dora")
    else:
        assert "adapter" not in c
    assert (c["sequence_len"], c["micro_batch_size"], c["max_steps"], c["early_stopping_patience"],
            c["val_set_size"]) == (96, 8, 7, 2, 0.2)


@pytest.mark.parametrize("fmt", ["openai", "prompt_completion", "text"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_trl_export_is_accepted_by_trls_own_parser(tmp_path, method, fmt):
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser
    from trl.scripts.utils import DatasetMixtureConfig

    from advisor.export import export

    out = export(_config(tmp_path, method, fmt), "trl", tmp_path / "trl.yaml")
    cfg = {**out.config, "use_cpu": True}  # this machine has no GPU for bf16: the check is about the keys
    path = tmp_path / "trl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    script, sft, model, data = TrlParser((ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig)) \
        .parse_args_and_config(args=["--config", str(path)])
    assert sft.max_length == 96 and sft.max_steps == 7 and sft.gradient_checkpointing
    assert model.use_peft == (method != "full") and model.load_in_4bit == (method == "qlora")
    assert model.use_dora == (method == "dora")
    assert data.datasets[0].data_files == str(tmp_path / f"{fmt}.jsonl") and data.test_split_size == 0.2


def _leaves(model, prefix="") -> set[str]:
    from pydantic import BaseModel

    out = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out |= _leaves(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


# settings with no counterpart to map, by design: where tunewise itself writes, or choices the tool makes
NOT_A_SETTING = {"model.dtype", "method.name", "data.format", "distributed.launcher", "distributed.processes",
                 "distributed.strategy", "distributed.nodes", "distributed.node_rank", "distributed.master_addr",
                 "distributed.master_port", "eval.max_records", "eval.metric", "eval.json_schema", "eval.general_text",
                 "eval.max_new_tokens", "data.reasoning", "data.max_skipped", "data.drop_untrainable",
                 "training.precision", "eval.enabled"}


@pytest.mark.parametrize("tool", ["axolotl", "llamafactory", "trl"])
def test_every_setting_is_mapped_or_listed(tmp_path, tool):
    from advisor.export import export

    cfg = _config(tmp_path, "qlora", "openai", data__system_prompt="Be brief.", data__max_skipped=0.1,
                  data__reasoning="drop", data__drop_untrainable=True, training__group_by_length=False)
    out = export(cfg, tool, tmp_path / "x.yaml")
    said = {k.split(":")[0].split(" ")[0] for k, _ in out.mapped + out.not_expressed}
    missing = _leaves(cfg) - said - NOT_A_SETTING
    assert not missing, missing


@pytest.mark.parametrize("tool,over,note", [
    ("trl", {"data__system_prompt": "Be brief."}, "data.system_prompt"),
    ("llamafactory", {"distributed__processes": 2, "distributed__strategy": "fsdp"}, "distributed.strategy: fsdp"),
    ("axolotl", {"distributed__processes": 4}, "distributed.processes"),
    ("trl", {"data__reasoning": "drop"}, "data.reasoning"),
])
def test_what_a_tool_cannot_express_is_listed(tmp_path, tool, over, note):
    from advisor.export import export

    out = export(_config(tmp_path, "lora", "openai", **over), tool, tmp_path / "x.yaml")
    assert note in [k for k, _ in out.not_expressed]


def test_trl_lists_a_format_it_does_not_read(tmp_path):
    from advisor.export import export

    out = export(_config(tmp_path, "lora", "alpaca"), "trl", tmp_path / "x.yaml")
    assert "data.format: alpaca" in [k for k, _ in out.not_expressed]


def test_cli_export_writes_the_files_and_keeps_other_datasets(tmp_path, tiny_model, cli_json, cli):
    data = write_dataset(tmp_path / "d.jsonl")
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", METHODS["lora"]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    d = cli_json("export", path, "--to", "llamafactory")
    assert d["files"] == [str(tmp_path / "llamafactory.yaml"), str(tmp_path / "dataset_info.json")]
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert set(info) == {"mine", "tunewise_train"} and info["tunewise_train"]["file_name"] == str(data)
    lf = yaml.safe_load((tmp_path / "llamafactory.yaml").read_text())
    assert lf["dataset_dir"] == str(tmp_path) and lf["model_name_or_path"] == str(tiny_model)
    assert d["command"] == f"llamafactory-cli train {tmp_path / 'llamafactory.yaml'}"
    pt = write_yaml(tmp_path / "p.yaml", train_config(tiny_model, data, tmp_path / "run", {"name": "p_tuning"}))
    code, _out, err = cli("export", pt, "--to", "axolotl")
    assert code == 2 and "no P-tuning" in err


def test_recommend_exports_the_recommended_job(tmp_path, cli_json, monkeypatch):
    from tests.conftest import BASE_ANSWERS

    monkeypatch.chdir(tmp_path)
    write_dataset(tmp_path / "d.jsonl")
    write_yaml(tmp_path / "answers.yaml", {**BASE_ANSWERS, "goal": "format", "prompting": "unstable",
                                           "examples": 3000})
    d = cli_json("recommend", "--answers", "answers.yaml", "--dataset", "d.jsonl", "--export", "axolotl",
                 "--config-out", "ax/axolotl.yaml")
    ax = yaml.safe_load((tmp_path / "ax" / "axolotl.yaml").read_text())
    assert d["config_written"] == "ax/axolotl.yaml" and ax["adapter"] == d["method"] in ("lora", "qlora")
    assert ax["datasets"][0]["path"] == str(tmp_path / "d.jsonl")


# ---- the reverse: estimate and audit read the job from a tool's config

@pytest.mark.parametrize("tool", ["axolotl", "llamafactory", "trl"])
@pytest.mark.parametrize("method", ["lora", "qlora", "full", "dora"])
def test_a_tool_config_reads_back_as_the_same_job(tmp_path, tool, method):
    from advisor.export import export, write_export
    from advisor.export.read import read_tool_config

    cfg = _config(tmp_path, method, "openai", training__grad_accum=4)
    path = tmp_path / "tool" / f"{tool}.yaml"
    write_export(export(cfg, tool, path), path)
    job = read_tool_config(path)
    assert (job.tool, job.method, job.model, job.data) == (tool, method, str(tmp_path / "model"),
                                                           [str(tmp_path / "openai.jsonl")])
    assert (job.seq_len, job.batch_size, job.grad_accum, job.gradient_checkpointing) == (96, 8, 4, True)
    if method != "full":
        expected = ("q_proj", "v_proj") if method in ("lora", "dora") else ("all-linear",)
        assert (job.lora_r, job.lora_targets) == (METHODS[method]["lora_r"], expected)


def test_estimate_and_audit_from_a_tool_config(tmp_path, tiny_model, cli_json, cli):
    data = write_dataset(tmp_path / "d.jsonl")
    path = write_yaml(tmp_path / "t.yaml", train_config(tiny_model, data, tmp_path / "run", METHODS["lora"],
                                                        gradient_checkpointing=True))
    cli_json("export", path, "--to", "llamafactory", "--out", tmp_path / "lf" / "lf.yaml")
    from_file = cli_json("estimate", "--from", tmp_path / "lf" / "lf.yaml", "--gpu-memory-gb", "16")
    by_hand = cli_json("estimate", "--model", tiny_model, "--method", "lora", "--seq-len", "96", "--batch-size", "8",
                       "--lora-r", "8", "--lora-targets", "q_proj,v_proj", "--precision", "bf16",
                       "--gpu-memory-gb", "16", "--loss", "plain")  # LLaMA-Factory builds the full logits
    assert from_file == by_hand
    overridden = cli_json("estimate", "--from", tmp_path / "lf" / "lf.yaml", "--batch-size", "2")
    assert overridden["assumptions"]["batch_size_per_gpu"] == 2
    audited = cli_json("audit", "--from", tmp_path / "lf" / "lf.yaml")
    assert audited["path"] == str(data) and audited["records"] == 60
    (tmp_path / "lf" / "dataset_info.json").unlink()
    code, _out, err = cli("audit", "--from", tmp_path / "lf" / "lf.yaml")
    assert code == 2 and "dataset_info.json, which does not exist" in err
    (tmp_path / "other.yaml").write_text("learning_rate: 1e-4\n")
    code, _out, err = cli("estimate", "--from", tmp_path / "other.yaml")
    assert code == 2 and "not an Axolotl" in err


def test_the_cli_names_every_registered_tool():
    from advisor.export import TOOLS, _targets

    assert tuple(_targets()) == TOOLS


def test_llamafactory_lists_openai_tool_calls_it_cannot_read(tmp_path):
    from advisor.export import export
    from core.train_config import TrainConfig

    data = tmp_path / "tools.jsonl"
    rec = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
           "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None, "tool_calls": [
               {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                        {"role": "tool", "tool_call_id": "1", "content": "ok"},
                        {"role": "assistant", "content": "Done."}]}
    data.write_text(json.dumps(rec) + "\n")
    cfg = TrainConfig.model_validate({"model": {"path": "m"}, "data": {"path": str(data)}})
    out = export(cfg, "llamafactory", tmp_path / "lf.yaml")
    assert "data (tool calls)" in [k for k, _ in out.not_expressed]
    assert json.loads(out.files["dataset_info.json"])["tunewise_train"]["columns"] == {"messages": "messages",
                                                                                      "tools": "tools"}


def test_estimate_from_reads_loss_attention_and_loading(tmp_path, cli_json):
    """The memory settings of each tool's config: its fused / chunked loss, its attention kernel, FSDP loading, and
    a hub model name resolved to its published shape (no local folder needed)."""
    cases = {
        "ax.yaml": ({"base_model": "Qwen/Qwen2.5-7B-Instruct", "adapter": "lora", "sequence_len": 4096,
                     "plugins": ["axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"],
                     "cut_cross_entropy": True, "eager_attention": True, "fsdp_config": {"fsdp_version": 2}},
                    ("chunked", "eager", False)),
        "lf.yaml": ({"model_name_or_path": "google/gemma-2-9b-it", "stage": "sft", "finetuning_type": "lora",
                     "cutoff_len": 2048, "enable_liger_kernel": True, "flash_attn": "fa2"}, ("chunked", "flash", True)),
        "trl.yaml": ({"model_name_or_path": "meta-llama/Llama-3.1-8B", "use_peft": True, "max_length": 2048,
                      "attn_implementation": "sdpa"}, ("plain", "sdpa", True)),
        "ax2.yaml": ({"base_model": "mistralai/Mistral-7B-v0.1", "adapter": "qlora", "chunked_cross_entropy": True},
                     ("chunked_logits", "auto", True)),
    }
    from advisor.export.read import read_tool_config

    for name, (cfg, (loss, attention, low)) in cases.items():
        path = write_yaml(tmp_path / name, cfg)
        job = read_tool_config(path)
        assert (job.loss, job.attention, job.low_memory_loading) == (loss, attention, low), name
        est = cli_json("estimate", "--from", path, "--gpu-memory-gb", "80")
        assert "published config.json shape" in est["assumptions"]["model_shape"], name
    gemma = cli_json("estimate", "--from", tmp_path / "lf.yaml")
    assert gemma["assumptions"]["attention"].startswith("flash")
    plain = cli_json("estimate", "--from", tmp_path / "trl.yaml", "--seq-len", "8192")
    chunked = cli_json("estimate", "--from", tmp_path / "trl.yaml", "--seq-len", "8192", "--loss", "chunked")
    assert plain["total_gb"] - chunked["total_gb"] > 8  # 8,192 × 128,256 logits × 12 B = 12.6 GB
