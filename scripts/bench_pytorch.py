#!/usr/bin/env python3
"""The PyTorch + transformers side of `cargo xtask bench`: the same work as `electra bench`.

ELECTRA-Small (discriminator: hidden 256, 12 layers, 4 heads, FFN 1024, embeddings 128;
generator 1/4: hidden 64, 1 head, FFN 256; vocabulary 30,522), random initialisation, built
from an `ElectraConfig` (nothing is downloaded), float32, on the CPU or (`--device cuda`) a GPU.
On a GPU each repetition ends with `torch.cuda.synchronize()`, and the report adds the GPU's
peak allocated memory (`gpu_peak_mib`). TF32 stays off (PyTorch's default for float32 matmuls).
Tasks:

- `pretrain`: one full ELECTRA pre-training step as `electra_train::train_step` does it: masking
  (15% of the tokens, `round(0.15 x seq)` per row, 85% of them shown as [MASK]), generator hidden
  states (`ElectraForMaskedLM.electra`), the vocabulary projection (`generator_predictions` +
  `generator_lm_head`) at the masked positions only, MLM cross-entropy, sampling without
  gradient (Gumbel-max; with `--sampling multinomial`, one uniform per row as our batch chunks
  sample), the discriminator (`ElectraForPreTraining`, sharing the generator's embeddings) on the
  corrupted input, the masked sigmoid BCE, loss = MLM + 50 x BCE, backward,
  global-norm clipping at 1.0, AdamW (eps 1e-6, weight decay 0.01 on matrices only).
- `inference`: discriminator logits under `torch.inference_mode()` (eval mode, no dropout).
- `finetune`: one step as `electra_finetune::train_step` does it with `electra finetune`'s
  defaults: `ElectraModel` -> [CLS] hidden state -> dropout 0.1 -> linear(hidden, 2),
  cross-entropy, backward, global-norm clipping at 1.0, Adam (eps 1e-6, no weight decay) with
  layer-wise learning-rate decay 0.8 (one parameter group per depth: embeddings 0, layer i at
  i + 1, the head at L + 2, each at lr x 0.8^(L + 2 - depth)). (Not
  `ElectraForSequenceClassification`: its head is dense + GELU + dense; the reference and
  `electra bench` use a single linear layer.)
- `peak`: the best time of an N x N x N float32 `torch.matmul`, as GFLOP/s.
- `check`: versions, thread count and attention implementation.

Each task runs in its own process (`--task T`) and prints one JSON line: per-repetition times
after the warm-up, their median, the peak resident memory (VmHWM from /proc/self/status) and
the CPU time over the timed repetitions divided by their wall time (cores used). Without
`--task` the script runs every task, each in a fresh process, and prints one line per task.

Pinned versions (scripts/requirements-bench.txt): Python 3.11.7, torch==2.15.0,
transformers==5.24.0.

Usage:
    python3 scripts/bench_pytorch.py --threads 2                       # everything, batch 32
    python3 scripts/bench_pytorch.py --task pretrain --batch 128 --warmup 1 --reps 3 --threads 2
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VOCAB = 30522
PAD, CLS, SEP, MASK = 0, 101, 102, 103
FIRST_WORD_ID = 999  # BERT uncased: ids below are special or [unusedN]


def vm_hwm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def configs(attn):
    from transformers import ElectraConfig

    common = dict(vocab_size=VOCAB, embedding_size=128, num_hidden_layers=12, hidden_act="gelu",
                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
                  type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=PAD)
    disc = ElectraConfig(hidden_size=256, num_attention_heads=4, intermediate_size=1024, **common)
    gen = ElectraConfig(hidden_size=64, num_attention_heads=1, intermediate_size=256, **common)
    for c in (disc, gen):
        c._attn_implementation = attn
    return gen, disc


def synthetic_batch(torch, batch, seq, seed):
    """[CLS] A [SEP] B [SEP] rows of random word ids, no padding, segment 1 on B."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(FIRST_WORD_ID, VOCAB, (batch, seq), generator=g)
    mid = seq // 2
    ids[:, 0], ids[:, mid], ids[:, seq - 1] = CLS, SEP, SEP
    types = torch.zeros(batch, seq, dtype=torch.long)
    types[:, mid + 1:] = 1
    mask = torch.ones(batch, seq, dtype=torch.long)
    return ids, types, mask


