"""Library homes of helpers the notebooks used to write inline."""

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import advlab  # noqa: E402
from advlab import data, metrics, runtime, viz  # noqa: E402
from advlab.gan.divergence import fit_discriminator  # noqa: E402
from advlab.gan.losses import gradient_penalty  # noqa: E402
from advlab.models import MLPDiscriminator  # noqa: E402


def test_toy_curve_lies_on_its_curve_and_shift_moves_it():
    g = torch.Generator().manual_seed(0)
    x = data.toy_curve(500, generator=g)
    assert x.shape == (500, 2) and x[:, 0].abs().max() <= 1
    torch.testing.assert_close(x[:, 1], 0.5 * torch.sin(3 * x[:, 0]))
    y = data.toy_curve(500, shift=0.3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y - x, torch.tensor([0.0, 0.3]).expand(500, 2))
    noisy = data.toy_curve(2000, noise=0.1, generator=torch.Generator().manual_seed(1))
    resid = noisy[:, 1] - 0.5 * torch.sin(3 * noisy[:, 0])
    assert 0.08 < float(resid.std()) < 0.2
    with pytest.raises(ValueError, match="noise"):
        data.toy_curve(3, noise=-1.0)
    with pytest.raises(TypeError, match="n must be an int"):
        data.toy_curve(2.0)


def test_kl_to_uniform_and_class_histogram():
    assert metrics.kl_to_uniform([5, 5, 5, 5]) == pytest.approx(0.0, abs=1e-15)
    assert metrics.kl_to_uniform([0, 9, 0]) == pytest.approx(math.log(3))
    hist = metrics.class_histogram(torch.tensor([1, 1, 3]), 4)
    assert hist.tolist() == [0, 2, 0, 1]
    q = torch.tensor([2 / 3, 1 / 3])
    assert metrics.kl_to_uniform(hist) == pytest.approx(float((q * (4 * q).log()).sum()))
    with pytest.raises(ValueError, match="labels must lie in"):
        metrics.class_histogram(torch.tensor([4]), 4)
    with pytest.raises(ValueError, match="counts"):
        metrics.kl_to_uniform([0, 0])


def test_mode_coverage_reverse_kl_is_the_histogram_kl():
    centers, std = data.toy_2d_modes("ring")
    x = data.toy_2d("ring", 400, generator=torch.Generator().manual_seed(2))
    cov = metrics.mode_coverage(x, centers, std)
    assert cov.reverse_kl == pytest.approx(metrics.kl_to_uniform(cov.counts))


def test_fit_discriminator_saturates_on_disjoint_supports_and_critic_estimates_w1():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    def real(n, gen):
        return data.toy_curve(n, generator=gen)

    def far(n, gen):
        return data.toy_curve(n, shift=1.0, generator=gen)

    D = MLPDiscriminator((2,), (32, 32))
    seen = []
    history = fit_discriminator(D, real, far, steps=150, lr=3e-3, generator=g,
                                callback=lambda step, net: seen.append(step))
    assert history.shape == (150,) and seen == list(range(151))
    assert history[-20:].mean() < 0.1 < math.log(4) - 0.5 < history[0]  # D separates them
    critic = MLPDiscriminator((2,), (32, 32), negative_slope=0.2)
    fit_discriminator(critic, real, far, steps=200, loss="wasserstein", penalty=gradient_penalty,
                      lr=1e-3, betas=(0.0, 0.9), generator=g)
    with torch.no_grad():
        est = float(critic(real(4000, g)).mean() - critic(far(4000, g)).mean())
    assert 0.5 < est < 1.3  # W1 between the curves is their shift, 1.0
    with pytest.raises(TypeError, match="samplers"):
        fit_discriminator(D, 1, far, steps=1)


def test_scatter_2d_draws_samples_and_centres():
    centers, _ = data.toy_2d_modes("ring")
    ax = viz.scatter_2d(data.toy_2d("ring", 50), centers, title="ring")
    assert len(ax.collections) == 2 and ax.get_title() == "ring"
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.scatter_2d(torch.zeros(4, 3))


def test_threads_setting(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("ADVLAB_THREADS", "1")
        assert advlab.threads() == 1
        monkeypatch.delenv("ADVLAB_THREADS")
        torch.set_num_threads(2)
        assert advlab.threads(small_networks=True) == 1  # the CPU, tiny networks
        assert advlab.threads() == runtime._DEFAULT_THREADS  # back to the process default
        monkeypatch.setenv("ADVLAB_THREADS", "zero")
        with pytest.raises(ValueError, match="ADVLAB_THREADS"):
            advlab.threads()
    finally:
        torch.set_num_threads(before)
