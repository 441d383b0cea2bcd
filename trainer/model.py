"""Load the base model and tokenizer from a local folder and wrap it for the chosen method
(full, LoRA, QLoRA on a 4-bit base, P-tuning). Never downloads; safetensors only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.train_config import TrainConfig


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(name: str):
    import torch

    if name == "auto":
        if device_kind() == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@dataclass(frozen=True)
class PrecisionPlan:
    """How a run trains, and the name `tunewise estimate` knows it by (the trainer trains what was estimated)."""

    name: str  # bf16 | fp16 | bf16-mixed | fp16-mixed | fp32
    load_dtype: Any  # the dtype the weights are loaded (and trained) in
    compute_dtype: Any  # matmuls (autocast or the weights' own)
    bf16: bool  # TrainingArguments flags (autocast)
    fp16: bool


LEGACY_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def resolve_precision(cfg: TrainConfig, device: str) -> PrecisionPlan:
    import torch

    name = cfg.training.precision
    if name == "auto":
        if cfg.model.dtype != "auto":
            name = LEGACY_DTYPES[cfg.model.dtype]
        else:
            name = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name.startswith("fp16") and device != "cuda":
        raise UserError(f"training.precision {name} needs a CUDA GPU (CPUs have no fast fp16); use fp32 or bf16")
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if name == "fp32":
        return PrecisionPlan(name, torch.float32, torch.float32, False, False)
    if name.endswith("-mixed"):
        compute = half[name[:4]]
        return PrecisionPlan(name, torch.float32, compute, compute == torch.bfloat16 and device == "cuda",
                             compute == torch.float16)
    # pure 16-bit: fp16 weights cannot use the gradient scaler (it refuses fp16 gradients), bf16 needs none
    return PrecisionPlan(name, half[name], half[name], name == "bf16" and device == "cuda", False)


@dataclass(frozen=True)
class RemoteCodePolicy:
    """Who may allow Python shipped with a model folder (an `auto_map` in its config.json) to run: only the person
    at the keyboard, by `--trust-remote-code` on the command line (`flag`) or a yes on a terminal (`ask`, called
    with the question). Never a file: a run folder or config someone sent says what it likes."""

    flag: bool = False
    ask: Any = None  # Callable[[str], bool] | None: a terminal prompt; None where nobody can answer


_policy = RemoteCodePolicy()
_answers: dict[str, bool] = {}


def set_remote_code_policy(policy: RemoteCodePolicy) -> None:
    """Set by the command line before any model is loaded (the default refuses all shipped code)."""
    global _policy
    _policy = policy
    _answers.clear()


def remote_code_granted() -> bool:
    """Whether the command line said --trust-remote-code (handed on to launched training processes)."""
    return _policy.flag or any(_answers.values())


def read_model_config(path: str | Path) -> dict:
    """A model folder's config.json, parsed; a missing, truncated or non-object file is a UserError naming it."""
    f = Path(path) / "config.json"
    if not f.is_file():
        raise UserError(f"`{path}` is not a local model folder (no config.json there); tunewise never downloads "
                        "models: point model.path at a folder with config.json and .safetensors weights")
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise UserError(f"{f}:{where} not valid JSON ({getattr(e, 'msg', None) or e.reason}): the file is "
                        "truncated or damaged; copy the model folder again") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{f}: a JSON {type(cfg).__name__}, not a model config object; copy the model folder again")
    return cfg


def shipped_code(path: str | Path) -> list[str]:
    """The Python files a model folder asks to run (`auto_map` in config.json or tokenizer_config.json)."""
    found: list[str] = []
    for name in ("config.json", "tokenizer_config.json"):
        f = Path(path) / name
        try:
            auto = json.loads(f.read_text(encoding="utf-8")).get("auto_map") if f.is_file() else None
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            auto = None
        refs = list(auto.values()) if isinstance(auto, dict) else []
        for ref in refs:
            for r in ref if isinstance(ref, list) else [ref]:
                if isinstance(r, str) and "." in r:
                    module = r.split("--")[-1].rsplit(".", 1)[0] + ".py"
                    if module not in found:
                        found.append(module)
    return found


def native_causal_lm(model_type) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def trust_remote_code_for(path: str | Path, requested: bool = False) -> bool:
    """Whether loading `path` may run the Python it ships. False where it ships none or transformers has the
    architecture built in (its own code is used, the shipped files are ignored) unless --trust-remote-code was
    given; True only by the command line's flag or a yes on a terminal; otherwise a UserError saying how to allow
    it. `requested`: the config's model.trust_remote_code (it only changes the message: a file cannot allow it)."""
    files = shipped_code(path)
    if not files:
        return False
    if _policy.flag:
        return True
    native = native_causal_lm(read_model_config(path).get("model_type"))
    if native:
        return False
    key = str(Path(path).resolve())
    if key not in _answers and _policy.ask is not None:
        _answers[key] = bool(_policy.ask(f"The model in `{path}` ships Python code ({', '.join(files)}) that runs "
                                         "on this machine when it loads. Run it?"))
    if _answers.get(key):
        return True
    why = (" (model.trust_remote_code: true in a config is not enough: the config may have come with the files)"
           if requested else "")
    raise UserError(f"the model in `{path}` needs the Python code it ships ({', '.join(files)}) and tunewise runs "
                    f"such code only when you pass --trust-remote-code on the command line{why}; read those files "
                    "first, or use a model transformers supports natively")


