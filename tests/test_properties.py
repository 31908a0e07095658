"""Hypothesis properties of the library's core pieces."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from advlab import checkpoints, data, defenses, metrics
from advlab.gan import GANTrainer
from advlab.models import MLPDiscriminator, MLPGenerator

# derandomized: the same examples on every machine and every run, so CI cannot flake
SMALL = settings(max_examples=25, deadline=None, derandomize=True)


@SMALL
@given(n=st.integers(0, 60), batch_size=st.integers(1, 70), shuffle=st.booleans(),
       seed=st.integers(0, 2**31))
def test_batches_cover_every_index_exactly_once(n, batch_size, shuffle, seed):
    idx = torch.arange(n)
    got = list(data.batches(idx, batch_size=batch_size, shuffle=shuffle,
                            generator=torch.Generator().manual_seed(seed)))
    flat = torch.cat(got) if got else torch.empty(0, dtype=torch.long)
    assert sorted(flat.tolist()) == list(range(n))
    assert all(len(b) <= batch_size for b in got)
    assert len(got) == data.num_batches(n, batch_size)


def _features(seed, rows, dim, shift):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, dim, generator=g, dtype=torch.float64) * (1 + shift) + shift)


@SMALL
@given(seed=st.integers(0, 2**31), dim=st.integers(1, 6), shift=st.floats(0, 3))
def test_frechet_distance_is_symmetric_and_non_negative(seed, dim, shift):
    a, b = _features(seed, 40, dim, 0.0), _features(seed + 1, 30, dim, shift)
    ab, ba = metrics.frechet_distance(a, b), metrics.frechet_distance(b, a)
    scale = float(torch.cov(a.T).trace() + torch.cov(b.T).trace()) if dim > 1 else 1.0
    assert ab >= 0 and ba >= 0
    assert ab == pytest.approx(ba, rel=1e-6, abs=1e-9 * scale)


@SMALL
@given(seed=st.integers(0, 2**31), dim=st.integers(1, 6), shift=st.floats(0, 3))
def test_mmd2_unbiased_is_symmetric(seed, dim, shift):
    a, b = _features(seed, 20, dim, 0.0), _features(seed + 1, 15, dim, shift)
    ab, ba = metrics.mmd2_unbiased(a, b), metrics.mmd2_unbiased(b, a)
    assert ab == pytest.approx(ba, rel=1e-9, abs=1e-12)


@SMALL
@given(members=st.integers(1, 6), n=st.integers(1, 8), classes=st.integers(2, 6),
       seed=st.integers(0, 2**31), temperature=st.floats(0.05, 5))
def test_mutual_information_is_between_zero_and_entropy(members, n, classes, seed, temperature):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(members, n, classes, generator=g) / temperature, -1)
    u = defenses.uncertainty(probs)
    assert (u.mutual_information >= 0).all()
    assert (u.mutual_information <= u.entropy + 1e-6).all()


@SMALL
@given(st.dictionaries(st.text(min_size=1, max_size=5),
                       st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                                 st.lists(st.integers(), max_size=3)),
                       min_size=1, max_size=6),
       st.randoms(use_true_random=False))
def test_config_hash_does_not_depend_on_key_order(config, rnd):
    keys = list(config)
    rnd.shuffle(keys)
    assert checkpoints.config_hash({k: config[k] for k in keys}) == checkpoints.config_hash(config)


def _trainer(seed):
    torch.manual_seed(seed)
    G, D = MLPGenerator(2, (2,), (8,)), MLPDiscriminator((2,), (8,))
    return GANTrainer(G, D, lambda n, g: data.toy_2d("ring", n, generator=g), batch_size=8,
                      lr_g=1e-3, lr_d=1e-3, device="cpu", seed=3)


class _Crash(Exception):
    pass


@settings(max_examples=8, deadline=None, derandomize=True)
@given(crash=st.integers(2, 19), every=st.integers(1, 6))
def test_resume_at_any_crash_step_equals_the_uninterrupted_run(tmp_path_factory, crash, every):
    assume(every < crash)  # a snapshot exists before the crash (else there is nothing to resume)
    path = tmp_path_factory.mktemp("resume") / "gan.pt"
    full = _trainer(0)
    full.train(20)

    def stop(ctx):
        if ctx.step == crash:
            raise _Crash

    first = _trainer(0)
    with pytest.raises(_Crash):
        first.train(20, snapshot_every=every, snapshot_path=path, callback=stop)
    resumed = _trainer(7)  # other initial weights: the snapshot must restore everything
    resumed.train(20, snapshot_path=path, resume=True)
    for a, b in zip([*resumed.G.parameters(), *resumed.D.parameters()],
                    [*full.G.parameters(), *full.D.parameters()], strict=True):
        assert torch.equal(a, b)