def adamw(torch, modules, lr):
    """AdamW with the reference's groups: weight decay 0.01 on matrices, none on 1-D tensors."""
    seen, decay, no_decay = set(), [], []
    for m in modules:
        for p in m.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.dim() > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6), decay + no_decay


def layerwise_adam(torch, electra, head, lr, decay):
    """Adam (eps 1e-6, no weight decay: fine-tuning's default) with one group per depth, as
    `electra_finetune::optim` groups them (reference depth rule: the head at L + 2)."""
    layers = len(electra.encoder.layer)
    head_depth = layers + 2
    depth_of = {}
    for name, p in electra.named_parameters():
        if name.startswith("encoder.layer."):
            depth_of[id(p)] = int(name.split(".")[2]) + 1
        else:
            depth_of[id(p)] = 0  # embeddings, their projection (and an unused pooler)
    for p in head.parameters():
        depth_of[id(p)] = head_depth
    params = list(electra.parameters()) + list(head.parameters())
    groups = {}
    for p in params:
        groups.setdefault(depth_of[id(p)], []).append(p)
    param_groups = [{"params": ps, "lr": lr * decay ** (head_depth - d)} for d, ps in sorted(groups.items())]
    return torch.optim.Adam(param_groups, lr=lr, betas=(0.9, 0.999), eps=1e-6), params


DEVICE = "cpu"


def sync(torch):
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def timed(step, warmup, reps):
    import torch

    for _ in range(warmup):
        step()
    sync(torch)
    times = []
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for _ in range(reps):
        t = time.perf_counter()
        step()
        sync(torch)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - wall0
    return times, (cpu_seconds() - cpu0) / max(wall, 1e-9)


def kernel_launches(torch, step):
    """GPU kernels one more `step` runs, from PyTorch's profiler (memory copies and sets left
    out); None on the CPU."""
    if DEVICE == "cpu":
        return None
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    sync(torch)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        sync(torch)
    return sum(1 for e in prof.events()
               if e.device_type == DeviceType.CUDA and not e.name.startswith(("Memcpy", "Memset")))


def pretraining_models(torch, attn):
    """Generator and discriminator of ELECTRA-Small sharing one set of embeddings, in train mode."""
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    gen_cfg, disc_cfg = configs(attn)
    gen, disc = ElectraForMaskedLM(gen_cfg), ElectraForPreTraining(disc_cfg)
    disc.electra.embeddings = gen.electra.embeddings  # one set of shared embeddings
    gen, disc = gen.to(DEVICE), disc.to(DEVICE)
    gen.train()
    disc.train()
    return gen, disc