def check_model_folder(path: str, trust_remote_code: bool = False) -> dict:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise UserError(f"model.path `{path}` is not a local model folder (no config.json there); "
                        "tunewise never downloads models")
    cfg = read_model_config(p)
    if not native_causal_lm(cfg.get("model_type")) and not (cfg.get("auto_map") and
                                                            trust_remote_code_for(path, trust_remote_code)):
        raise UserError(f"model.path `{path}` is a `{cfg.get('model_type')}` model, not a causal language model")
    weights = sorted(p.glob("*.safetensors"))
    if not weights:
        raise UserError(f"model.path `{path}` has no .safetensors weights (tunewise loads safetensors only, "
                        "never pickled .bin files)")
    for w in weights:
        check_safetensors(w)
    return cfg


def check_safetensors(path: Path) -> None:
    """A weights file that can be read and is whole: its header parses and the file is as long as the header says
    (a copy cut short or a file without read permission is named, not reported as missing or crashing the load)."""
    import struct

    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            header = json.loads(f.read(n)) if 2 <= n <= min(size - 8, 100_000_000) else None
    except PermissionError:
        raise UserError(f"{path}: the weights cannot be read (permission denied); fix the file's permissions "
                        "(chmod +r)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2] if isinstance(header, dict) \
        else None
    if not ends or size < 8 + n + max(ends):
        raise UserError(f"{path}: not a complete safetensors file (damaged or cut short while copying); copy the "
                        "model folder again")


def check_run_base(run_dir: str | Path, cfg: TrainConfig) -> None:
    """The base model a finished run was trained on is still where its config says (eval and merge load it)."""
    if not (Path(cfg.model.path) / "config.json").is_file():
        raise UserError(f"the base model of `{run_dir}` is no longer at `{cfg.model.path}` (model.path in "
                        f"{Path(run_dir) / 'tunewise_config.yaml'}): move it back, or edit model.path there to "
                        "where it is now")
    check_model_folder(cfg.model.path, cfg.model.trust_remote_code)
    for w in sorted(Path(run_dir).glob("*.safetensors")):  # the run's own adapter or model
        check_safetensors(w)


def load_tokenizer(cfg: TrainConfig):
    tok = open_tokenizer(cfg.model.path, trust_remote_code_for(cfg.model.path, cfg.model.trust_remote_code))
    if cfg.data.chat_template:
        tok.chat_template = read_chat_template(cfg.data.chat_template)
    if tok.eos_token is None:
        raise UserError(f"the tokenizer in `{cfg.model.path}` has no EOS token: the model could not learn to stop")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # safe: the collator masks padding by position, not by token id
    return tok


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def open_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """AutoTokenizer from a local folder; missing or damaged tokenizer files are a UserError naming the folder."""
    from transformers import AutoTokenizer

    p = Path(path)
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"`{path}` has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); copy them from "
                        "the model's original folder")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except UserError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"the tokenizer in `{path}` cannot be loaded ({first}): its files are missing or damaged; "
                        "copy them again from the model's original folder") from None
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises its own Exception type for a bad file
        if type(e).__name__ != "Exception":
            raise
        raise UserError(f"the tokenizer in `{path}` cannot be loaded ({str(e)[:200]}): tokenizer.json is damaged; "
                        "copy it again from the model's original folder") from None


def read_chat_template(value: str) -> str:
    """data.chat_template: an inline Jinja template, or a path to one. Something that looks like a path (no Jinja
    markup, a file suffix or a slash) must exist: it is never rendered as if it were a template."""
    from core.train_config import template_is_path

    if not template_is_path(value):
        return value
    p = Path(value).expanduser()
    if not p.is_file():
        raise UserError(f"data.chat_template `{value}` looks like a path but there is no such file; give the "
                        "template file's path, or the template itself inline")
    return p.read_text(encoding="utf-8")


def require_bitsandbytes() -> None:
    if not bitsandbytes_available():
        raise UserError("QLoRA needs bitsandbytes: pip install 'tunewise[qlora]' (or choose method lora)")


def bitsandbytes_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install is as good as none
        return False
    return True


def disable_avx512_repack(model) -> int:
    """bitsandbytes on CPUs with AVX512-BF16 repacks 4-bit weights into an inference-only layout on any
    no-grad forward (e.g. evaluation); training then silently stops learning. Turn that off."""
    n = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


