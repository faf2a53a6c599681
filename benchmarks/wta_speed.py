"""Speed of one winner-takes-all training step: winners chosen without autograd and only
winners trained (`wta_step`), against all K experts run forward and backward
(`naive_step`, the reference study's route), and against one baseline step.

Reports medians over repeated, interleaved steps, and the ratio naive / efficient:

    python benchmarks/wta_speed.py --k 5 --batch 64 --repeats 15 --out result.json
"""

import argparse
import statistics
import time

import torch

from mclcore.files import emit_json
from mclcore.diffusion import build_denoiser, denoising_loss, sample_training_sigmas
from mclcore.mcl import naive_step, wta_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, nargs=3, default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default="-")
    args = parser.parse_args()

    torch.manual_seed(0)
    experts = [build_denoiser(args.channels, 128, 8, "edm", 0.5) for _ in range(args.k)]
    optimizers = [torch.optim.Adam(e.parameters(), lr=1e-4) for e in experts]
    generator = torch.Generator().manual_seed(0)

    def batch():
        x0 = torch.rand(args.batch, 1, 28, 28, generator=generator) * 2 - 1
        sigma = sample_training_sigmas(args.batch, "lognormal", 0.01, 80.0, generator=generator)
        return x0, sigma, torch.randn(x0.shape, generator=generator)

    def baseline_step(x0, sigma, noise):
        loss = denoising_loss(experts[0], x0, sigma, noise).mean()
        optimizers[0].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[0].step()

    steps = {
        "baseline": baseline_step,
        "efficient": lambda *b: wta_step(experts, optimizers, *b, grad_clip=1.0),
        "naive": lambda *b: naive_step(experts, optimizers, *b, grad_clip=1.0),
    }
    times = {name: [] for name in steps}
    for repeat in range(args.repeats + 2):
        for name, step in steps.items():  # interleaved, so drifts in machine load cancel
            data = batch()
            start = time.perf_counter()
            step(*data)
            if repeat >= 2:  # the first two rounds warm up allocators and caches
                times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "k": args.k,
        "batch": args.batch,
        "channels": args.channels,
        "repeats": args.repeats,
        "median_seconds": medians,
        "naive_over_efficient": medians["naive"] / medians["efficient"],
        "efficient_in_baseline_steps": medians["efficient"] / medians["baseline"],
        "naive_in_baseline_steps": medians["naive"] / medians["baseline"],
    }
    emit_json(result, args.out)


if __name__ == "__main__":
    main()
