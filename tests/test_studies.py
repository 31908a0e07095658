"""Notebook 07's augmentation study: cutout, the recipes, the evaluation and the shipped file."""

import copy
import json
from functools import partial

import pytest
import torch

from advlab import attacks, defenses, studies
from advlab.data import ImageSet
from advlab.models import make_classifier


def _digits(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return ImageSet(torch.rand(n, 1, 28, 28, generator=gen), torch.arange(n) % 10,
                    tuple(str(c) for c in range(10)))


def test_cutout_blacks_out_one_square_of_the_given_size_per_image():
    images = torch.full((50, 1, 28, 28), 0.7)
    out = defenses.cutout(images, 9, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    zero = out[:, 0] == 0
    assert torch.equal(zero.sum((1, 2)), torch.full((50,), 81))
    assert torch.all(out[~(out == 0)] == 0.7)  # the rest untouched
    rows, cols = zero.any(2), zero.any(1)
    assert torch.equal(rows.sum(1), torch.full((50,), 9)) and torch.equal(cols.sum(1), torch.full((50,), 9))
    tops = rows.float().argmax(1)
    assert len(set(tops.tolist())) > 5  # each image its own place
    again = defenses.cutout(images, 9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(defenses.cutout(images, 28)[:, 0], torch.zeros(50, 28, 28))


def test_cutout_rejects_bad_sizes():
    images = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="size"):
        defenses.cutout(images, 29)
    with pytest.raises(ValueError, match="size"):
        defenses.cutout(images, 0)
    with pytest.raises(TypeError, match="size"):
        defenses.cutout(images, 2.5)


def test_recipe_transform_applies_shift_cutout_and_noise_in_order():
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8)
    assert studies.recipe_transform({}, torch.Generator()) is None
    transform = studies.recipe_transform({"max_shift": 2, "cutout": 5, "noise_std": 0.3},
                                         torch.Generator().manual_seed(3))
    got, labels = transform(x, y, None)
    gen = torch.Generator().manual_seed(3)
    expected = defenses.random_shift(x, 2, generator=gen)
    expected = defenses.cutout(expected, 5, generator=gen)
    expected = defenses.gaussian_noise(expected, 0.3, generator=gen)
    assert torch.equal(got, expected) and torch.equal(labels, y)


@pytest.mark.parametrize("recipe", [{"blur": 1}, {"attack": "cw", "eps": 0.1},
                                    {"attack": "fgsm"}, {"attack": "fgsm", "eps": 0.2, "noise_std": 0.1}])
def test_bad_recipes_are_refused(recipe):
    with pytest.raises(ValueError, match="recipe"):
        studies.train_recipe(make_classifier("cnn"), _digits(8), recipe, epochs=1, lr=1e-2,
                             batch_size=8, seed=0)


def test_train_recipe_repeats_exactly_and_matches_adversarial_training():
    data = _digits(64)
    recipe = studies.AUGMENTATION["recipes"]["FGSM adv. training"]
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        net = make_classifier("cnn")
        studies.train_recipe(net, data, recipe, epochs=1, lr=1e-2, batch_size=32, seed=5)
        nets.append(net)
    torch.manual_seed(0)
    reference = make_classifier("cnn")
    attack = partial(attacks.pgd, steps=1, alpha=recipe["alpha"], random_start=True,
                     generator=torch.Generator().manual_seed(5))
    defenses.adversarial_training(reference, data, attack=attack, eps=recipe["eps"], epochs=1,
                                  lr=1e-2, batch_size=32, seed=5, progress=False)
    for a, b, c in zip(nets[0].state_dict().values(), nets[1].state_dict().values(),
                       reference.state_dict().values(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def _small_spec():
    spec = copy.deepcopy(studies.AUGMENTATION)
    spec["budget"]["epochs"] = 1
    spec["seeds"] = [0]
    spec["recipes"] = {k: spec["recipes"][k] for k in ("no augmentation", "cutout 16x16")}
    spec["evaluation"].update(test_digits=20, pgd_eps=[0.0, 0.3], pgd_steps=2)
    spec["evaluation"]["patch"].update(steps=2, placements=1)
    return spec


def test_evaluate_recipe_measures_what_the_spec_says():
    torch.manual_seed(0)
    net = make_classifier("cnn").eval()
    test = _digits(30, seed=1)
    spec = _small_spec()["evaluation"]
    numbers = studies.evaluate_recipe(net, test.images, test.labels, _digits(16, 2).images,
                                      evaluation=spec, seed=0)
    x, y = test.images[:20], test.labels[:20]
    clean = (net(x).argmax(1) == y).float().mean().item()
    assert numbers["clean"] == pytest.approx(clean, abs=1e-4)
    assert numbers["pgd"][0] == pytest.approx(clean, abs=1e-4)  # eps 0 moves nothing
    assert numbers["pgd"][1] <= clean
    assert 0 <= numbers["patch"] <= 1 and 0 <= numbers["fgsm"] <= 1


def test_run_write_and_load_round_trip(tmp_path, monkeypatch):
    spec = _small_spec()
    record = studies.run_augmentation(_digits(64), _digits(30, seed=1), spec=spec, log=None)
    assert list(record["runs"]) == list(spec["recipes"])
    assert [r["seed"] for r in record["runs"]["cutout 16x16"]] == [0]
    path = studies.write_augmentation(record, tmp_path / "s.json")
    monkeypatch.setattr(studies, "AUGMENTATION", spec)
    assert studies.load_augmentation(path) == json.loads(path.read_text())
    changed = copy.deepcopy(spec)
    changed["budget"]["lr"] = 3e-3
    monkeypatch.setattr(studies, "AUGMENTATION", changed)
    with pytest.raises(ValueError, match="another spec"):
        studies.load_augmentation(path)
    monkeypatch.setattr(studies, "AUGMENTATION", spec)
    broken = json.loads(path.read_text())
    broken["runs"]["cutout 16x16"] = []
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="lacks a run"):
        studies.load_augmentation(path)
    with pytest.raises(ValueError, match="recipes"):
        studies.run_augmentation(_digits(8), _digits(8), recipes=["blur"], spec=spec)
    with pytest.raises(ValueError, match="record"):
        studies.write_augmentation({"runs": {}}, tmp_path / "t.json")


def test_the_shipped_study_matches_the_registry_and_holds_sane_numbers():
    record = studies.load_augmentation()
    spec = studies.AUGMENTATION
    assert list(record["runs"]) == list(spec["recipes"])
    for name, runs in record["runs"].items():
        assert [r["seed"] for r in runs] == spec["seeds"]
        for run in runs:
            assert len(run["pgd"]) == len(spec["evaluation"]["pgd_eps"])
            assert all(0 <= v <= 1 for v in [run["clean"], run["fgsm"], run["patch"], *run["pgd"]])
            assert run["clean"] >= 0.85, f"{name}, seed {run['seed']}: clean {run['clean']}"
            # PGD accuracy can only fall as the radius grows, up to the attack's own noise
            pgd = run["pgd"]
            assert all(b <= a + 0.02 for a, b in zip(pgd, pgd[1:], strict=False)), (name, pgd)