@dataclass(frozen=True)
class AttentionPlan:
    """The attention kernel a run loads the model with, and why (summary.json `attention`)."""

    name: str  # flash_attention_2 | sdpa | eager
    why: str

    @property
    def estimate_attention(self) -> str:
        return {"flash_attention_2": "flash"}.get(self.name, self.name)

    def as_dict(self) -> dict:
        return {"name": self.name, "why": self.why}


def choose_attention(setting: str, device: str, plan: PrecisionPlan, model_cfg: dict) -> AttentionPlan:
    """training.attention resolved: flash-attn when installed on CUDA with a 16-bit run, else SDPA (transformers'
    memory-efficient default), eager only when asked or when the model soft-caps its attention scores (Gemma 2:
    SDPA would silently drop the cap). `model_cfg` is the model's config.json."""
    import importlib.util

    import torch

    sixteen = plan.compute_dtype in (torch.bfloat16, torch.float16)
    flash_ok = device == "cuda" and sixteen and importlib.util.find_spec("flash_attn") is not None
    if setting == "flash_attention_2" and not flash_ok:
        raise UserError("training.attention: flash_attention_2 needs a CUDA GPU, a 16-bit run (bf16/fp16) and "
                        "pip install flash-attn; auto picks it when it can")
    if setting != "auto":
        return AttentionPlan(setting, f"training.attention: {setting}")
    text = {**model_cfg, **(model_cfg.get("text_config") or {})}
    softcap = bool(text.get("attn_logit_softcapping"))
    if flash_ok:
        return AttentionPlan("flash_attention_2", "flash-attn is installed and the run is 16-bit on CUDA: no "
                             "attention scores kept (memory linear in the sequence)")
    if softcap:
        return AttentionPlan("eager", "the model soft-caps its attention scores, which SDPA cannot do (install "
                             "flash-attn on CUDA for a kernel that can): eager attention keeps batch × heads × "
                             "sequence² scores per layer")
    return AttentionPlan("sdpa", "PyTorch scaled-dot-product attention: no attention scores kept (memory linear "
                         "in the sequence)")


def load_base(cfg: TrainConfig, tokenizer, plan: PrecisionPlan | None = None, attention: AttentionPlan | None = None):
    """The base model as the run trains on it: the run's dtype, 4-bit for QLoRA, the chosen attention kernel."""
    from transformers import AutoModelForCausalLM

    from core.methods import method

    m = cfg.method
    spec = method(m.name)
    plan = plan or resolve_precision(cfg, device_kind())
    kw = dict(local_files_only=True, use_safetensors=True, dtype=plan.load_dtype,
              trust_remote_code=trust_remote_code_for(cfg.model.path, cfg.model.trust_remote_code))
    if attention is not None:
        kw["attn_implementation"] = attention.name
    if spec.quantized_base:
        require_bitsandbytes()
        from transformers import BitsAndBytesConfig

        compute = plan.compute_dtype if m.bnb_4bit_compute_dtype == "auto" else resolve_dtype(m.bnb_4bit_compute_dtype)
        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=m.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=m.bnb_4bit_use_double_quant, bnb_4bit_compute_dtype=compute)
        if device_kind() == "cuda":
            import os

            kw["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForCausalLM.from_pretrained(cfg.model.path, **kw)
    if spec.quantized_base and device_kind() == "cuda":
        import torch

        # quantising the 16-bit checkpoint while loading leaves the converted shards in the allocator's cache:
        # hand them back before training so the device holds what the steps need, not the load's high-water mark
        torch.cuda.empty_cache()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def load_model(cfg: TrainConfig, tokenizer, plan: PrecisionPlan | None = None,
               attention: AttentionPlan | None = None):
    """The model to train: the base, wrapped in the method's fresh adapter (none for full fine-tuning)."""
    from core.methods import method

    m = cfg.method
    spec = method(m.name)
    plan = plan or resolve_precision(cfg, device_kind())
    model = load_base(cfg, tokenizer, plan, attention)
    gc = cfg.training.gradient_checkpointing
    if spec.trains_all_weights:
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    # Reentrant checkpointing (inputs made to require grad) for adapters: measured 0.5-0.6 GB less than the
    # non-reentrant mode on a 110M Llama with LoRA/QLoRA (bench/estimate_vs_measured.py)
    if spec.quantized_base:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc,
                                                gradient_checkpointing_kwargs={"use_reentrant": True})
        if not m.upcast_embeddings:  # undo peft's fp32 upcast of the two vocabulary-sized matrices
            model.get_input_embeddings().to(plan.compute_dtype)
            if model.get_output_embeddings() is not None:
                model.get_output_embeddings().to(plan.compute_dtype)
        disable_avx512_repack(model)
    elif gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    model = get_peft_model(model, peft_config(m))
    if spec.quantized_base:
        disable_avx512_repack(model)
    return model


def peft_config(m):
    """The peft config of a method section (its registry entry builds it: core/methods.py)."""
    from core.methods import method

    return method(m.name).peft_config(m)


def count_trainable(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
