import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advlab import attacks


def _linear2(d=16, seed=0):
    """A two-class linear model whose two weight rows differ in every pixel."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, 2))
    with torch.no_grad():
        w0 = torch.randn(d, generator=g)
        gap = torch.rand(d, generator=g) + 0.1
        sign = torch.where(torch.rand(d, generator=g) < 0.5, -1.0, 1.0)
        model[1].weight.copy_(torch.stack([w0, w0 + sign * gap]))
        model[1].bias.zero_()
    return model


def _small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 10),
    )


def _batch(n=6, seed=0, hw=8):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, hw, hw, generator=g), torch.randint(0, 10, (n,), generator=g)


def _flags(model):
    return [m.training for m in model.modules()]


# --- golden values ------------------------------------------------------------------------------

@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_on_linear_model_moves_by_eps_sign_of_weight_gap(targeted):
    model = _linear2()
    x = 0.3 + 0.4 * torch.rand(5, 1, 4, 4)  # far enough from 0 and 1 that nothing is clipped
    y = torch.tensor([0, 1, 0, 1, 1])
    eps = 0.1
    adv = attacks.fgsm(model, x, y, eps, targeted=targeted)
    w = model[1].weight.detach()
    other = 1 - y
    # grad_x CE(y) = p_other * (w_other - w_y); targeted at y steps down that same gradient.
    direction = (w[other] - w[y]).sign().view_as(x)
    expected = x - eps * direction if targeted else x + eps * direction
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)


def test_fgsm_clips_to_unit_interval():
    model = _linear2()
    x = torch.cat([torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)])
    adv = attacks.fgsm(model, x, torch.tensor([0, 1]), 0.5)
    assert adv.min() >= 0 and adv.max() <= 1
    assert set(adv.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_pgd_one_step_without_random_start_is_fgsm():
    model = _small_cnn().eval()
    x, y = _batch(8)
    for targeted in (False, True):
        a = attacks.fgsm(model, x, y, 0.1, targeted=targeted)
        b = attacks.pgd(model, x, y, 0.1, alpha=0.1, steps=1, random_start=False, targeted=targeted)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_margin_loss_is_positive_exactly_when_misclassified():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0], [1.0, 1.5, -1.0]])
    labels = torch.tensor([0, 1, 1])
    value = attacks.attack_loss(logits, labels, "margin", reduction="none")
    torch.testing.assert_close(value, torch.tensor([-2.0, 3.0, -0.5]))


def test_pgd_is_at_least_as_strong_as_fgsm_and_deterministic():
    model = _linear2(d=64)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200, 1, 8, 8, generator=g)
    y = model(x).argmax(1).detach()  # all correctly classified
    eps = 0.03
    fgsm_acc = (model(attacks.fgsm(model, x, y, eps)).argmax(1) == y).float().mean()
    runs = [attacks.pgd(model, x, y, eps, steps=10, generator=torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert (model(runs[0]).argmax(1) == y).float().mean() <= fgsm_acc


def test_pgd_restarts_keep_each_images_worst_case():
    model = _small_cnn().eval()
    x, y = _batch(16, seed=2)
    kw = dict(steps=2, loss="margin")
    one = attacks.pgd(model, x, y, 0.05, generator=torch.Generator().manual_seed(5), **kw)
    many = attacks.pgd(model, x, y, 0.05, restarts=4, generator=torch.Generator().manual_seed(5), **kw)
    # The first restart replays the single run, so every image can only get worse for the model.
    with torch.no_grad():
        m1 = attacks.attack_loss(model(one), y, "margin", reduction="none")
        m4 = attacks.attack_loss(model(many), y, "margin", reduction="none")
    assert bool((m4 >= m1 - 1e-6).all()) and bool((m4 > m1).any())
    assert (many - x).abs().max() <= 0.05 + 1e-6


# --- torchattacks as an oracle -------------------------------------------------------------------

def test_fgsm_and_pgd_match_torchattacks():
    torchattacks = importlib.import_module("torchattacks")  # an oracle: missing means failing
    model = _small_cnn().eval()
    x, y = _batch(16, seed=3)
    torch.testing.assert_close(attacks.fgsm(model, x, y, 0.1),
                               torchattacks.FGSM(model, eps=0.1)(x, y), atol=1e-6, rtol=0)
    ours = attacks.pgd(model, x, y, 0.1, alpha=0.02, steps=7, random_start=False)
    theirs = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=7, random_start=False)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


# --- invariants every attack keeps (property tests) ----------------------------------------------

@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 4), eps=st.sampled_from([0.0, 0.01, 0.1, 0.3]), steps=st.integers(1, 3),
       loss=st.sampled_from(attacks.LOSSES), targeted=st.booleans(), train_top=st.booleans(),
       which=st.sampled_from(["fgsm", "pgd"]), seed=st.integers(0, 2**16))
def test_gradient_attack_invariants(n, eps, steps, loss, targeted, train_top, which, seed):
    model = _small_cnn()
    model.train(train_top)
    model[3].train(not train_top)  # mixed flags: each module's own flag must come back
    before = _flags(model)
    x, y = _batch(n, seed=seed)
    if which == "fgsm":
        adv = attacks.fgsm(model, x, y, eps, targeted=targeted)
    else:
        adv = attacks.pgd(model, x, y, eps, steps=steps, loss=loss, targeted=targeted,
                          generator=torch.Generator().manual_seed(seed))
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= eps + 1e-6
    if eps == 0:
        assert torch.equal(adv, x)
    assert _flags(model) == before
    assert all(p.grad is None for p in model.parameters())


def test_attacks_run_in_eval_mode_and_under_no_grad():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _small_cnn()

        def forward(self, x):
            seen.append((self.training, self.inner[1].training))
            return self.inner(x)

    model = Spy().train()
    x, y = _batch(3)
    with torch.no_grad():  # a caller's no_grad must not break the attack
        attacks.pgd(model, x, y, 0.1, steps=2)
    assert seen and all(flags == (False, False) for flags in seen)
    assert model.training and model.inner[1].training


@settings(max_examples=6, deadline=None)
@given(size=st.integers(1, 8), n=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_apply_patch_shapes_bounds_and_gradient(size, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    patch = torch.rand(1, size, size, generator=g).requires_grad_(True)
    out = attacks.apply_patch(x, patch, generator=g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    (grad,) = torch.autograd.grad(out.sum(), patch)
    torch.testing.assert_close(grad, torch.full_like(patch, float(n)))  # each pixel once per image


# --- patches -------------------------------------------------------------------------------------

def test_apply_patch_lands_fully_inside_at_every_position():
    H, W, h, w = 7, 9, 3, 4
    corners = torch.tensor([(t, l) for t in range(H - h + 1) for l in range(W - w + 1)])
    x = torch.zeros(len(corners), 2, H, W)
    patch = torch.full((2, h, w), 0.5)  # a value the images never hold
    out = attacks.apply_patch(x, patch, positions=corners)
    expected = x.clone()
    for i, (t, l) in enumerate(corners.tolist()):
        expected[i, :, t:t + h, l:l + w] = 0.5
    assert torch.equal(out, expected)
    rand = attacks.apply_patch(torch.zeros(500, 2, H, W), patch,
                               generator=torch.Generator().manual_seed(0))
    assert bool(((rand == 0.5).flatten(1).sum(1) == 2 * h * w).all())  # never cut by a border


def test_apply_patch_gradient_is_the_same_on_every_run(one_thread):
    """The patch gradient sums over images with matrix products: bit-identical run to run, at
    any thread count, and equal to the per-image sum of the output gradient under the patch."""
    g = torch.Generator().manual_seed(0)
    x, patch = torch.rand(256, 1, 28, 28, generator=g), torch.rand(1, 12, 12, generator=g)
    weight = torch.randn(256, 1, 28, 28, generator=g)
    corners = attacks.random_positions(256, (28, 28), (12, 12), g)
    before = torch.get_num_threads()
    grads = []
    try:
        for threads in (2, 2, 2, 1):
            torch.set_num_threads(threads)
            p = patch.clone().requires_grad_(True)
            (attacks.apply_patch(x, p, positions=corners) * weight).sum().backward()
            grads.append(p.grad)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(grads[0], other) for other in grads[1:3])
    reference = torch.zeros(1, 12, 12, dtype=torch.float64)
    for i, (t, left) in enumerate(corners.tolist()):
        reference += weight[i, :, t:t + 12, left:left + 12].double()
    torch.testing.assert_close(grads[3].double(), reference, rtol=1e-5, atol=1e-4)


def test_apply_patch_fixed_position_for_every_image():
    x = torch.zeros(3, 1, 6, 6)
    out = attacks.apply_patch(x, torch.ones(1, 2, 2), positions=(4, 0))
    assert torch.equal(out[:, 0, 4:, :2], torch.ones(3, 2, 2)) and out.sum() == 12
    for bad in [(5, 0), (0.5, 1.0), torch.zeros(2, 2, dtype=torch.long), (1, 2, 3)]:
        with pytest.raises(ValueError, match="positions"):
            attacks.apply_patch(x, torch.ones(1, 2, 2), positions=bad)


def _bright_detector():
    """Class 1 when the image holds enough bright pixels anywhere: a patch can trigger it."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(64), torch.ones(64)]))
        model[1].bias.copy_(torch.tensor([0.0, -10.0]))
    return model


