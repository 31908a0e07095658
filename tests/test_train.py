import pytest
import torch
from _support import blobs
from torch import nn

from advlab import models, train


def _blobs(n=400, seed=0):
    return blobs(n, seed, classes=2)


def test_fit_learns_a_separable_problem_and_is_deterministic():
    x, y = _blobs()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = models.MLP(in_features=16, hidden=(16,), classes=2)
        hist = train.fit(model, (x, y), 5, lr=1e-2, batch_size=32, progress=False)
        results.append((hist["loss"], train.evaluate(model, (x, y))))
    assert results[0][0] == results[1][0]
    assert results[0][0][-1] < results[0][0][0]
    assert results[0][1] >= 0.98
    assert not model.training


def test_batch_transform_sees_every_batch():
    x, y = _blobs(100)
    seen = []

    def transform(xb, yb, model):
        seen.append(len(xb))
        return xb, yb

    train.fit(models.Linear(16, 2), (x, y), 2, batch_size=32, batch_transform=transform,
              progress=False)
    assert sum(seen) == 200


def test_predict_restores_mode():
    model = models.CNN()
    model.train()
    logits = train.predict(model, torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10) and model.training


@pytest.mark.parametrize("kw,match", [({"epochs": 0}, "epochs"), ({"epochs": 1, "lr": 0}, "lr"),
                                      ({"epochs": 1, "schedule": "cosine"}, "schedule")])
def test_fit_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        train.fit(models.Linear(16, 2), _blobs(10), **kw)


def test_make_classifier():
    assert models.make_classifier("mlp", hidden=(8,)).head.in_features == 8
    with pytest.raises(ValueError, match="arch"):
        models.make_classifier("resnet")
    with pytest.raises(ValueError, match="image_size"):
        models.CNN(image_size=30)


def test_cnn_shapes_for_cifar():
    model = models.CNN(in_channels=3, image_size=32)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model.features(torch.rand(2, 3, 32, 32)).shape == (2, 100)


def test_cnn_channels_last_layout_computes_the_default_layouts_function():
    torch.manual_seed(0)
    model = models.CNN()
    conv = model.body[3].weight  # the second convolution: 16 input channels, so the layouts differ
    assert conv.shape == (32, 16, 5, 5) and conv.is_contiguous(memory_format=torch.channels_last)
    plain = models.CNN()
    plain.load_state_dict({k: v.contiguous() for k, v in model.state_dict().items()})
    assert plain.body[3].weight.is_contiguous(memory_format=torch.channels_last)  # kept on load
    plain.to(memory_format=torch.contiguous_format)
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    out = model(x)
    reference = plain.head(plain.body(x.detach().contiguous()))  # the default layout throughout
    assert torch.allclose(out, reference, rtol=1e-5, atol=1e-5)
    (grad,) = torch.autograd.grad(out.logsumexp(1).sum(), x)
    assert grad.is_contiguous() or grad.is_contiguous(memory_format=torch.channels_last)
    xr = x.detach().clone().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad(plain.head(plain.body(xr)).logsumexp(1).sum(), xr)
    assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-7)
    assert list(model.state_dict()) == list(plain.state_dict())


def test_cnn_pooling_before_relu_is_conv_relu_pool_bit_for_bit():
    torch.manual_seed(0)
    model = models.CNN(dropout=0.0)
    reference = models.CNN(dropout=0.0)
    layers = list(reference.body)
    assert [type(m) for m in layers[:6]] == [nn.Conv2d, nn.MaxPool2d, nn.ReLU] * 2
    layers[1], layers[2], layers[4], layers[5] = layers[2], layers[1], layers[5], layers[4]
    reference.body = nn.Sequential(*layers)  # the textbook order: conv, ReLU, max-pool
    reference.load_state_dict(model.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(32, 1, 28, 28, generator=gen) * 2 - 0.5  # negative inputs too: all-negative windows
    x[:4, :, :8, :8] = -1.0  # ties among negative pre-activations
    grads = []
    for net in (model, reference):
        xi = x.clone().requires_grad_(True)
        out = net(xi)
        grads.append((out, torch.autograd.grad(out.logsumexp(1).sum(), xi)[0]))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    for net in (model, reference):  # and training: the same weights after the same updates
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        step_gen = torch.Generator().manual_seed(2)
        for _ in range(5):
            xb, yb = torch.rand(16, 1, 28, 28, generator=step_gen), torch.randint(0, 10, (16,), generator=step_gen)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), reference.state_dict().values(),
                                                 strict=True))


def test_course_model_is_cached(tmp_data):
    cfg = train.course_model_config("target", profile="quick")
    assert cfg["arch"] == "cnn" and cfg["data"] == "mnist"
    assert train.course_model_config("target", profile="full")["epochs"] == 2 * cfg["epochs"]
    with pytest.raises(ValueError, match="name"):
        train.course_model_config("resnet")
