"""tools/pretrain_gans.py and the generator checkpoints it ships as package data (advlab/gan/weights)."""

import json
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import advlab.gan
from advlab import checkpoints, metrics
from advlab.gan.pretrained import load_generator, load_snapshots, pretrained_dir, write_run
from advlab.models import to_unit
from advlab.train import course_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import pretrain_gans  # noqa: E402

COMMITTED = ["mlp_gan", "dcgan", "acgan", "wgan_gp", "wgan_clip"]


pytestmark = pytest.mark.usefixtures("one_thread")


def expected_config(name, steps=None):
    run = pretrain_gans.RUNS[name]
    return json.loads(json.dumps({"name": name, "profile": "quick", "data": "mnist", "seed": 0,
                                  **{k: v for k, v in run.items() if k != "steps"},
                                  "steps": steps or run["steps"]}))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Two runs of the script, three steps each (one process: the data is parsed once)."""
    out = tmp_path_factory.mktemp("pretrained")
    assert pretrain_gans.main(["dcgan", "acgan", "--steps", "3", "--out", str(out),
                               "--eval-samples", "100"]) == 0
    return out


def test_script_runs_a_few_steps_and_its_checkpoints_load(smoke_run):
    for name in ("dcgan", "acgan"):
        G, record = load_generator(name, smoke_run)
        assert record["config"] == expected_config(name, steps=3)
        assert record["log"]["step"] == [1, 2, 3] and len(record["log"]["classifier_fid"]) == 3
        assert G(torch.randn(2, G.z_dim)).shape == (2, 1, 28, 28)
    assert len(json.loads((smoke_run / "acgan.json").read_text())["final"]
               ["label_accuracy_per_class"]) == 10
    snaps = checkpoints.load(smoke_run / "dcgan_snapshots.pt")
    assert snaps["steps"] == [1, 2, 3] and snaps["G"][0]["net.0.weight"].dtype == torch.float16
    snapshots = load_snapshots("dcgan", smoke_run)
    assert [step for step, _ in snapshots] == [1, 2, 3]
    for (_, G), state in zip(snapshots, snaps["G"], strict=True):
        assert not G.training and G.net[0].weight.dtype == torch.float32
        assert torch.equal(G.net[0].weight, state["net.0.weight"].float())
    with pytest.raises(FileNotFoundError, match="no snapshots"):
        load_snapshots("acgan", smoke_run)


def test_mismatched_files_are_refused(smoke_run, tmp_path):
    for suffix in (".pt", ".json"):
        shutil.copy(smoke_run / f"acgan{suffix}", tmp_path / f"acgan{suffix}")
    meta = tmp_path / "acgan.json"
    record = json.loads(meta.read_text())
    record["config"]["steps"] = 2
    meta.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="different runs"):
        load_generator("acgan", tmp_path)
    with pytest.raises(FileNotFoundError, match="make pretrained"):
        load_generator("dcgan", tmp_path)
    with pytest.raises(ValueError, match="name"):
        load_generator("../x", tmp_path)
    with pytest.raises(TypeError, match="folder"):
        load_generator("acgan", 3)


def test_writer_refuses_a_record_of_another_run(tmp_path):
    config = {"name": "x", "steps": 1}
    with pytest.raises(ValueError, match="config"):
        write_run(tmp_path, "x", config, {}, {"config": {**config, "steps": 2}})
    with pytest.raises(ValueError, match="name"):
        write_run(tmp_path, "a/b", config, {}, {"config": config})
    assert not list(tmp_path.iterdir())


def test_weights_are_package_data():
    folder = pretrained_dir()
    assert folder == Path(advlab.gan.__file__).parent / "weights"
    shipped = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert shipped == sorted([f"{n}{s}" for n in COMMITTED for s in (".pt", ".json")]
                             + ["dcgan_snapshots.pt"])
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {"weights/*.pt", "weights/*.json"} <= set(declared["package-data"]["advlab.gan"]), (
        "pyproject.toml must declare the weights as package data, or a wheel has none")


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_checkpoints_load_and_match_the_script(name):
    path = pretrained_dir() / f"{name}.pt"
    # All the shipped files together must keep the wheel under 15 MB (tests/test_wheel.py).
    assert path.stat().st_size < 2e6, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    G, record = load_generator(name)
    assert record["config"] == expected_config(name), (
        f"{name}: advlab/gan/weights was made with another config than tools/pretrain_gans.py "
        "has now: run `make pretrained`")
    assert record["log"]["step"][-1] == record["config"]["steps"]


def test_committed_dcgan_reproduces_its_logged_fid():
    G, record = load_generator("dcgan")
    classifier, _ = course_model("target", profile="quick")
    held_out = pretrain_gans._mnist("test")
    z = torch.randn(pretrain_gans.EVAL_SAMPLES, G.z_dim,
                    generator=torch.Generator().manual_seed(record["config"]["seed"] + 1))
    with torch.no_grad():
        fake = to_unit(G(z))
    fid = metrics.classifier_fid(held_out.images, fake, classifier.cpu())
    # The feature extractor is the course's target CNN, retrained from scratch in a fresh
    # checkout; a different CPU thread count changes its float sums, so its features (and the
    # FID) move by about 1 %. A wrong or mismatched checkpoint moves it by tens of points.
    assert fid == pytest.approx(record["final"]["classifier_fid"], rel=0.03)