def test_train_patch_learns_a_trigger_and_keeps_pixels_in_range():
    model = _bright_detector().train()
    x = 0.1 * torch.rand(64, 1, 8, 8)
    y = torch.zeros(64, dtype=torch.long)
    patch = attacks.train_patch(model, x, 1, size=4, steps=40, batch_size=16, lr=0.3,
                                generator=torch.Generator().manual_seed(0))
    assert patch.shape == (1, 4, 4) and patch.min() >= 0 and patch.max() <= 1
    assert model.training and all(p.grad is None for p in model.parameters())
    g = torch.Generator().manual_seed(1)
    assert attacks.patch_success(model, patch, x, y, 1, generator=g) == 1.0
    assert attacks.patch_success(model, torch.zeros(1, 4, 4), x, y, 1, generator=g) == 0.0
    assert attacks.patch_success(model, patch, x, y, 1, positions=(0, 0)) == 1.0


def test_patch_success_ignores_images_of_the_target_class():
    model = _bright_detector()
    x = torch.cat([torch.ones(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)])
    y = torch.tensor([1, 1, 0, 0])  # the bright target-class images would count as hits
    assert attacks.patch_success(model, torch.zeros(1, 2, 2), x, y, 1) == 0.0


# --- transfer ------------------------------------------------------------------------------------

