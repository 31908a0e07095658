"""The fixes of notebook 10: each does what its equation says, and only that."""

from types import SimpleNamespace

import pytest
import torch
from _support import Crash, ring, same
from _support import clone_params as params
from torch import nn

from advlab.gan import GANTrainer
from advlab.gan.layers import (
    MinibatchDiscrimination,
    MinibatchDiscriminator,
    VirtualBatchNorm1d,
    VirtualBatchNormGenerator,
)
from advlab.gan.tricks import FIXES, FeatureMatching, HistoricalAveraging, InstanceNoise, TrickSet
from advlab.models import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


HIDDEN = (16, 16)


def build(tricks=None, seed=0, steps=6, **kw):
    """G, D and trainer from a :class:`TrickSet`; from the plain models of advlab.models when
    ``tricks`` is None or a list of hook objects."""
    torch.manual_seed(seed)
    if tricks is None or isinstance(tricks, list):
        G, D = MLPGenerator(2, (2,), HIDDEN), MLPDiscriminator((2,), HIDDEN)
        hooks, extra = tricks or [], {}
    else:
        G = tricks.generator(2, (2,), HIDDEN, seed=seed)
        D = tricks.discriminator((2,), HIDDEN)
        hooks, extra = tricks.hooks(steps), tricks.trainer_kwargs()
    settings = {"batch_size": 8, "lr_g": 1e-3, "lr_d": 1e-3, "device": "cpu", **extra, **kw}
    return GANTrainer(G, D, ring, tricks=hooks, **settings)


def linear_weights(model):
    return [p.detach().clone() for m in model.modules() if isinstance(m, nn.Linear)
            for p in m.parameters()]


# -- feature matching ------------------------------------------------------------------------

def fm_ctx(real, fake, D):
    return SimpleNamespace(D=D, real=real, fake=fake, trainer=SimpleNamespace(tricks=[]))


def test_feature_matching_is_zero_when_feature_means_agree():
    torch.manual_seed(0)
    D = MLPDiscriminator((2,), HIDDEN)
    real = torch.randn(32, 2)
    fm = FeatureMatching()
    permuted = real[torch.randperm(32)].requires_grad_()
    loss = fm.g_loss(torch.tensor(5.0), fm_ctx(real, permuted, D))
    assert loss.abs() < 1e-10, "same features in another order must give a zero loss"
    moved = (real + 1.0).requires_grad_()
    loss = fm.g_loss(torch.tensor(5.0), fm_ctx(real, moved, D))
    expected = (D.features(moved).mean(0) - D.features(real).mean(0)).pow(2).sum()
    assert torch.allclose(loss, expected) and loss > 0
    loss.backward()
    assert moved.grad is not None and moved.grad.abs().sum() > 0
    both = FeatureMatching(weight=2.0, adversarial=True).g_loss(
        torch.tensor(5.0), fm_ctx(real, moved, D))
    assert torch.allclose(both, 5.0 + 2 * expected)


def test_feature_matching_changes_only_g_loss():
    vanilla, fm = build(), build(TrickSet(feature_matching=True))
    vanilla.train(1)
    fm.train(1)
    assert same(params(fm.D), params(vanilla.D)), "D's step must be the vanilla one"
    assert not same(params(fm.G), params(vanilla.G)), "G's loss must have changed"
    assert torch.equal(fm.history["d_loss"], vanilla.history["d_loss"])


# -- minibatch discrimination ----------------------------------------------------------------

