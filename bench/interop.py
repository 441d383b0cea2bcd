"""`make interop`: run tunewise's exports through the tools themselves.

For LLaMA-Factory 0.9.5 and Axolotl 0.19.0, each in its own virtual environment under .interop/ (CPU torch
first, then the tool, from the package index): export a tiny local model's LoRA, full fine-tune and DoRA configs over
OpenAI-messages and alpaca data, have the tool parse and validate each config, then train 2 steps on this CPU.
Prints one line per (tool, method, format) with what passed; exit 1 if any check failed.

    python bench/interop.py [--tools llamafactory,axolotl] [--methods lora,full,dora] [--skip-install] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENVS = ROOT / ".interop"
TOOLS = {"llamafactory": "llamafactory==0.9.5", "axolotl": "axolotl==0.19.0"}
TORCH = "torch==2.13.0"
# LLaMA-Factory 0.9.5 imports torchaudio unconditionally (llamafactory/data/mm_plugin.py); the index has no
# torchaudio build for this torch (venv() removes one that does not import) and text training never calls it, so a
# stub module stands in when the real one does not import
AUDIO_STUB = """
import importlib.machinery, sys, types
try:
    import torchaudio  # noqa: F401
except (ImportError, OSError):
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = stub
"""
VALIDATE = {
    # the tool's own argument parsing and validation, without training
    "llamafactory": AUDIO_STUB + "import yaml\nfrom llamafactory.hparams import get_train_args\n"
                                 "get_train_args(yaml.safe_load(open(sys.argv[1])))\n",
    "axolotl": "from axolotl.cli.config import load_cfg; import sys; load_cfg(sys.argv[1])",
}
TRAIN = {  # arguments to the tool's python, before the config path
    "llamafactory": ["-c", AUDIO_STUB + "import runpy\nsys.argv = ['llamafactory-cli', 'train', sys.argv[1]]\n"
                                        "runpy.run_module('llamafactory.cli', run_name='__main__')\n"],
    "axolotl": ["-m", "axolotl.cli.train"],
}


def venv(tool: str, install: bool) -> Path:
    py = VENVS / tool / "bin" / "python"
    if install and not py.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / tool)], check=True)
    if install:
        pip = [str(py), "-m", "pip", "install", "-q"]
        pin = VENVS / "constraints.txt"  # the CPU build, held: the tool's torchvision/torchaudio would pull CUDA torch
        pin.write_text(TORCH + "\n")
        subprocess.run([*pip, TORCH], check=True)
        subprocess.run([*pip, "-c", str(pin), TOOLS[tool]], check=True)
        drop_broken_extensions(py)
    return py


def drop_broken_extensions(py: Path) -> None:
    """The index may serve a torchvision or torchaudio built for another torch (`operator torchvision::nms does
    not exist`, `Could not load this library: _torchaudio.abi3.so`); transformers and LLaMA-Factory import them
    when present and fail. Text training needs neither: a package that does not import is removed."""
    for pkg in ("torchvision", "torchaudio"):
        ok = subprocess.run([str(py), "-c", f"import {pkg}"], capture_output=True)
        if ok.returncode and b"No module named" not in ok.stderr:
            subprocess.run([str(py), "-m", "pip", "uninstall", "-y", "-q", pkg], check=True)


def fixtures(work: Path) -> tuple[Path, dict[str, Path]]:
    from tests.trainer_fixtures import make_records
    from trainer.tiny import build_tiny_model

    records = make_records(40)
    texts = [m["content"] for r in records for m in r["messages"]]
    model = build_tiny_model(work / "model", texts, pretrain_steps=20)
    data = {"openai": work / "openai.jsonl", "alpaca": work / "alpaca.jsonl"}
    data["openai"].write_text("".join(json.dumps(r) + "\n" for r in records))
    data["alpaca"].write_text("".join(json.dumps({"instruction": r["messages"][1]["content"], "input": "",
                                                  "output": r["messages"][2]["content"]}) + "\n" for r in records))
    return model, data


def exported(tool: str, method: str, fmt: str, model: Path, data: Path, work: Path, steps: int) -> Path:
    from advisor.export import export, write_export
    from core.train_config import TrainConfig

    m = {"name": "full"} if method == "full" else {"name": method, "lora_r": 8, "lora_alpha": 16}  # lora, dora
    cfg = TrainConfig.model_validate({
        "model": {"path": str(model)}, "data": {"path": str(data), "max_seq_len": 128, "val_size": 0.1},
        "method": m, "output": {"dir": str(work / f"out-{tool}-{method}-{fmt}")},
        "training": {"max_steps": steps, "batch_size": 2, "precision": "fp32", "logging_steps": 1,
                     "save_steps": steps, "eval_steps": steps}})
    path = work / f"{tool}-{method}-{fmt}" / "config.yaml"
    out = export(cfg, tool, path)
    if tool == "axolotl" and method != "full":
        # on a CPU only: Axolotl turns on its Triton LoRA kernels by default, which need CUDA (a speed setting)
        out.config.update(lora_mlp_kernel=False, lora_qkv_kernel=False, lora_o_kernel=False)
    write_export(out, path)
    return path


def check(py: Path, tool: str, config: Path) -> dict:
    # offline like tunewise itself: the tools must not wait on the network for a local model
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "DISABLE_VERSION_CHECK": "1", "OMP_NUM_THREADS": "4",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "DO_NOT_TRACK": "1", "AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled"}
    t = time.time()
    out = {"validated": False, "trained": None}
    try:
        v = subprocess.run([str(py), "-c", VALIDATE[tool], str(config)], capture_output=True, text=True, env=env,
                           cwd=config.parent, timeout=300)
        out.update(validated=v.returncode == 0, validate_error=v.stderr.strip().splitlines()[-1:] if v.returncode else [])
        if v.returncode == 0:
            r = subprocess.run([str(py), *TRAIN[tool], str(config)], capture_output=True, text=True, env=env,
                               cwd=config.parent, timeout=1200)
            out["trained"] = r.returncode == 0
            if r.returncode:
                out["train_error"] = (r.stderr or r.stdout).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired as e:
        out["validate_error" if not out["validated"] else "train_error"] = [f"timed out after {e.timeout} s"]
    out["seconds"] = round(time.time() - t, 1)
    return out


def adapter_as_asked(work: Path, tool: str, method: str, fmt: str, r: dict) -> bool:
    """The adapter the tool saved is the method asked for: DoRA's adapter_config.json says use_dora, LoRA's not."""
    if method == "full":
        return True
    saved = work / f"out-{tool}-{method}-{fmt}" / "adapter_config.json"
    try:
        dora = json.loads(saved.read_text(encoding="utf-8")).get("use_dora", False)
    except (OSError, ValueError):
        r["train_error"] = [f"no readable {saved.name} in the output folder"]
        return False
    if dora != (method == "dora"):
        r["train_error"] = [f"the saved adapter has use_dora={dora}"]
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tools", default="llamafactory,axolotl")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--methods", default="lora,full,dora", help="fine-tune methods to export (lora, full, dora)")
    args = ap.parse_args()
    work = VENVS / "work"
    work.mkdir(parents=True, exist_ok=True)
    model, data = fixtures(work)
    failed = 0
    for tool in args.tools.split(","):
        try:
            py = venv(tool, not args.skip_install)
        except subprocess.CalledProcessError as e:
            print(f"{tool}: install failed ({e})")
            failed += 1
            continue
        for method in args.methods.split(","):
            for fmt in ("openai", "alpaca"):
                r = check(py, tool, exported(tool, method, fmt, model, data[fmt], work, args.steps))
                ok = r["validated"] and r.get("trained") and adapter_as_asked(work, tool, method, fmt, r)
                failed += not ok
                print(f"{tool:13s} {method:5s} {fmt:7s} validated={r['validated']} trained={r.get('trained')} "
                      f"({r['seconds']} s) {r.get('validate_error') or r.get('train_error') or ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