def test_transfer_matrix_measures_flips_of_correct_predictions():
    a, b = _linear2(d=64, seed=0), _linear2(d=64, seed=1)
    x = torch.rand(100, 1, 8, 8)
    y = a(x).argmax(1).detach()
    models = {"a": a, "b": b}
    same = attacks.transfer_matrix(models, x, y, lambda m, xs, ys: xs)
    assert same == {"a": {"a": 0.0, "b": 0.0}, "b": {"a": 0.0, "b": 0.0}}
    strong = attacks.transfer_matrix(models, x, y, lambda m, xs, ys: attacks.fgsm(m, xs, ys, 0.3))
    assert strong["a"]["a"] == 1.0 and 0.0 <= strong["a"]["b"] <= 1.0
    correct_b = b(x).argmax(1) == y
    expected = (b(attacks.fgsm(a, x, y, 0.3)[correct_b]).argmax(1) != y[correct_b]).float().mean()
    assert strong["a"]["b"] == pytest.approx(expected.item())


# --- SimBA ---------------------------------------------------------------------------------------

class _Counting(nn.Module):
    """Counts every image the model is asked about and checks that no gradient is available."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows, self.calls = model, 0, 0

    def forward(self, x):
        assert not torch.is_grad_enabled(), "a query-only attack must not build graphs"
        self.rows += len(x)
        self.calls += 1
        return self.model(x)


@pytest.mark.parametrize("basis", attacks.BASES)
def test_simba_counts_every_query_and_respects_the_budget(basis):
    model = _Counting(_small_cnn().eval())
    x, _ = _batch(12, seed=4)
    with torch.no_grad():
        y = model.model(x).argmax(1)  # start from correct predictions (not counted)
    result = attacks.simba(model, x, y, eps=0.5, max_queries=30, basis=basis,
                           generator=torch.Generator().manual_seed(0))
    assert int(result.queries.sum()) == model.rows
    assert bool((result.queries >= 1).all() and (result.queries <= 30).all())
    assert bool((result.queries[~result.success] == 30).all())  # failures used the whole budget
    with torch.no_grad():
        assert torch.equal(model.model(result.images).argmax(1) != y, result.success)
    assert result.images.min() >= 0 and result.images.max() <= 1


def test_simba_fools_a_linear_model_and_eps_zero_is_identity():
    model = _linear2(d=64)
    x = 0.25 + 0.5 * torch.rand(40, 1, 8, 8)
    y = model(x).argmax(1).detach()
    result = attacks.simba(model, x, y, eps=0.5, max_queries=200,
                           generator=torch.Generator().manual_seed(0))
    assert result.success.float().mean() >= 0.9
    still = attacks.simba(model, x, y, eps=0.0, max_queries=200)
    assert torch.equal(still.images, x) and bool((still.queries == 1).all())
    assert not still.success.any()


def test_dct_matrix_is_orthonormal():
    m = attacks.dct_matrix(7)
    torch.testing.assert_close(m @ m.T, torch.eye(7), atol=1e-5, rtol=0)


# --- bad input -----------------------------------------------------------------------------------

class _Untouchable(nn.Module):
    def forward(self, x):
        raise AssertionError("the model was called before the input was checked")


X, Y = torch.rand(2, 1, 8, 8), torch.tensor([0, 1])
BAD = [
    (attacks.fgsm, (X, Y, -0.1), {}, ValueError, "eps"),
    (attacks.fgsm, (X * 2, Y, 0.1), {}, ValueError, "images"),
    (attacks.fgsm, (X[0], Y, 0.1), {}, ValueError, "images"),
    (attacks.fgsm, (X.double().numpy(), Y, 0.1), {}, TypeError, "images"),
    (attacks.fgsm, (X, Y[:1], 0.1), {}, ValueError, "labels"),
    (attacks.fgsm, (X, Y.float(), 0.1), {}, TypeError, "labels"),
    (attacks.fgsm, (X, Y, "0.1"), {}, TypeError, "eps"),
    (attacks.pgd, (X, Y, 0.1), {"steps": 0}, ValueError, "steps"),
    (attacks.pgd, (X, Y, 0.1), {"alpha": 0.0}, ValueError, "alpha"),
    (attacks.pgd, (X, Y, 0.1), {"loss": "hinge"}, ValueError, "loss"),
    (attacks.pgd, (X, Y, 0.1), {"restarts": 0}, ValueError, "restarts"),
    (attacks.simba, (X, Y), {"eps": 0.2, "max_queries": 0}, ValueError, "max_queries"),
    (attacks.simba, (X, Y), {"eps": 0.2, "max_queries": 9, "basis": "haar"}, ValueError, "basis"),
    (attacks.simba, (X, Y), {"eps": -1.0, "max_queries": 9}, ValueError, "eps"),
    (attacks.train_patch, (X, 1), {"size": 9, "steps": 1}, ValueError, "patch"),
    (attacks.train_patch, (X, 1), {"size": 2, "steps": 0}, ValueError, "steps"),
    (attacks.train_patch, (X, -1), {"size": 2, "steps": 1}, ValueError, "target"),
    (attacks.patch_success, (torch.ones(1, 9, 2), X, Y, 1), {}, ValueError, "patch"),
    (attacks.patch_success, (torch.ones(3, 2, 2), X, Y, 1), {}, ValueError, "channels"),
    (attacks.patch_success, (torch.ones(1, 2, 2), X, Y, 1), {"placements": 0}, ValueError,
     "placements"),
]


@pytest.mark.parametrize("fn,args,kw,exc,match", BAD, ids=[f"{b[0].__name__}-{b[4]}-{i}"
                                                           for i, b in enumerate(BAD)])
def test_bad_input_is_refused_before_any_work(fn, args, kw, exc, match):
    with pytest.raises(exc, match=match):
        fn(_Untouchable(), *args, **kw)


def test_apply_patch_bad_input():
    with pytest.raises(ValueError, match="patch"):
        attacks.apply_patch(X, torch.rand(1, 9, 9))
    with pytest.raises(ValueError, match="channels"):
        attacks.apply_patch(X, torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match="patch"):
        attacks.apply_patch(X, torch.full((1, 2, 2), 2.0))
    with pytest.raises(TypeError, match="models"):
        attacks.transfer_matrix({}, X, Y, attacks.fgsm)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attacks_follow_the_input_device():
    model = _small_cnn().cuda().eval()
    x, y = _batch(4)
    x, y = x.cuda(), y.cuda()
    assert attacks.pgd(model, x, y, 0.1, steps=2).device == x.device
    assert attacks.simba(model, x, y, eps=0.2, max_queries=10).images.device == x.device
    assert attacks.apply_patch(x, torch.rand(1, 3, 3)).device == x.device


# --- an attack's own objective ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ce", "margin"])
def test_pgd_with_a_loss_function_matches_the_named_loss(name):
    model = _small_cnn()
    x, y = _batch(n=8)

    def own(logits, labels):
        return attacks.attack_loss(logits, labels, name, reduction="none")

    for targeted in (False, True):
        kw = {"steps": 4, "targeted": targeted, "restarts": 2}
        named = attacks.pgd(model, x, y, 0.1, loss=name, generator=torch.Generator().manual_seed(3), **kw)
        mine = attacks.pgd(model, x, y, 0.1, loss=own, generator=torch.Generator().manual_seed(3), **kw)
        torch.testing.assert_close(mine, named, atol=0, rtol=0)


def test_pgd_with_a_loss_function_descends_it_when_targeted():
    model = _small_cnn()
    x, y = _batch(n=16)
    model.eval()

    def entropy(logits, labels):  # labels unused: a label-free objective
        return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)

    with torch.no_grad():
        before = entropy(model(x), y)
        up = entropy(model(attacks.pgd(model, x, y, 0.2, steps=10, loss=entropy,
                                       generator=torch.Generator().manual_seed(0))), y)
        down = entropy(model(attacks.pgd(model, x, y, 0.2, steps=10, loss=entropy, targeted=True,
                                         generator=torch.Generator().manual_seed(0))), y)
    assert (up > before).float().mean() > 0.9 and (down < before).float().mean() > 0.9


def test_a_loss_function_must_give_one_value_per_image():
    model = _small_cnn()
    x, y = _batch(n=4)
    with pytest.raises(ValueError, match="one value per image"):
        attacks.pgd(model, x, y, 0.1, loss=lambda z, t: z.sum())
    with pytest.raises(ValueError, match="loss must be one of"):
        attacks.pgd(model, x, y, 0.1, loss="hinge")
