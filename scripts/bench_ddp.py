#!/usr/bin/env python3
"""The PyTorch DDP side of `cargo xtask bench scale`: data-parallel ELECTRA-Small pre-training.

The model and the step are scripts/bench_pytorch.py's (imported from it): ELECTRA-Small
(transformers ElectraForMaskedLM generator + ElectraForPreTraining discriminator sharing their
embeddings, random initialisation, nothing downloaded), masking, generator, sampling,
discriminator, loss = MLM + 50 x BCE, backward, global-norm clipping at 1.0, AdamW; float32 on
the CPU. One optimiser step per iteration.

Runs, each in fresh processes, each process with `--threads` threads (torch.set_num_threads and
the OpenMP/MKL variables):
- one process without DDP, on `--batch` rows;
- `--world` processes under `torch.nn.parallel.DistributedDataParallel` (gloo backend, init
  over tcp://127.0.0.1:<free port>), `--batch` rows each: rank r takes rows
  [r x batch, (r + 1) x batch) of a synthetic global batch. DDP all-reduces the gradients in
  buckets while the backward runs. After the timed steps the ranks meet at a barrier and time
  `dist.all_reduce` of one buffer with as many floats as the model has parameters (`--alone-reps`
  times): the all-reduce without a step around it.

Prints one JSON line: {"one": <measurement>, "ranks": [<measurement per rank>], "params": N, ...};
each measurement has the per-step times after the warm-up (`times_s`), their median, the CPU time
over the wall time (`cores_used`), peak RSS (`vm_hwm_kib`) and `allreduce_alone_s`. The caller
(`electra bench scale`) computes tokens/s and scaling from the times as it does for our side.

Usage:
    python3 scripts/bench_ddp.py --world 2 --threads 1 --batch 32 --seq 128 --warmup 2 --reps 5
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_pytorch as bp  # noqa: E402  (the model, the step, the synthetic batch, timing)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(args):
    """One process: rank `args.rank` of `args.world` (world 1: no DDP, no process group)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    world, rank = args.world, args.rank
    if world > 1:
        dist.init_process_group("gloo", init_method=args.init, rank=rank, world_size=world)

    class PreTraining(torch.nn.Module):
        """Generator and discriminator as one module, so that DDP sees every parameter once and
        the whole step runs through its forward."""

        def __init__(self):
            super().__init__()
            self.gen, self.disc = bp.pretraining_models(torch, args.attn)

        def forward(self, ids, types, mask):
            return bp.pretraining_losses(torch, self.gen, self.disc, ids, types, mask, args.sampling)

    module = PreTraining()
    optim, params = bp.adamw(torch, [module.gen, module.disc], 5e-4)
    n_params = sum(p.numel() for p in params)
    model = torch.nn.parallel.DistributedDataParallel(module) if world > 1 else module
    ids, types, mask = bp.synthetic_batch(torch, args.batch * world, args.seq, args.seed)
    rows = slice(rank * args.batch, (rank + 1) * args.batch)
    ids, types, mask = ids[rows].contiguous(), types[rows].contiguous(), mask[rows].contiguous()

    def step():
        loss, mlm, disc_loss, gen_correct, disc_logits, _ = model(ids, types, mask)
        optim.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: the gradients are averaged over the ranks here
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        # What the Rust step reads back: both losses, generator accuracy, discriminator logits.
        mlm.item(), disc_loss.item(), gen_correct.item(), disc_logits.detach().cpu().numpy()

    times, util = bp.timed(step, args.warmup, args.reps)
    alone = []
    if world > 1:
        buffer = torch.ones(n_params)
        dist.barrier()
        for _ in range(args.alone_reps):
            t = time.perf_counter()
            dist.all_reduce(buffer)
            alone.append(time.perf_counter() - t)
        dist.barrier()
        dist.destroy_process_group()
    out = {"task": "scale-rank", "rank": rank, "world": world, "batch": args.batch, "seq": args.seq,
           "warmup": args.warmup, "reps": args.reps, "threads": torch.get_num_threads(), "times_s": times,
           "median_s": statistics.median(times), "cores_used": util, "vm_hwm_kib": bp.vm_hwm_kib(),
           "params": n_params, "allreduce_alone_s": alone, "ddp": world > 1}
    print(json.dumps(out), flush=True)


def last_json(text, what):
    for line in reversed(text.splitlines()):
        if line.lstrip().startswith("{"):
            return json.loads(line)
    raise SystemExit(f"{what}: no JSON output")


def launch(args, world):
    """Runs `world` rank processes (one without DDP when world is 1) and returns their outputs."""
    init = f"tcp://127.0.0.1:{free_port()}"
    common = [sys.executable, os.path.abspath(__file__), "--world", str(world), "--init", init,
              "--threads", str(args.threads), "--batch", str(args.batch), "--seq", str(args.seq),
              "--warmup", str(args.warmup), "--reps", str(args.reps), "--seed", str(args.seed),
              "--attn", args.attn, "--sampling", args.sampling, "--alone-reps", str(args.alone_reps)]
    env = dict(os.environ)
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]:
        env[var] = str(args.threads)
    procs = [subprocess.Popen(common + ["--rank", str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for r in range(world)]
    outs = []
    failed = []
    for r, p in enumerate(procs):
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            tail = " | ".join([l for l in stderr.splitlines() if l.strip()][-3:])
            failed.append(f"rank {r} of {world} failed ({p.returncode}): {tail}")
        else:
            outs.append(last_json(stdout, f"rank {r} of {world}"))
    if failed:
        raise SystemExit("; ".join(failed))
    return outs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--world", type=int, default=2, help="processes of the DDP run")
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--batch", type=int, default=32, help="rows per process")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alone-reps", type=int, default=3, help="timed all-reduces of the parameter-sized buffer")
    p.add_argument("--sampling", choices=["gumbel", "multinomial"], default="multinomial")
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    p.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    p.add_argument("--init", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rank is not None:
        rank_main(args)
        return
    if args.world < 2:
        p.error("--world must be at least 2 (it is measured against one process)")
    one = launch(args, 1)[0]
    ranks = sorted(launch(args, args.world), key=lambda r: r["rank"])
    import torch

    print(json.dumps({"kind": "ddp", "backend": "gloo", "torch": torch.__version__, "world": args.world,
                      "threads": args.threads, "params": one["params"], "one": one, "ranks": ranks}), flush=True)


if __name__ == "__main__":
    main()
