"""Packing in GANTrainer as in PacGAN: a D with pack = m judges batch_size packs of m samples."""

import copy

import pytest
import torch
from _support import ring, same

from advlab.gan import GANTrainer
from advlab.gan.losses import get_loss
from advlab.gan.tricks import TrickSet
from advlab.models import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


class CountingD(MLPDiscriminator):
    """An MLPDiscriminator that records how many samples each call gets and how many logits it
    returns."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def forward(self, x):
        out = super().forward(x)
        self.calls.append((len(x), len(out)))
        return out


def nets(pack, seed=0):
    torch.manual_seed(seed)
    return MLPGenerator(2, (2,), (16, 16)), CountingD((2,), (16, 16), pack=pack)


@pytest.mark.parametrize("pack", [1, 2, 4])
@pytest.mark.parametrize("source", ["function", "tensor"])
def test_a_packing_d_sees_pack_times_batch_size_samples_and_gives_batch_size_verdicts(pack, source):
    G, D = nets(pack)
    asked = []

    def sample(n, generator):
        asked.append(n)
        return ring(n, generator)

    data = sample if source == "function" else ring(500, torch.Generator().manual_seed(0))
    seen = []
    trainer = GANTrainer(G, D, data, batch_size=8, n_critic=2, device="cpu")
    trainer.train(3, callback=lambda ctx: seen.append(
        (len(ctx.real), len(ctx.fake), len(ctx.z), ctx.d_real.shape, ctx.d_fake.shape,
         ctx.d_fake_g.shape)))
    assert trainer.pack == pack
    # per step: n_critic x (D on real, D on fake), then D on the fakes for G's step
    assert D.calls == [(pack * 8, 8)] * (3 * (2 * 2 + 1)), D.calls[:5]
    assert seen == [(pack * 8, pack * 8, pack * 8, (8,), (8,), (8,))] * 3
    if source == "function":
        assert asked == [pack * 8] * (3 * 2), "the data function must be asked for pack x batch_size"
    assert ("pack" in trainer.config) == (pack > 1), "pack joins the config only when it packs"


def reference_loop(G, D, sample_real, steps, *, batch_size, lr, seed, pack):
    """The PacGAN protocol written out: m x batch_size reals and latents per step."""
    gen = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999), fused=True)
    loss = get_loss("non-saturating")
    for _ in range(steps):
        real = sample_real(pack * batch_size, gen)
        fake = G(torch.randn(pack * batch_size, G.z_dim, generator=gen))
        d_loss = loss.d_loss(D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = loss.g_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward(inputs=list(G.parameters()))
        opt_g.step()


@pytest.mark.parametrize("pack", [1, 2])
def test_trainer_repeats_the_written_out_protocol_bit_for_bit(pack):
    torch.manual_seed(3)
    G0, D0 = MLPGenerator(2, (2,), (16, 16)), MLPDiscriminator((2,), (16, 16), pack=pack)
    G, D = copy.deepcopy(G0), copy.deepcopy(D0)
    reference_loop(G, D, ring, 20, batch_size=16, lr=1e-3, seed=7, pack=pack)
    G_t, D_t = copy.deepcopy(G0), copy.deepcopy(D0)
    GANTrainer(G_t, D_t, ring, batch_size=16, lr_g=1e-3, lr_d=1e-3, seed=7, device="cpu").train(20)
    assert same(list(G.parameters()), list(G_t.parameters()))
    assert same(list(D.parameters()), list(D_t.parameters()))


def test_pack_1_and_a_d_without_pack_train_identically():
    """pack = 1 draws what the trainer drew before packing existed: a D without ``pack`` and
    ``MLPDiscriminator(pack=1)`` give the same run, bit for bit."""

    class Plain(torch.nn.Module):  # no pack attribute
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    torch.manual_seed(0)
    G0, D0 = MLPGenerator(2, (2,), (16, 16)), MLPDiscriminator((2,), (16, 16))
    runs = []
    for wrap in (False, True):
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        trainer = GANTrainer(G, Plain(D) if wrap else D, ring, batch_size=8, seed=1, device="cpu")
        trainer.train(10)
        runs.append([*G.parameters(), *D.parameters()])
    assert trainer.pack == 1 and same(*runs)


def test_packing_changes_the_run_and_trickset_packs_through_the_trainer():
    base = TrickSet(pack=2)
    D = base.discriminator((2,), (16, 16))
    trainer = GANTrainer(base.generator(2, (2,), (16, 16)), D, ring, batch_size=8, device="cpu")
    ctx = trainer._step(1)
    assert len(ctx.real) == 16 and ctx.d_real.shape == (8,)


def test_an_unpacked_snapshot_is_refused_by_a_packing_trainer(tmp_path):
    G, D = nets(1)
    path = tmp_path / "unpacked.pt"
    GANTrainer(G, D, ring, batch_size=8, device="cpu").train(2, snapshot_path=path)
    G2, D2 = nets(2)
    with pytest.raises(ValueError, match="pack"):
        GANTrainer(G2, D2, ring, batch_size=8, device="cpu").load_snapshot(path)


def test_a_bad_pack_attribute_is_refused():
    G, D = nets(1)
    D.pack = 0
    with pytest.raises(ValueError, match="D.pack"):
        GANTrainer(G, D, ring, device="cpu")
