import pytest
import torch
import torch.nn.functional as F
from _support import Crash, clone_params, ring, same
from torch import nn

from advlab import checkpoints
from advlab.data import toy_2d
from advlab.gan import GANDivergedError, GANTrainer, Trick, train_gan
from advlab.models import MLPDiscriminator, MLPGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def make(seed=0, **kw):
    torch.manual_seed(seed)
    G, D = MLPGenerator(2, (2,), (16, 16)), MLPDiscriminator((2,), (16, 16))
    settings = {"batch_size": 8, "lr_g": 1e-3, "lr_d": 1e-3, "device": "cpu", **kw}
    return GANTrainer(G, D, ring, **settings)


class Spy(Trick):
    """Records the hook calls of each step and checks who changes what."""

    def __init__(self):
        self.events = []

    def before_step(self, ctx):
        self.events.append("before_step")
        self.g0, self.d0 = clone_params(ctx.G), clone_params(ctx.D)

    def d_inputs(self, x, ctx):
        if x is ctx.real:
            self.events.append("D(real)")
        elif ctx.fake is not None and x.data_ptr() == ctx.fake.data_ptr():
            self.events.append("D(fake, graph to G)" if x.requires_grad else "D(fake.detach())")
        return x

    def latent(self, z, ctx):
        self.events.append("generate")
        return z

    def d_loss(self, loss, ctx):
        self.events.append("d_loss")
        return loss

    def after_d_step(self, ctx):
        self.events.append("D step")
        assert same(clone_params(ctx.G), self.g0), "D's step changed G"
        assert not same(clone_params(ctx.D), self.d0), "D's step did not change D"
        self.d1 = clone_params(ctx.D)
        self.d_grads = [p.grad.clone() for p in ctx.D.parameters()]
        self.fake_seen = ctx.fake

    def g_loss(self, loss, ctx):
        self.events.append("g_loss")
        assert ctx.fake is self.fake_seen, "G's step must reuse the fake batch"
        return loss

    def after_g_step(self, ctx):
        self.events.append("G step")
        assert same(clone_params(ctx.D), self.d1), "G's step changed D"
        assert same([p.grad for p in ctx.D.parameters()], self.d_grads), \
            "G's backward pass accumulated gradients into D"
        assert not same(clone_params(ctx.G), self.g0), "G's step did not change G"


def test_order_of_updates_follows_the_notes():
    spy = Spy()
    trainer = make(tricks=[spy])
    calls = []
    trainer.G.register_forward_hook(lambda m, i, o: calls.append("G"))
    trainer.train(2)
    one_step = ["before_step", "D(real)", "generate", "D(fake.detach())", "d_loss", "D step",
                "D(fake, graph to G)", "g_loss", "G step"]
    assert spy.events == one_step * 2
    assert calls == ["G", "G"]  # the fake batch is generated once per step


def test_n_critic_steps_per_generator_step():
    spy = Spy()
    trainer = make(tricks=[spy], n_critic=3)
    grads = []
    trainer.G.register_forward_hook(lambda m, i, o: grads.append(o.requires_grad))
    spy.after_d_step = lambda ctx, base=spy.after_d_step: (
        base(ctx) if ctx.critic_iter == 2 else spy.events.append("D step"))
    trainer.train(1)
    critic = ["D(real)", "generate", "D(fake.detach())", "d_loss", "D step"]
    assert spy.events == ["before_step", *critic * 3, "D(fake, graph to G)", "g_loss", "G step"]
    assert grads == [False, False, True]  # only the last fake keeps G's graph


class Noisy(Trick):
    """Randomness from both the loop's generator and the global RNG, plus state."""

    def __init__(self):
        self.calls = 0

    def d_inputs(self, x, ctx):
        self.calls += 1
        noise = torch.randn(x.shape, generator=ctx.generator) + torch.randn_like(x)
        return x + 0.01 * noise

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    path = tmp_path / "gan.pt"
    torch.manual_seed(123)
    full = make(tricks=[Noisy()])
    full.train(30, check_every=7)

    def crash_at_17(ctx):
        if ctx.step == 17:
            raise Crash

    torch.manual_seed(123)
    first = make(tricks=[Noisy()])
    with pytest.raises(Crash):
        first.train(30, snapshot_every=5, snapshot_path=path, callback=crash_at_17)
    assert checkpoints.load(path)["step"] == 15
    # fresh models with other weights; global RNG elsewhere: the snapshot restores all of it
    torch.manual_seed(999)
    resumed = make(seed=5, tricks=[Noisy()])
    history = resumed.train(30, snapshot_path=path, resume=True, check_every=7)
    assert resumed.step == full.step == 30 and history["steps"] == 30
    assert same(clone_params(resumed.G), clone_params(full.G))
    assert same(clone_params(resumed.D), clone_params(full.D))
    assert torch.equal(history["d_loss"], full.history["d_loss"])
    assert torch.equal(history["g_loss"], full.history["g_loss"])
    assert resumed.tricks[0].calls == full.tricks[0].calls
    assert torch.equal(resumed.generator.get_state(), full.generator.get_state())