def pretraining_losses(torch, gen, disc, ids, types, mask, sampling):
    """Everything of a pre-training step before the backward: masking, generator, sampling,
    discriminator and losses. Returns (loss, mlm, disc_loss, gen_correct, disc_logits, predictions)."""
    import torch.nn.functional as F

    b, s = ids.shape
    k = min(round(0.15 * s), s)  # per-row count: max(1, min(19, round(0.15 x real tokens)))
    special = (ids == CLS) | (ids == SEP)
    row_offset = (torch.arange(b, device=ids.device) * s).unsqueeze(1)
    maskf = mask.float()
    # Masking: k positions per row among non-special tokens, 85% of them shown as [MASK].
    scores = torch.rand(b, s, device=ids.device).masked_fill(special, -1.0)
    flat = (scores.topk(k, dim=1).indices + row_offset).reshape(-1)  # [n]
    targets = ids.reshape(-1)[flat]
    gen_in = ids.reshape(-1).clone()
    # (torch.where, not boolean indexing, which would wait for the GPU.)
    shown = torch.rand(flat.numel(), device=ids.device) < 0.85
    gen_in[flat] = torch.where(shown, torch.full_like(targets, MASK), targets)
    hidden = gen.electra(input_ids=gen_in.view(b, s), attention_mask=mask, token_type_ids=types).last_hidden_state
    picked = hidden.reshape(b * s, -1)[flat]  # [n, 64]: the vocabulary projection at masked positions only
    logits = gen.generator_lm_head(gen.generator_predictions(picked))  # [n, vocab]
    mlm = F.cross_entropy(logits, targets)
    with torch.no_grad():
        gen_correct = (logits.argmax(1) == targets).sum()
        if sampling == "gumbel":
            u = torch.rand_like(logits)
            gumbel = -torch.log(-torch.log(u + 1e-9) + 1e-9)
            sampled = (logits + gumbel).argmax(1)
        else:  # inverse transform, one uniform per row, as our batch chunks sample
            sampled = torch.multinomial(torch.softmax(logits, 1), 1).squeeze(1)
        disc_in = ids.reshape(-1).clone()
        disc_in[flat] = sampled
        labels = (disc_in != ids.reshape(-1)).float().view(b, s)
    disc_logits = disc(input_ids=disc_in.view(b, s), attention_mask=mask, token_type_ids=types).logits
    bce = F.binary_cross_entropy_with_logits(disc_logits, labels, reduction="none")
    disc_loss = (bce * maskf).sum() / maskf.sum()
    loss = mlm + 50.0 * disc_loss
    return loss, mlm, disc_loss, gen_correct, disc_logits, flat.numel()


def autocast(torch, args):
    """`torch.autocast` in `--precision` (bf16: matrix multiplies in bfloat16, as ours), or
    nothing for f32."""
    import contextlib

    if args.precision == "f32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=DEVICE, dtype=torch.bfloat16)


def task_pretrain(torch, args):
    gen, disc = pretraining_models(torch, args.attn)
    optim, params = adamw(torch, [gen, disc], 5e-4)
    ids, types, mask = (t.to(DEVICE) for t in synthetic_batch(torch, args.batch, args.seq, args.seed))
    predictions = [0]

    def step():
        with autocast(torch, args):
            loss, mlm, disc_loss, gen_correct, disc_logits, n = pretraining_losses(
                torch, gen, disc, ids, types, mask, args.sampling)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        # What the Rust step reads back: with batch chunks (multinomial sampling, the CPU
        # backends), both losses, generator accuracy and discriminator logits every step; on
        # the device path (Gumbel-max, the GPU backends), nothing between logging steps.
        if args.sampling != "gumbel":
            mlm.item(), disc_loss.item(), gen_correct.item(), disc_logits.detach().float().cpu().numpy()
        predictions[0] = n

    times, util = timed(step, args.warmup, args.reps)
    return {"times_s": times, "cores_used": util, "masked_positions": predictions[0],
            "kernel_launches": kernel_launches(torch, step)}