def test_minibatch_discrimination_shape_and_collapse_signature():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(6, kernels=5, kernel_dim=3)
    f = torch.randn(10, 6)
    out = layer(f)
    assert out.shape == (10, 11) and torch.equal(out[:, :6], f)
    copies = f[:1].expand(10, 6)
    assert torch.allclose(layer.batch_features(copies), torch.full((10, 5), 9.0)), \
        "a batch of N copies must give N - 1 in every kernel"
    far = torch.randn(10, 6) * 1e3  # far apart: exp(-distance) vanishes
    assert layer.batch_features(far).abs().max() < 1e-6
    # a batch feature: a sample's output depends on the other samples
    other = torch.cat([f[:1], torch.randn(9, 6)])
    assert not torch.allclose(layer(f)[0], layer(other)[0])
    # exactly the formula, by brute force
    m = (f @ layer.T).view(10, 5, 3)
    brute = torch.stack([sum(torch.exp(-(m[i] - m[j]).abs().sum(1)) for j in range(10) if j != i)
                         for i in range(10)])
    assert torch.allclose(layer.batch_features(f), brute, atol=1e-5)


def test_minibatch_discriminator_wraps_packed_d():
    D = MinibatchDiscriminator(MLPDiscriminator((2,), HIDDEN, pack=2), kernels=3, kernel_dim=2)
    x = torch.randn(8, 2)
    assert D(x).shape == (4,) and D.features(x).shape == (4, 16 + 3) and D.pack == 2
    assert D.inner.head is None, "the inner head is unused and must not be optimised"


# -- historical averaging --------------------------------------------------------------------

def test_historical_average_is_the_mean_of_past_parameters():
    trick = HistoricalAveraging(weight=1e-2)
    trainer = build(tricks=[trick])
    seen = {"G": [params(trainer.G)], "D": [params(trainer.D)]}
    trainer.train(7, callback=lambda ctx: (seen["G"].append(params(ctx.G)),
                                           seen["D"].append(params(ctx.D))))
    for net in ("G", "D"):
        assert trick.count[net] == 8
        for i, avg in enumerate(trick.average[net]):
            mean = torch.stack([snap[i] for snap in seen[net]]).mean(0)
            assert torch.allclose(avg, mean, atol=1e-7), f"{net} parameter {i}: not the mean"
    penalty = trick.penalty(SimpleNamespace(G=trainer.G, D=trainer.D), "D")
    direct = 1e-2 * sum((p - m).pow(2).sum() for p, m in
                        zip(trainer.D.parameters(), trick.average["D"], strict=True))
    assert torch.allclose(penalty, direct) and penalty > 0


def test_historical_averaging_is_silent_at_the_first_step():
    """At theta_0 the penalty and its gradient are zero: step 1 is the vanilla step, bit for bit;
    from step 2 on the mean lags behind the parameters and pulls them back."""
    vanilla, ha = build(), build(TrickSet(historical_averaging=True, ha_weight=1.0))
    vanilla.train(1)
    ha.train(1)
    assert same(params(ha.G), params(vanilla.G)) and same(params(ha.D), params(vanilla.D))
    vanilla.train(2)
    ha.train(2)
    assert not same(params(ha.D), params(vanilla.D))


# -- virtual batch normalisation -------------------------------------------------------------

def test_vbn_output_of_a_sample_ignores_the_rest_of_its_batch():
    torch.manual_seed(0)
    G = VirtualBatchNormGenerator(MLPGenerator(2, (2,), HIDDEN, batch_norm=True), 16, seed=3)
    z = torch.randn(5, 2)
    alone = G(z[:1])
    in_batch = G(torch.cat([z[:1], 10 * torch.randn(40, 2)]))[:1]
    assert torch.allclose(alone, in_batch, atol=1e-6)
    # ordinary batch norm does depend on the batch (the point of VBN)
    torch.manual_seed(0)
    bn = MLPGenerator(2, (2,), HIDDEN, batch_norm=True)
    assert not torch.allclose(bn(z)[:1], bn(torch.cat([z[:1], 10 * torch.randn(4, 2)]))[:1])


