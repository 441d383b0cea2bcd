"""`tunewise estimate`: will this fine-tune fit, and what will it cost?"""

from __future__ import annotations

import argparse

from advisor.cli.common import add_json_flag, console, emit, positive, subparser
from advisor.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = subparser(
        sub, "estimate", "memory, time and cost of a fine-tune before launch",
        "Estimate per-GPU memory (weights, gradients, optimizer states, activations, ...), whether the job "
        "fits, what would make it fit, and GPU-hours for a dataset size.",
        [
            "tunewise estimate --params-b 7 --method qlora --gpu-memory-gb 24",
            "tunewise estimate --model ./my-model --method lora --seq-len 2048 --batch-size 4",
            "tunewise estimate --params-b 70 --method full --gpus 8 --gpu-memory-gb 80 --sharding zero3 \\\n"
            "      --examples 200000 --avg-tokens 600 --epochs 2 --gpu-tflops 989 --json",
            "tunewise estimate --from axolotl.yaml --gpu-memory-gb 24      # an Axolotl/LLaMA-Factory/TRL config",
        ],
    )
    p.add_argument("--from", dest="from_config", metavar="CONFIG",
                   help="read the model, method, sequence length, batch, checkpointing, optimizer, precision and "
                        "sharding from an Axolotl, LLaMA-Factory or TRL config (flags given here override it)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="PATH", help="local model folder (reads config.json, counts parameters exactly)")
    src.add_argument("--params-b", type=positive(float, "--params-b"), metavar="B", help="model size in billions")
    from advisor.methods import REGISTRY

    p.add_argument("--method", choices=list(REGISTRY))
    p.add_argument("--seq-len", type=positive(int, "--seq-len"), help="default 1024")
    p.add_argument("--batch-size", type=positive(int, "--batch-size"), help="per GPU (default 1)")
    p.add_argument("--grad-accum", type=positive(int, "--grad-accum"), help="default 1")
    p.add_argument("--gpus", type=positive(int, "--gpus"), default=1)
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
    from advisor.estimate import EstimateRequest, estimate

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
        gpus=args.gpus, gpu_memory_gb=args.gpu_memory_gb, gradient_checkpointing=job["gradient_checkpointing"],
        optimizer=job["optimizer"], precision=job["precision"], lora_r=job["lora_r"], sharding=job["sharding"],
        lora_targets=targets, lora_dropout=args.lora_dropout, adapter_dtype=args.adapter_dtype,
        upcast_embeddings=not args.no_upcast_embeddings,
        device=args.device, examples=args.examples, avg_tokens=args.avg_tokens, epochs=args.epochs,
        gpu_tflops=args.gpu_tflops, utilization=args.utilization, price_per_gpu_hour=args.price_per_gpu_hour,
    )
    est = estimate(shape, req)
    emit(est.model_dump(mode="json"), args.json, lambda: render(est))
    return 0


DEFAULTS = {"method": None, "seq_len": 1024, "batch_size": 1, "grad_accum": 1, "optimizer": "adamw",
            "precision": "bf16", "lora_r": 16, "lora_targets": "all-linear", "sharding": "none"}


def settings(args: argparse.Namespace) -> dict:
    """The job's settings: flags given here, else the tool config of --from, else the defaults."""
    job = dict(DEFAULTS, gradient_checkpointing=True)
    if args.from_config:
        from advisor.export.read import read_tool_config

        t = read_tool_config(args.from_config)
        job.update(method=t.method, seq_len=t.seq_len, batch_size=t.batch_size, grad_accum=t.grad_accum,
                   optimizer=t.optimizer, precision=t.precision, lora_r=t.lora_r, sharding=t.sharding,
                   lora_targets=",".join(t.lora_targets), gradient_checkpointing=t.gradient_checkpointing,
                   model=t.model, local_model=t.local_model)
    for key in DEFAULTS:
        if getattr(args, key) is not None:
            job[key] = getattr(args, key)
    if args.no_gradient_checkpointing:
        job["gradient_checkpointing"] = False
    if job["method"] is None:
        raise UserError("give --method (or --from a tool config that names it)")
    return job


def model_shape(args: argparse.Namespace, job: dict):

    from advisor.estimate import shape_from_config, shape_from_params_b

    if args.model:
        return shape_from_config(args.model)
    if args.params_b:
        return shape_from_params_b(args.params_b)
    if job.get("local_model"):
        return shape_from_config(job["local_model"])
    if job.get("model"):
        raise UserError(f"the config's model `{job['model']}` is not a local model folder: add --model PATH or "
                        "--params-b B")
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
    phases = ", ".join(f"{k.replace('_', ' ')} {v:,.2f} GB" for k, v in est.phases.items())
    console.print(f"peak at the [bold]{est.peak_phase.replace('_', ' ')}[/]: {est.allocated_gb:,.2f} GB allocated "
                  f"({phases}); the device reading adds the allocator's reserve and the CUDA context")
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