def task_inference(torch, args):
    from transformers import ElectraForPreTraining

    _, disc_cfg = configs(args.attn)
    disc = ElectraForPreTraining(disc_cfg).eval().to(DEVICE)
    ids, types, mask = (t.to(DEVICE) for t in synthetic_batch(torch, args.batch, args.seq, args.seed))

    def step():
        with torch.inference_mode(), autocast(torch, args):
            disc(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.float().cpu().numpy()

    times, util = timed(step, args.warmup, args.reps)
    return {"times_s": times, "cores_used": util, "kernel_launches": kernel_launches(torch, step)}


def task_finetune(torch, args):
    import torch.nn.functional as F
    from transformers import ElectraModel

    _, disc_cfg = configs(args.attn)
    electra = ElectraModel(disc_cfg).train()
    dropout = torch.nn.Dropout(0.1)
    head = torch.nn.Linear(disc_cfg.hidden_size, 2)
    torch.nn.init.normal_(head.weight, std=0.02)
    torch.nn.init.zeros_(head.bias)
    electra, head = electra.to(DEVICE), head.to(DEVICE)
    optim, params = layerwise_adam(torch, electra, head, 1e-4, 0.8)
    ids, types, mask = (t.to(DEVICE) for t in synthetic_batch(torch, args.batch, args.seq, args.seed))
    labels = torch.randint(0, 2, (args.batch,), generator=torch.Generator().manual_seed(args.seed + 1))
    labels = labels.to(DEVICE)

    def step():
        with autocast(torch, args):
            cls = electra(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state[:, 0]
            loss = F.cross_entropy(head(dropout(cls)), labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        loss.item()

    times, util = timed(step, args.warmup, args.reps)
    return {"times_s": times, "cores_used": util, "kernel_launches": kernel_launches(torch, step)}


def task_peak(torch, args):
    n = args.size
    a, b = torch.rand(n, n, device=DEVICE), torch.rand(n, n, device=DEVICE)
    times, util = timed(lambda: torch.matmul(a, b), max(args.warmup, 1), max(args.reps, 3))
    return {"times_s": times, "cores_used": util, "size": n, "gflops": 2.0 * n**3 / min(times) / 1e9}


def run_task(args):
    import torch

    global DEVICE
    DEVICE = args.device
    if DEVICE != "cpu" and not torch.cuda.is_available():
        raise SystemExit(f"--device {DEVICE}: PyTorch sees no CUDA GPU")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = {"task": args.task, "batch": args.batch, "seq": args.seq, "warmup": args.warmup, "reps": args.reps,
           "precision": args.precision}
    if args.task == "check":
        import transformers

        out = {"task": "check", "torch": torch.__version__, "transformers": transformers.__version__,
               "python": sys.version.split()[0], "threads": torch.get_num_threads(),
               "interop_threads": torch.get_num_interop_threads(), "attn_implementation": args.attn,
               "mkldnn": torch.backends.mkldnn.is_available(), "device": DEVICE,
               "gpu": torch.cuda.get_device_name() if DEVICE != "cpu" else None}
    else:
        out.update({"pretrain": task_pretrain, "inference": task_inference, "finetune": task_finetune,
                    "peak": task_peak}[args.task](torch, args))
        if "times_s" in out and args.task != "peak":
            out["median_s"] = statistics.median(out["times_s"])
        out["threads"] = torch.get_num_threads()
        out["attn_implementation"] = args.attn
    out["vm_hwm_kib"] = vm_hwm_kib()
    if DEVICE != "cpu":
        out["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu_reserved_peak_mib"] = torch.cuda.max_memory_reserved() / 2**20
    print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=["check", "peak", "pretrain", "inference", "finetune"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--size", type=int, default=2048, help="matrix size of the peak measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the work runs")
    p.add_argument("--sampling", choices=["gumbel", "multinomial"], default="gumbel",
                   help="pretrain: Gumbel-max over the vocabulary (the reference; ours without batch "
                        "chunks) or torch.multinomial (inverse transform, one uniform per row; ours "
                        "with batch chunks)")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                   help="f32, or bf16 under torch.autocast (training and inference tasks)")
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa",
                   help="transformers attention implementation (default: sdpa, transformers' default)")
    args = p.parse_args()
    if args.seq < 4 or args.seq > 512:
        p.error("--seq must be in [4, 512]")
    if args.task:
        run_task(args)
        return
    # Every task in a fresh process, so that peak memory does not mix.
    common = ["--batch", str(args.batch), "--seq", str(args.seq), "--warmup", str(args.warmup), "--reps",
              str(args.reps), "--threads", str(args.threads), "--size", str(args.size), "--attn", args.attn,
              "--device", args.device, "--precision", args.precision]
    for task in ["check", "peak", "pretrain", "inference", "finetune"]:
        subprocess.run([sys.executable, __file__, "--task", task, *common], check=True)


if __name__ == "__main__":
    main()