def test_vbn_layer_formula_and_fixed_reference():
    torch.manual_seed(0)
    layer = VirtualBatchNorm1d(3)
    ref, x = torch.randn(9, 3) * 2 + 1, torch.randn(4, 3)
    with pytest.raises(RuntimeError, match="reference batch"):
        layer(x)
    layer.collecting = True
    layer(ref)
    layer.collecting = False
    w = 1 / 10
    mean = w * x + (1 - w) * ref.mean(0)
    var = w * x ** 2 + (1 - w) * (ref ** 2).mean(0) - mean ** 2
    assert torch.allclose(layer(x), (x - mean) / torch.sqrt(var + 1e-5), atol=1e-6)
    # one row normalised with the reference and itself equals BN over the reference plus it
    row = x[:1]
    full = torch.cat([ref, row])
    bn = (row - full.mean(0)) / torch.sqrt(full.var(0, unbiased=False) + 1e-5)
    assert torch.allclose(layer(row), bn, atol=1e-5)
    G = TrickSet(virtual_batch_norm=True, vbn_reference=12).generator(2, (2,), HIDDEN, seed=7)
    before = G.reference_z.clone()
    trainer = GANTrainer(G, MLPDiscriminator((2,), HIDDEN), ring, batch_size=8, device="cpu")
    trainer.train(3)
    assert torch.equal(G.reference_z, before) and before.shape == (12, 2), \
        "the reference batch is chosen once and never changes"
    assert "reference_z" in G.state_dict() and not G.reference_z.requires_grad


# -- instance noise --------------------------------------------------------------------------

def test_instance_noise_anneals_to_zero_on_schedule():
    noise = InstanceNoise(std=0.4, anneal_steps=100)
    assert noise.sigma(0) == 0.4 and noise.sigma(50) == pytest.approx(0.2)
    assert noise.sigma(100) == 0.0 and noise.sigma(250) == 0.0
    x = torch.zeros(20000, 2)
    gen = torch.Generator().manual_seed(0)
    noisy = noise.d_inputs(x, SimpleNamespace(step=25, generator=gen))
    assert noisy.std().item() == pytest.approx(0.3, rel=0.02)
    assert noise.d_inputs(x, SimpleNamespace(step=100, generator=gen)) is x
    assert InstanceNoise(0.3).sigma(10 ** 6) == 0.3  # no annealing: constant
    hooks = TrickSet(instance_noise=True, noise_std=0.5, noise_until=0.75).hooks(400)
    assert isinstance(hooks[0], InstanceNoise) and hooks[0].anneal_steps == 300


def test_instance_noise_reaches_real_and_fake_and_then_stops():
    seen = []

    class Record(InstanceNoise):
        def d_inputs(self, x, ctx):
            out = super().d_inputs(x, ctx)
            seen.append((ctx.step, torch.equal(out, x)))
            return out

    build(tricks=[Record(0.2, anneal_steps=2)]).train(3)
    assert seen == [(1, False)] * 3 + [(2, True)] * 3 + [(3, True)] * 3


# -- the switchboard -------------------------------------------------------------------------

def test_all_off_is_the_vanilla_loop_bit_for_bit():
    vanilla, off = build(), build(TrickSet())
    assert off.tricks == [] and off.real_label == 1.0
    vanilla.train(20)
    off.train(20)
    assert same(params(off.G), params(vanilla.G)) and same(params(off.D), params(vanilla.D))
    assert torch.equal(off.history["g_loss"], vanilla.history["g_loss"])
    assert torch.equal(off.history["d_loss"], vanilla.history["d_loss"])
    assert TrickSet().label() == "vanilla" and TrickSet().enabled() == ()


SWITCHES = [  # (switch, what it may change: G, D, hooks, trainer options)
    ({"feature_matching": True}, {"hooks"}),
    ({"minibatch_discrimination": True}, {"D"}),
    ({"historical_averaging": True}, {"hooks"}),
    ({"label_smoothing": True}, {"trainer"}),
    ({"virtual_batch_norm": True}, {"G"}),
    ({"instance_noise": True}, {"hooks"}),
    ({"pack": 2}, {"D"}),
]


