"""GPU checks (device machine), plain torch/transformers/deepspeed/diffusers, no Ray:
1. judge SFT: DeepSpeed ZeRO-2 bf16 steps of a Qwen2.5-VL-7B-shaped judge (random weights) with
   LoRA + frozen vision tower + gradient checkpointing, through unireward.train.reward/runtime/sft;
2. the same, full fine-tuning, on a Qwen2.5-VL-3B-shaped judge;
3. VLM DPO step (sigmoid) on the 7B-shaped LoRA policy (reference = adapters disabled);
4. Diffusion-DPO step on an SD1.5-shaped UNet2D and on a ModelScope-shaped UNet3D (bf16)."""

import json
import os
import time
import traceback

import torch

os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29517")
import deepspeed

deepspeed.init_distributed("nccl")
from unireward.bench import common as bench
from unireward.config import TrainingConfig
from unireward.judge.model import RewardModel
from unireward.judge.protocols import default_registry
from unireward.judge.records import read_items
from unireward.synth.world import generate_world
from unireward.train import reward, runtime, sft
from unireward.train.data import SFTExample, from_preference
from unireward.train.losses import dpo, sequence_logps

OUT = os.environ.get("OUT", "/tmp")
res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "deepspeed": deepspeed.__version__}
bench.SHAPES["3b"] = dict(
    text=dict(
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        mrope_section=[16, 24, 24],
        vocab_size=151936,
    ),
    vision=bench.SHAPES["7b"]["vision"],
)
world = generate_world("/tmp/w", n=2, seed=1, tasks=("image_generation", "image_understanding"))
items, rows = read_items(world.items["image_generation"])
reg = default_registry()
pairs = [(it, r) for it, r in zip(items, rows) if r["mode"] == "pair_rank" and r["label"] in ("first", "second")]


def judge_step(shape, training, steps=3):
    torch.cuda.reset_peak_memory_stats()
    model, proc = bench.shaped_judge(shape, "cuda", f"/tmp/j_{shape}", image_max_pixels=448 * 448)
    rm = RewardModel("shaped", model=model, processor=proc, device="cuda")
    exs = [from_preference(it, reg.get("qwen", it.task, "pair_rank"), r["label"]) for it, r in pairs][
        : training.batch_size
    ]
    encs = [sft.encode(rm, e) for e in exs]
    model = reward.prepare_model(rm.model, training)
    model.train()
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    engine, *_ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=runtime.deepspeed_config(training, 1, bf16=True),
    )
    times, losses = [], []
    batch = sft.collate(rm, encs)
    for _ in range(steps):
        torch.cuda.synchronize()
        t = time.time()
        loss = sft.loss(engine, batch)
        engine.backward(loss)
        engine.step()
        torch.cuda.synchronize()
        times.append(time.time() - t)
        losses.append(float(loss))
    out = dict(
        shape=shape,
        trainable_params=n_train,
        tokens=int(batch["input_ids"].numel()),
        batch=len(encs),
        step_s=times,
        loss=losses,
        peak_gb=torch.cuda.max_memory_allocated() / 2**30,
        dtype=str(next(engine.module.parameters()).dtype),
    )
    return out, engine, rm, batch


def run(name, fn):
    try:
        res[name] = fn()
        print(name, json.dumps(res[name])[:600], flush=True)
    except Exception as e:
        res[name] = dict(error=f"{type(e).__name__}: {e}")
        traceback.print_exc()
    json.dump(res, open(f"{OUT}/gpu_train{os.environ.get('ONLY', '')}.json", "w"), indent=2)


state = {}


def sft7b():
    t = TrainingConfig(
        batch_size=4,
        lr=1e-4,
        gradient_checkpointing=True,
        freeze_vision=True,
        lora=dict(r=16, alpha=32),
        deepspeed=dict(zero_stage=2),
    )
    out, engine, rm, batch = judge_step("7b", t)
    state.update(engine=engine, rm=rm)
    return out


ONLY = os.environ.get("ONLY")
if ONLY != "diffusion":
    run("judge_sft_7b_lora_zero2_bf16", sft7b)


