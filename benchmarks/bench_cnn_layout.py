"""The course CNN in the channels-last layout (as advlab builds it) against the default layout.

    python benchmarks/bench_cnn_layout.py [--repeats 15] [--threads 1]

Both models hold the same weights; before timing, their logits and input gradients are checked
to agree to float32 rounding. Three workloads of the course: one Adam training step on 64 digits,
the input gradient of 500 digits (one attack step) and a forward pass over 500 digits. Runs are
interleaved, alternating which layout goes first; the table gives median milliseconds and the
ratio default / channels-last (> 1: the channels-last layout is faster). One thread by default,
the count each lane of `make course` runs on.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from advlab.data import load_images
from advlab.models import make_classifier


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fast = make_classifier("cnn")
    plain = copy.deepcopy(fast).to(memory_format=torch.contiguous_format)
    plain.features = lambda x: plain.body(x.contiguous())  # undo the layout for the inputs too
    assert fast.body[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.body[3].weight.is_contiguous()
    data = load_images("mnist", "test", profile="quick")
    x, y = data.images[:500], data.labels[:500]

    def input_grad(model):
        xa = x.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xa), y), xa)[0]

    with torch.no_grad():
        assert torch.allclose(fast(x), plain(x), atol=1e-5, rtol=1e-5), "the layouts disagree"
    assert torch.allclose(input_grad(fast), input_grad(plain), atol=1e-7, rtol=1e-4)

    optims = {id(m): torch.optim.Adam(m.parameters(), lr=1e-3) for m in (fast, plain)}

    def train_step(model):
        loss = F.cross_entropy(model(x[:64]), y[:64])
        optims[id(model)].zero_grad()
        loss.backward()
        optims[id(model)].step()

    def forward(model):
        with torch.no_grad():
            model(x)

    print(f"course CNN, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats")
    print(f"{'workload':28s} {'default ms':>11s} {'channels-last ms':>17s} {'ratio':>6s}")
    for name, work in (("train step, 64 digits", train_step), ("input gradient, 500 digits", input_grad),
                       ("forward, 500 digits", forward)):
        times = {"plain": [], "fast": []}
        for model in (fast, plain):
            work(model)  # warm-up
        for i in range(args.repeats):
            order = (("plain", plain), ("fast", fast)) if i % 2 else (("fast", fast), ("plain", plain))
            for key, model in order:
                start = time.perf_counter()
                work(model)
                times[key].append(1000 * (time.perf_counter() - start))
        p, f = statistics.median(times["plain"]), statistics.median(times["fast"])
        print(f"{name:28s} {p:11.1f} {f:17.1f} {p / f:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