@pytest.mark.parametrize("switch,changes", SWITCHES, ids=lambda s: str(s))
def test_each_switch_changes_only_what_it_claims(switch, changes):
    torch.manual_seed(0)
    G0, D0 = MLPGenerator(2, (2,), HIDDEN), MLPDiscriminator((2,), HIDDEN)
    tricks = TrickSet(**switch)
    torch.manual_seed(0)
    G, D = tricks.generator(2, (2,), HIDDEN), tricks.discriminator((2,), HIDDEN)
    assert (type(G) is not MLPGenerator or any(isinstance(m, nn.BatchNorm1d) for m in
                                                 G.modules())) == ("G" in changes)
    assert same(linear_weights(G), linear_weights(G0)), "G's weights must start the same"
    assert (type(D) is not MLPDiscriminator or D.pack != 1) == ("D" in changes)
    if "D" not in changes:
        assert same(params(D), params(D0))
    assert bool(tricks.hooks(10)) == ("hooks" in changes)
    assert tricks.trainer_kwargs() == ({"real_label": 0.9} if "trainer" in changes else {})
    assert len(tricks.enabled()) == 1


def test_label_smoothing_changes_only_the_real_target():
    smooth = build(TrickSet(label_smoothing=True, real_label=0.8))
    assert smooth.real_label == 0.8 and smooth.tricks == []
    plain = build(real_label=0.8)
    smooth.train(5)
    plain.train(5)
    assert same(params(smooth.G), params(plain.G))


def test_names_and_config():
    t = TrickSet(feature_matching=True, instance_noise=True, pack=4)
    assert t.enabled() == ("feature_matching", "instance_noise", "packing")
    assert t.label() == "feature matching + instance noise + pack4"
    assert set(t.config()) >= {"pack", "noise_std"} and set(FIXES) - {"packing"} <= set(t.config())


# -- resume ----------------------------------------------------------------------------------

def test_every_fix_together_survives_a_resume(tmp_path):
    all_on = TrickSet(feature_matching=True, minibatch_discrimination=True, pack=2,
                    historical_averaging=True, label_smoothing=True, virtual_batch_norm=True,
                    instance_noise=True, noise_std=0.3, vbn_reference=8, mbd_kernels=3,
                    mbd_kernel_dim=2)
    path = tmp_path / "gan.pt"
    full = build(all_on, steps=24)
    full.train(24, check_every=5)

    def crash(ctx):
        if ctx.step == 13:
            raise Crash

    first = build(all_on, steps=24)
    with pytest.raises(Crash):
        first.train(24, snapshot_every=5, snapshot_path=path, callback=crash)
    resumed = build(all_on, seed=9, steps=24)  # other weights, other reference batch
    assert not torch.equal(resumed.G.reference_z, full.G.reference_z)
    resumed.train(24, snapshot_path=path, resume=True, check_every=5)
    assert same(params(resumed.G), params(full.G)) and same(params(resumed.D), params(full.D))
    assert torch.equal(resumed.G.reference_z, full.G.reference_z)
    assert torch.equal(resumed.history["g_loss"], full.history["g_loss"])
    ha_full, ha_resumed = full.tricks[-1], resumed.tricks[-1]
    assert isinstance(ha_full, HistoricalAveraging) and ha_resumed.count == ha_full.count
    assert all(same(ha_resumed.average[k], ha_full.average[k]) for k in ("G", "D"))
    assert torch.isfinite(full.history["d_loss"]).all()


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("make,exc,match", [
    (lambda: TrickSet(pack=0), ValueError, "pack"),
    (lambda: TrickSet(feature_matching=1), TypeError, "feature_matching"),
    (lambda: TrickSet(noise_std=-0.1), ValueError, "noise_std"),
    (lambda: TrickSet(noise_until=1.5), ValueError, "noise_until"),
    (lambda: TrickSet(real_label=0), ValueError, "real_label"),
    (lambda: TrickSet(mbd_kernels=0), ValueError, "mbd_kernels"),
    (lambda: TrickSet(ha_weight=float("nan")), ValueError, "ha_weight"),
    (lambda: TrickSet().hooks(0), ValueError, "steps"),
    (lambda: FeatureMatching(weight=0), ValueError, "weight"),
    (lambda: HistoricalAveraging(networks=("X",)), ValueError, "networks"),
    (lambda: InstanceNoise(std=-1), ValueError, "std"),
    (lambda: InstanceNoise(anneal_steps=0), ValueError, "anneal_steps"),
    (lambda: MinibatchDiscrimination(0), ValueError, "in_features"),
    (lambda: MinibatchDiscrimination(4)(torch.zeros(3, 5)), ValueError, "f must have shape"),
    (lambda: MinibatchDiscriminator(nn.Linear(2, 1)), TypeError, "D must"),
    (lambda: VirtualBatchNorm1d(3)(torch.zeros(2, 4)), ValueError, "x must have shape"),
    (lambda: VirtualBatchNormGenerator(MLPGenerator(), 8), ValueError, "batch_norm"),
    (lambda: VirtualBatchNormGenerator(nn.Linear(2, 2)), TypeError, "G must"),
    (lambda: VirtualBatchNormGenerator(MLPGenerator(batch_norm=True), 0), ValueError,
     "reference_size"),
])
def test_bad_input_names_the_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_feature_matching_needs_features():
    class NoFeatures(nn.Module):
        def forward(self, x):
            return x.sum(1)

    fm = FeatureMatching()
    with pytest.raises(TypeError, match="features"):
        fm.g_loss(torch.tensor(0.0), fm_ctx(torch.zeros(2, 2), torch.zeros(2, 2), NoFeatures()))