def dpo7b():
    engine, rm = state["engine"], state["rm"]
    prot = reg.get("qwen", "image_understanding", "point_score")
    from unireward.judge.types import JudgeItem

    ctx = read_items(world.items["image_understanding"])[0][0].context
    q = JudgeItem("image_understanding", "How many circles are there?", ["x"], context=ctx)
    from unireward.judge.protocols import chat_messages

    def b(ans):
        return sft.collate(
            rm, [sft.encode(rm, SFTExample(chat_messages(q, prot), [ctx], "image", a, q.task)) for a in ans]
        )

    ch, rj = b(["There are two circles.", "Two."]), b(["There are five circles.", "Nine."])

    def lp(batch):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return sequence_logps(engine(**inputs).logits, batch["labels"])

    torch.cuda.synchronize()
    t = time.time()
    with torch.no_grad(), engine.module.disable_adapter():
        rc, rr = lp(ch), lp(rj)
    out = dpo(lp(ch), lp(rj), rc, rr, beta=0.1, loss_type="sigmoid")
    engine.backward(out.loss)
    engine.step()
    torch.cuda.synchronize()
    return dict(
        loss=float(out.loss),
        margin=out.margin.tolist(),
        step_s=time.time() - t,
        peak_gb=torch.cuda.max_memory_allocated() / 2**30,
    )


if ONLY != "diffusion":
    run("vlm_dpo_7b_lora_bf16", dpo7b)
state.clear()
torch.cuda.empty_cache()


def sft3b():
    t = TrainingConfig(batch_size=4, lr=1e-5, gradient_checkpointing=True, deepspeed=dict(zero_stage=2))
    return judge_step("3b", t)[0]


if ONLY != "diffusion":
    run("judge_sft_3b_full_zero2_bf16", sft3b)
torch.cuda.empty_cache()


def diffusion(kind):
    from diffusers import DDPMScheduler, UNet2DConditionModel, UNet3DConditionModel

    from unireward.train.diffusion import DiffusionBatch, dpo_loss

    torch.cuda.reset_peak_memory_stats()
    with torch.device("cuda"):
        if kind == "image":
            unet = UNet2DConditionModel(cross_attention_dim=768).to(torch.bfloat16)  # SD1.5 layout
            shape = (2, 4, 64, 64)
        else:
            unet = UNet3DConditionModel(cross_attention_dim=1024).to(torch.bfloat16)  # ModelScope t2v layout
            shape = (2, 4, 8, 32, 32)
    ref = (
        UNet2DConditionModel.from_config(unet.config)
        if kind == "image"
        else UNet3DConditionModel.from_config(unet.config)
    )
    ref = ref.to("cuda", torch.bfloat16).requires_grad_(False)
    ref.load_state_dict(unet.state_dict())
    if kind == "image":
        unet.enable_gradient_checkpointing()  # diffusers' UNet3D does not support it
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-8)
    g = torch.Generator().manual_seed(0)
    dim = unet.config.cross_attention_dim
    batch = DiffusionBatch(
        torch.randn(shape, generator=g).cuda().bfloat16(),
        torch.randn(shape, generator=g).cuda().bfloat16(),
        torch.randn(2, 77, dim, generator=g).cuda().bfloat16(),
    )
    sched = DDPMScheduler()
    times, outs = [], []
    for _ in range(2):
        torch.cuda.synchronize()
        t = time.time()
        out = dpo_loss(unet, ref, sched, batch, beta=5000.0, generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        torch.cuda.synchronize()
        times.append(time.time() - t)
        outs.append(float(out.loss))
    return dict(
        params=sum(p.numel() for p in unet.parameters()),
        latents=list(shape),
        step_s=times,
        loss=outs,
        peak_gb=torch.cuda.max_memory_allocated() / 2**30,
    )


run("diffusion_dpo_unet2d_sd15_bf16", lambda: diffusion("image"))
torch.cuda.empty_cache()
run("diffusion_dpo_unet3d_bf16", lambda: diffusion("video"))
print(json.dumps(res, indent=1)[:5000])