def test_resume_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "gan.pt"
    make().train(3, snapshot_path=path)
    with pytest.raises(ValueError, match="lr_d"):
        make(lr_d=5e-4).train(6, snapshot_path=path, resume=True)
    assert make().train(4, snapshot_path=path, resume=True)["d_loss"].shape == (4,)


class NaNAt(Trick):
    def __init__(self, step):
        self.step = step

    def d_loss(self, loss, ctx):
        return loss * float("nan") if ctx.step == self.step else loss


def test_nan_stops_with_named_error_and_keeps_last_good_snapshot(tmp_path):
    path = tmp_path / "gan.pt"
    trainer = make(tricks=[NaNAt(13)])
    with pytest.raises(GANDivergedError, match="discriminator loss .*step 13") as info:
        trainer.train(40, snapshot_every=5, snapshot_path=path)
    err = info.value
    assert (err.step, err.snapshot_step, err.snapshot_path) == (13, 10, path)
    assert str(path) in str(err)
    assert len(trainer.history["d_loss"]) == 13 and trainer.history["d_loss"][-1].isnan()
    # the snapshot on disk is the good one from step 10 and loads into a fresh trainer
    with pytest.raises(ValueError, match="tricks"):
        make().load_snapshot(path)
    fresh = make(tricks=[NaNAt(13)])
    fresh.load_snapshot(path)
    assert fresh.step == 10 and torch.isfinite(fresh.history["d_loss"]).all()
    assert all(torch.isfinite(p).all() for p in fresh.G.parameters())


def test_nan_without_snapshot_says_so():
    with pytest.raises(GANDivergedError, match="No snapshot was written"):
        make(tricks=[NaNAt(2)]).train(5)


def test_sampling_inside_a_callback_does_not_change_training():
    a = make()
    a.train(10)
    b = make()
    b.train(10, callback=lambda ctx: ctx.trainer.sample(4))
    assert same(clone_params(a.G), clone_params(b.G))
    assert torch.equal(b.sample(3), b.sample(3)) and b.G.training