# -- cached toy runs -------------------------------------------------------------------------

def test_toy_run_is_cached_and_parallel_runs_match_serial(tmp_data):
    from advlab.gan.toy import toy_run, toy_runs

    small = {"hidden": (8, 8), "batch_size": 16, "n_samples": 50}
    jobs = [(TrickSet(), "ring", 0, 20), (TrickSet(instance_noise=True), "grid", 1, 15, {"lr": 1e-3})]
    first = toy_run(*jobs[0], **small)
    assert not first["hit"] and first["samples"].shape == (50, 2)
    again = toy_run(*jobs[0], **small)
    assert again["hit"] and torch.equal(again["samples"], first["samples"])
    fresh = toy_run(*jobs[1][:4], cache=False, lr=1e-3, **small)
    parallel = toy_runs([jobs[1], (TrickSet(pack=2), "ring", 2, 10)], workers=2, **small)
    assert [r["hit"] for r in parallel] == [False, False]
    assert torch.equal(parallel[0]["samples"], fresh["samples"]), "a worker must repeat the run"
    assert all(r["hit"] for r in toy_runs([jobs[1], (TrickSet(pack=2), "ring", 2, 10)], **small))
    assert len(list(tmp_data.glob("cache/gan-toy-*.pt"))) == 3


@pytest.mark.parametrize("call,exc,match", [
    (lambda t: t.toy_run("vanilla", "ring", 0, 5), TypeError, "tricks"),
    (lambda t: t.toy_run(TrickSet(), "moons", 0, 5), ValueError, "dataset"),
    (lambda t: t.toy_run(TrickSet(), "ring", 0, 0), ValueError, "steps"),
    (lambda t: t.toy_run(TrickSet(), "ring", 0, 5, decay_from=2), ValueError, "decay_from"),
    (lambda t: t.toy_runs([(TrickSet(), "ring", 0)]), ValueError, "each job"),
    (lambda t: t.toy_runs([], workers=0), ValueError, "workers"),
])
def test_toy_run_bad_input(tmp_data, call, exc, match):
    from advlab.gan import toy

    with pytest.raises(exc, match=match):
        call(toy)
