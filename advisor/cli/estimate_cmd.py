"""`tunewise estimate`: will this fine-tune fit, and what will it cost?"""

from __future__ import annotations

import argparse

from advisor.cli.common import add_json_flag, console, emit, positive, subparser
from core.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "estimate", "memory, time and cost of a fine-tune before launch",
        "Estimate per-GPU memory (weights, gradients, optimizer states, activations, ...), whether the job "
        "fits, what would make it fit, and GPU-hours for a dataset size.",
        [
            "tunewise estimate --params-b 7 --method qlora --gpu-memory-gb 24",
            "tunewise estimate --model ./my-model --method lora --seq-len 2048 --batch-size 4",
            "tunewise estimate --model qwen2.5-7b --method qlora --seq-len 8192   # a known model's published shape",
            "tunewise estimate --params-b 70 --method full --gpus 8 --gpu-memory-gb 80 --sharding zero3 \\\n"
            "      --examples 200000 --avg-tokens 600 --epochs 2 --gpu-tflops 989 --json",
            "tunewise estimate --from axolotl.yaml --gpu-memory-gb 24      # an Axolotl/LLaMA-Factory/TRL config",
        ],
    )
    p.add_argument("--from", dest="from_config", metavar="CONFIG",
                   help="read the model, method, sequence length, batch, checkpointing, optimizer, precision and "
                        "sharding from an Axolotl, LLaMA-Factory or TRL config (flags given here override it)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="PATH|NAME",
                     help="local model folder (reads config.json, counts parameters exactly), or the name of a common "
                          "open model (qwen2.5-7b, Qwen/Qwen2.5-7B-Instruct, llama-3.1-8b, gemma-2-9b, phi-4, "
                          "mistral-7b, olmo-2-7b, smollm2-1.7b, granite-3-8b, ...: their published shapes, offline)")
    src.add_argument("--params-b", type=positive(float, "--params-b"), metavar="B", help="model size in billions")
    p.add_argument("--family", metavar="NAME", help="with --params-b: scale the nearest model of this family "
                   "(qwen2.5, llama-3.1, gemma-2, phi-3, ...) instead of a Llama shape")
    from core.methods import REGISTRY

    p.add_argument("--method", choices=list(REGISTRY))
    p.add_argument("--seq-len", type=positive(int, "--seq-len"), help="default 1024")
    p.add_argument("--batch-size", type=positive(int, "--batch-size"), help="per GPU (default 1)")
    p.add_argument("--grad-accum", type=positive(int, "--grad-accum"), help="default 1")
    p.add_argument("--gpus", type=positive(int, "--gpus"), help="default 1, or the processes --from's config names")
    p.add_argument("--gpu-memory-gb", type=positive(float, "--gpu-memory-gb"), default=24.0)
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--optimizer", choices=["adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit", "adafactor", "sgd"],
                   help="default adamw")
    p.add_argument("--precision", choices=["bf16", "fp16", "bf16-mixed", "fp16-mixed", "fp32"],
                   help="bf16/fp16: pure 16-bit (weights, gradients, optimizer states); *-mixed: fp32 weights with "
                        "16-bit autocast (AMP); fp32 (default bf16)")
    p.add_argument("--lora-r", type=positive(int, "--lora-r"), help="default 16")
    p.add_argument("--lora-targets", metavar="NAMES",
                   help="comma-separated module names (q_proj,v_proj; w1,w2,w3; query_key_value) or all-linear "
                        "(the default)")
    p.add_argument("--lora-dropout", type=float, default=0.05, metavar="P")
    p.add_argument("--no-upcast-embeddings", action="store_true",
                   help="QLoRA: keep embeddings and lm_head in the compute dtype (peft's preparation upcasts them)")
    p.add_argument("--adapter-dtype", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="dtype of the LoRA / prompt-encoder weights (peft keeps them fp32)")
    p.add_argument("--sharding", choices=["none", "zero2", "zero3", "fsdp"], help="default none")
    p.add_argument("--loss", choices=["chunked", "chunked_logits", "plain"],
                   help="chunked: the logits never built whole (tunewise train's default; Liger / Cut Cross-Entropy "
                        "elsewhere); chunked_logits: torchtune / Axolotl chunked cross-entropy over built logits; "
                        "plain: the full logits (HF Trainer, TRL). Default chunked, or what --from's config sets")
    p.add_argument("--attention", choices=["auto", "sdpa", "flash", "eager"],
                   help="sdpa / flash keep no attention scores; eager keeps batch × heads × sequence² per layer; "
                        "auto (default): the model config's choice, eager for soft-capped attention (Gemma 2)")
    p.add_argument("--no-low-memory-loading", dest="low_memory_loading", action="store_false", default=None,
                   help="FSDP / ZeRO-3: every GPU loads the whole model before it is sharded (tunewise train and "
                        "DeepSpeed load each rank's shard only)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="where it trains (sets the fixed overhead)")
    p.add_argument("--examples", type=positive(int, "--examples", allow_zero=True))
    p.add_argument("--avg-tokens", type=positive(float, "--avg-tokens"))
    p.add_argument("--epochs", type=positive(float, "--epochs"), default=1.0)
    p.add_argument("--gpu-tflops", type=positive(float, "--gpu-tflops"), default=312.0,
                   help="peak dense bf16 TFLOP/s of one GPU (A100: 312, H100 SXM: 989, RTX 4090: 165)")
    p.add_argument("--utilization", type=positive(float, "--utilization"), default=0.4)
    p.add_argument("--price-per-gpu-hour", type=positive(float, "--price-per-gpu-hour", allow_zero=True))
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.estimate import EstimateRequest, estimate

    if (args.examples is None) != (args.avg_tokens is None):
        raise UserError("--examples and --avg-tokens go together (GPU-hours need both)")
    if args.utilization > 1:
        raise UserError(f"--utilization must be at most 1, got {args.utilization}")
    if not 0 <= args.lora_dropout < 1:
        raise UserError(f"--lora-dropout must be in [0, 1), got {args.lora_dropout}")
    job = settings(args)
    targets = tuple(t.strip() for t in job["lora_targets"].split(",") if t.strip())
    if not targets:
        raise UserError("--lora-targets needs at least one module name (or all-linear)")
    shape = model_shape(args, job)
    req = EstimateRequest(
        method=job["method"], seq_len=job["seq_len"], batch_size=job["batch_size"], grad_accum=job["grad_accum"],
        gpus=job["gpus"], gpu_memory_gb=args.gpu_memory_gb, gradient_checkpointing=job["gradient_checkpointing"],
        optimizer=job["optimizer"], precision=job["precision"], lora_r=job["lora_r"], sharding=job["sharding"],
        lora_targets=targets, lora_dropout=args.lora_dropout, adapter_dtype=args.adapter_dtype,
        loss=job["loss"], attention=job["attention"], low_memory_loading=job["low_memory_loading"],
        upcast_embeddings=not args.no_upcast_embeddings,
        device=args.device, examples=args.examples, avg_tokens=args.avg_tokens, epochs=args.epochs,
        gpu_tflops=args.gpu_tflops, utilization=args.utilization, price_per_gpu_hour=args.price_per_gpu_hour,
    )
    est = estimate(shape, req)
    emit(est.model_dump(mode="json"), args.json, lambda: render(est))
    return 0


DEFAULTS = {"method": None, "seq_len": 1024, "batch_size": 1, "grad_accum": 1, "optimizer": "adamw",
            "precision": "bf16", "lora_r": 16, "lora_targets": "all-linear", "sharding": "none", "loss": "chunked",
            "attention": "auto", "low_memory_loading": True, "gpus": 1}


def settings(args: argparse.Namespace) -> dict:
    """The job's settings: flags given here, else the tool config of --from, else the defaults."""
    job = dict(DEFAULTS, gradient_checkpointing=True)
    if args.from_config:
        from advisor.export.read import read_tool_config

        t = read_tool_config(args.from_config)
        job.update(method=t.method, seq_len=t.seq_len, batch_size=t.batch_size, grad_accum=t.grad_accum,
                   optimizer=t.optimizer, precision=t.precision, lora_r=t.lora_r, sharding=t.sharding,
                   lora_targets=",".join(t.lora_targets), gradient_checkpointing=t.gradient_checkpointing,
                   model=t.model, local_model=t.local_model, loss=t.loss, attention=t.attention,
                   low_memory_loading=t.low_memory_loading, gpus=t.gpus or 1)
    for key in DEFAULTS:
        if getattr(args, key) is not None:
            job[key] = getattr(args, key)
    if args.no_gradient_checkpointing:
        job["gradient_checkpointing"] = False
    if job["method"] is None:
        raise UserError("give --method (or --from a tool config that names it)")
    return job


def model_shape(args: argparse.Namespace, job: dict):

    from core.estimate import shape_from_config, shape_from_params_b
    from core.estimate.shapes import shape_for_model, shape_from_name

    if args.family and not args.params_b:
        raise UserError("--family goes with --params-b (a size scaled from that family's shapes)")
    if args.model:
        return shape_for_model(args.model)
    if args.params_b:
        return shape_from_params_b(args.params_b, args.family)
    if job.get("local_model"):
        return shape_from_config(job["local_model"])
    if job.get("model"):
        known = shape_from_name(job["model"])
        if known is not None:
            return known
        raise UserError(f"the config's model `{job['model']}` is not a local model folder nor a model tunewise "
                        "knows the shape of: add --model PATH|NAME or --params-b B")
    raise UserError("give --model PATH or --params-b B (or --from a tool config with a local model)")


def render(est) -> None:
    from rich.table import Table
    t = Table(title=f"{est.method} · {est.params_b:g}B parameters · "
                    f"{est.trainable_params:,} trainable ({est.trainable_share:.3%})", title_justify="left")
    t.add_column("per GPU", style="bold")
    t.add_column("GB", justify="right")
    for k, v in est.per_gpu_gb.items():
        if v:
            t.add_row(k.replace("_", " "), f"{v:,.2f}")
    verdict = "[green]fits[/]" if est.fits else "[red]does not fit[/]"
    t.add_row("[bold]total (device reading)[/]", f"[bold]{est.total_gb:,.2f}[/]")
    console.print(t)
    console.print(f"shape: {est.assumptions['model_shape']}")
    phases = ", ".join(f"{k.replace('_', ' ')} {v:,.2f} GB" for k, v in est.phases.items())
    console.print(f"peak at the [bold]{est.peak_phase.replace('_', ' ')}[/]: {est.allocated_gb:,.2f} GB allocated "
                  f"({phases}); the device reading adds the allocator's reserve and the CUDA context")
    if est.load_gb is not None:
        console.print(f"while loading: {est.load_gb:,.2f} GB on the device ({est.assumptions.get('load', '')}); "
                      f"the training step: {est.step_gb:,.2f} GB")
    console.print(f"{verdict} in {est.gpu_memory_gb:g} GB (headroom {est.headroom_gb:+,.2f} GB)"
                  + (": only if the allocator releases its reserve — tight, expect slower steps" if est.tight else ""))
    if est.suggestions:
        s = Table(title="what would make it fit", title_justify="left")
        s.add_column("change")
        s.add_column("flags", style="cyan")
        s.add_column("total GB", justify="right")
        s.add_column("fits")
        for sg in est.suggestions:
            s.add_row(sg.change, sg.flags, f"{sg.total_gb:,.2f}", "yes" if sg.fits else "no")
        console.print(s)
    if est.gpu_hours is not None:
        line = f"time: {est.gpu_hours:,.2f} GPU-hours ({est.wall_hours:,.2f} h wall on {est.assumptions['gpus']} GPU(s))"
        if est.cost is not None:
            line += f", cost ≈ {est.cost:,.2f}"
        console.print(line)
    console.print("[dim]assumptions: " + "; ".join(f"{k}={v}" for k, v in est.assumptions.items()) + "[/]")