def test_tensor_data_and_train_gan():
    data = toy_2d("grid", 256, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    trainer, history = train_gan(MLPGenerator(2, (2,), (8,)), MLPDiscriminator((2,), (8,)), data,
                                 steps=5, batch_size=16, loss="minimax", real_label=0.9,
                                 device="cpu")
    assert history["d_loss"].shape == history["g_loss"].shape == (5,)
    assert history["seconds"] > 0 and trainer.sample(7).shape == (7, 2)


class CondG(nn.Module):
    z_dim = 4

    def __init__(self):
        super().__init__()
        self.embed, self.net = nn.Embedding(3, 4), nn.Linear(4, 2)

    def forward(self, z, y):
        return self.net(z + self.embed(y))


class TwoHeadD(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.adv, self.cls = nn.Linear(2, 8), nn.Linear(8, 1), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.adv(h).squeeze(1), self.cls(h)


class ClassLoss(Trick):
    """An AC-GAN-style class loss through the hooks (labels in, two-headed D)."""

    def latent(self, z, ctx):
        ctx.fake_labels = torch.randint(3, (len(z),), generator=ctx.generator)
        return z, ctx.fake_labels

    def d_loss(self, loss, ctx):
        self.seen = (ctx.real_labels.dtype, ctx.d_real[1].shape)
        return loss + F.cross_entropy(ctx.d_real[1], ctx.real_labels) \
            + F.cross_entropy(ctx.d_fake[1], ctx.fake_labels)

    def g_loss(self, loss, ctx):
        return loss + F.cross_entropy(ctx.d_fake_g[1], ctx.fake_labels)


def test_labelled_data_conditional_g_and_two_headed_d_plug_in():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(3, (60,), generator=gen)
    x = torch.randn(60, 2, generator=gen) + labels[:, None].float()
    trick = ClassLoss()
    trainer = GANTrainer(CondG(), TwoHeadD(), (x, labels), batch_size=6, tricks=[trick],
                         device="cpu")
    trainer.train(3)
    assert trick.seen == (torch.int64, (6, 3)) and trainer.step == 3


def test_a_registered_loss_is_called_as_d_loss_and_g_loss(monkeypatch):
    from advlab.gan import losses

    monkeypatch.setattr(losses, "LOSSES", dict(losses.LOSSES))
    seen = []

    def d_loss(real_out, fake_out, real_label):
        seen.append(("d", real_out.shape, fake_out.shape, real_label))
        return losses.bce_d_loss(real_out, fake_out, real_label)

    def g_loss(fake_out):
        seen.append(("g", fake_out.shape))
        return losses.non_saturating_g_loss(fake_out)

    loss = losses.register_loss("spied", d_loss, g_loss)
    make(loss=loss, real_label=0.9).train(2)
    assert seen == [("d", (8,), (8,), 0.9), ("g", (8,))] * 2


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"loss": "wgan-typo"}, ValueError, "loss must be one of"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"lr_g": -1.0}, ValueError, "lr_g"),
    ({"lr_d": 0}, ValueError, "lr_d"),
    ({"n_critic": 0}, ValueError, "n_critic"),
    ({"real_label": 1.5}, ValueError, "real_label"),
    ({"betas": (0.5,)}, ValueError, "betas"),
    ({"optimizer": "sgd"}, ValueError, "optimizer"),
    ({"tricks": [object()]}, TypeError, "trick"),
])
def test_bad_settings(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make(**kwargs)


def test_bad_data_and_train_arguments(tmp_path):
    G, D = MLPGenerator(), MLPDiscriminator()
    with pytest.raises(TypeError, match="data"):
        GANTrainer(G, D, [1, 2, 3], device="cpu")
    with pytest.raises(ValueError, match="labels"):
        GANTrainer(G, D, (torch.zeros(4, 2), torch.zeros(3)), device="cpu")
    with pytest.raises(TypeError, match="G and D"):
        GANTrainer(G, "D", torch.zeros(4, 2), device="cpu")
    with pytest.raises(ValueError, match="z_dim"):
        GANTrainer(nn.Linear(2, 2), D, torch.zeros(4, 2), device="cpu")
    trainer = make()
    with pytest.raises(ValueError, match="steps"):
        trainer.train(0)
    with pytest.raises(ValueError, match="snapshot_path"):
        trainer.train(3, resume=True)
    with pytest.raises(ValueError, match="snapshot_path"):
        trainer.train(3, snapshot_every=2)
    trainer.train(4)
    with pytest.raises(ValueError, match="steps must be >= the 4"):
        trainer.train(2)


def test_lr_schedule_sets_both_learning_rates_each_step():
    from advlab.gan.train import linear_decay

    seen = []
    trainer = make(lr_schedule=linear_decay(0.5))
    trainer.train(10, callback=lambda ctx: seen.append(
        (ctx.trainer.opt_g.param_groups[0]["lr"], ctx.trainer.opt_d.param_groups[0]["lr"])))
    expected = [1e-3 if t < 5 else max(1e-3 * (10 - t) / 5, 1e-12) for t in range(1, 11)]
    assert [g for g, _ in seen] == pytest.approx(expected)
    assert [d for _, d in seen] == pytest.approx(expected)
    assert trainer.config["lr_schedule"] == "linear_decay(0.5)"
    with pytest.raises(TypeError, match="lr_schedule"):
        make(lr_schedule=0.5)
    with pytest.raises(ValueError, match="decay_from"):
        linear_decay(1.5)


def test_sample_with_labels_for_a_conditional_generator():
    class Conditional(nn.Module):
        z_dim = 2

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(3, 2)

        def forward(self, z, labels=None):
            return z if labels is None else z + 10 * self.embed(labels)

    torch.manual_seed(0)
    trainer = GANTrainer(Conditional(), MLPDiscriminator((2,), (4,)), ring, device="cpu")
    labels = torch.tensor([0, 1, 2, 1])
    out = trainer.sample(4, labels=labels)
    plain = trainer.sample(4)
    assert torch.allclose(out - plain, 10 * trainer.G.embed(labels).detach())
    with pytest.raises(ValueError, match="labels must have shape"):
        trainer.sample(3, labels=labels)
