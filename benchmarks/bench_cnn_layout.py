"""The course CNN as advlab builds it (channels-last layout, each block pooling before its ReLU)
against the textbook block order and against the default layout.

    python benchmarks/bench_cnn_layout.py [--repeats 15] [--threads 1]

All three models hold the same weights. Before timing, the logits and input gradients of the
textbook order (conv, ReLU, max-pool) are checked to equal advlab's bit for bit (ReLU and max-pool
commute), and those of the default layout to agree to float32 rounding. Three workloads of the
course: one Adam training step on 64 digits, the input gradient of 500 digits (one attack step)
and a forward pass over 500 digits. Runs are interleaved, rotating which model goes first; the
table gives median milliseconds and each model's time over advlab's (> 1: advlab's is faster).
One thread by default, the count each lane of `make course` runs on.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from advlab.data import load_images
from advlab.models import make_classifier


def textbook_order(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose blocks run conv, ReLU, max-pool (advlab pools first)."""
    other = copy.deepcopy(model)
    layers = list(other.body)
    for i in (1, 4):
        assert isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU)
        layers[i], layers[i + 1] = layers[i + 1], layers[i]
    other.body = nn.Sequential(*layers)
    return other


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    advlab_cnn = make_classifier("cnn")
    textbook = textbook_order(advlab_cnn)
    plain = copy.deepcopy(textbook).to(memory_format=torch.contiguous_format)
    plain.features = lambda x: plain.body(x.contiguous())  # undo the layout for the inputs too
    assert advlab_cnn.body[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.body[3].weight.is_contiguous()
    data = load_images("mnist", "test", profile="quick")
    x, y = data.images[:500], data.labels[:500]

    def input_grad(model):
        xa = x.clone().requires_grad_(True)
        return torch.autograd.grad(F.cross_entropy(model(xa), y), xa)[0]

    with torch.no_grad():
        assert torch.equal(advlab_cnn(x), textbook(x)), "pooling first changed the logits"
        assert torch.allclose(advlab_cnn(x), plain(x), atol=1e-5, rtol=1e-5), "the layouts disagree"
    assert torch.equal(input_grad(advlab_cnn), input_grad(textbook)), "pooling first changed a gradient"
    assert torch.allclose(input_grad(advlab_cnn), input_grad(plain), atol=1e-7, rtol=1e-4)

    variants = {"default layout, textbook order": plain, "channels-last, textbook order": textbook,
                "advlab (channels-last, pool first)": advlab_cnn}
    optims = {id(m): torch.optim.Adam(m.parameters(), lr=1e-3) for m in variants.values()}

    def train_step(model):
        loss = F.cross_entropy(model(x[:64]), y[:64])
        optims[id(model)].zero_grad()
        loss.backward()
        optims[id(model)].step()

    def forward(model):
        with torch.no_grad():
            model(x)

    names = list(variants)
    print(f"course CNN, {torch.get_num_threads()} thread(s), {args.repeats} interleaved repeats; "
          f"median ms (time / advlab's)")
    print(f"{'workload':28s} " + " ".join(f"{n:>36s}" for n in names))
    for label, work in (("train step, 64 digits", train_step), ("input gradient, 500 digits", input_grad),
                        ("forward, 500 digits", forward)):
        times = {n: [] for n in names}
        for model in variants.values():
            work(model)  # warm-up
        for i in range(args.repeats):
            for n in names[i % 3:] + names[:i % 3]:
                start = time.perf_counter()
                work(variants[n])
                times[n].append(1000 * (time.perf_counter() - start))
        med = {n: statistics.median(t) for n, t in times.items()}
        base = med[names[-1]]
        print(f"{label:28s} " + " ".join(f"{f'{med[n]:.1f} ({med[n] / base:.2f})':>36s}" for n in names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
