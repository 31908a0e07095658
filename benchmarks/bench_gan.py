"""How fast is one step of advlab's GAN loop next to the plain loop everybody writes?

The reference is the per-batch pattern of the PyTorch DCGAN example (pytorch/examples,
dcgan/main.py): D on real with ``errD_real.backward()``, D on ``fake.detach()`` with a second
backward, ``optimizerD.step()``, D on the same fake for G with a full backward (which also fills
D's gradients), ``optimizerG.step()``, and ``.item()`` on the losses every step for logging. It
uses the default Adam (``foreach`` on CPU); a second reference row uses fused Adam like ours, so
the loop itself is compared. Same models, same initial weights, same batch size, same data.

Timing: blocks of ``--block`` steps, ours and the reference interleaved ``--repeats`` times after
a warm-up; the table gives the median time per step and the ratio of medians (reference /
ours: above 1 means ours is faster). Then the 2-D ring GAN of notebook 08 is trained for 5,000
steps once, timed, and its mode coverage measured (2,500 samples).

    python benchmarks/bench_gan.py               # one thread (the default), about a minute
    python benchmarks/bench_gan.py --threads 2
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

from advlab.data import toy_2d, toy_2d_modes
from advlab.gan import GANTrainer
from advlab.metrics import mode_coverage
from advlab.models import MLPDiscriminator, MLPGenerator

WORKLOADS = {
    # name: (generator, discriminator, data (N, ...), batch size)
    "ring 2-D, MLPs 3x128": (
        lambda: MLPGenerator(2, (2,), (128, 128, 128)),
        lambda: MLPDiscriminator((2,), (128, 128, 128)),
        lambda: toy_2d("ring", 10_000, generator=torch.Generator().manual_seed(0)), 100),
    "MNIST-sized, MLPs 256-512": (
        lambda: MLPGenerator(64, (1, 28, 28), (256, 512), tanh=True),
        lambda: MLPDiscriminator((1, 28, 28), (512, 256), negative_slope=0.2),
        lambda: torch.rand(4000, 1, 28, 28) * 2 - 1, 64),
}


class ReferenceLoop:
    """The DCGAN-example step, written out as most GAN scripts do it."""

    def __init__(self, G, D, data, batch_size, z_dim, fused):
        self.G, self.D, self.data, self.b, self.z_dim = G, D, data, batch_size, z_dim
        kw = {"fused": True} if fused else {}
        self.opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), **kw)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), **kw)
        self.criterion = torch.nn.BCEWithLogitsLoss()
        self.log = []

    def step(self):
        real = self.data[torch.randint(len(self.data), (self.b,))]
        self.D.zero_grad()
        label = torch.full((self.b,), 1.0)
        err_d_real = self.criterion(self.D(real), label)
        err_d_real.backward()
        fake = self.G(torch.randn(self.b, self.z_dim))
        label.fill_(0.0)
        err_d_fake = self.criterion(self.D(fake.detach()), label)
        err_d_fake.backward()
        self.opt_d.step()
        self.G.zero_grad()
        label.fill_(1.0)
        err_g = self.criterion(self.D(fake), label)
        err_g.backward()
        self.opt_g.step()
        self.log.append(((err_d_real + err_d_fake).item(), err_g.item()))

    def run(self, n):
        for _ in range(n):
            self.step()


def time_block(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(name, make_g, make_d, make_data, batch_size, block, repeats):
    torch.manual_seed(0)
    G0, D0, data = make_g(), make_d(), make_data()
    loops = {
        "advlab GANTrainer": None,
        "reference, default Adam": ReferenceLoop(copy.deepcopy(G0), copy.deepcopy(D0), data,
                                                 batch_size, G0.z_dim, fused=False),
        "reference, fused Adam": ReferenceLoop(copy.deepcopy(G0), copy.deepcopy(D0), data,
                                               batch_size, G0.z_dim, fused=True),
    }
    ours = GANTrainer(copy.deepcopy(G0), copy.deepcopy(D0), data, batch_size=batch_size,
                      loss="non-saturating", device="cpu")
    runners = {"advlab GANTrainer": lambda: ours.train(ours.step + block)}
    runners.update({k: (lambda loop=v: loop.run(block)) for k, v in loops.items() if v})
    for run in runners.values():  # warm-up: first-call costs (allocator, kernels)
        run()
    times = {k: [] for k in runners}
    for _ in range(repeats):
        for key, run in runners.items():  # interleaved, so load changes hit every loop alike
            times[key].append(time_block(run) / block)
    ours_median = statistics.median(times["advlab GANTrainer"])
    rows = []
    for key, ts in times.items():
        med = statistics.median(ts)
        rows.append(f"| {name} | {key} | {med * 1e3:.3f} | {med / ours_median:.2f} |")
    return rows


def ring_5000(threads) -> str:
    torch.manual_seed(0)
    centers, std = toy_2d_modes("ring")
    trainer = GANTrainer(MLPGenerator(2, (2,), (128, 128, 128)),
                         MLPDiscriminator((2,), (128, 128, 128)),
                         lambda n, g: toy_2d("ring", n, generator=g), batch_size=100,
                         lr_g=1e-3, lr_d=1e-3, device="cpu")
    history = trainer.train(5000)
    cov = mode_coverage(trainer.sample(2500), centers, std)
    return (f"2-D ring GAN (notebook 08 settings), 5,000 steps on {threads} thread(s): "
            f"{history['seconds']:.1f} s (limit 30 s); modes {cov.modes_covered}/8, "
            f"high quality {100 * cov.high_quality:.1f} %")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--block", type=int, default=100, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved blocks per loop")
    parser.add_argument("--skip-ring", action="store_true", help="skip the 5,000-step run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s), blocks of {args.block} steps x {args.repeats}\n")
    print("| workload | loop | ms / step (median) | time / ours |")
    print("|---|---|---:|---:|")
    for name, (make_g, make_d, make_data, batch_size) in WORKLOADS.items():
        for row in compare(name, make_g, make_d, make_data, batch_size, args.block,
                           args.repeats):
            print(row, flush=True)
    if not args.skip_ring:
        print("\n" + ring_5000(args.threads))


if __name__ == "__main__":
    main()
