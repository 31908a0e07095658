"""Notebook 10's ablation as shipped data: its plan, the file's writer and reader, the tool."""

import sys
from pathlib import Path

import pytest
import torch

from advlab import metrics
from advlab.data import toy_2d_modes
from advlab.gan.toy import (
    ABLATION,
    CONSTANT_LR,
    ablation_configurations,
    ablation_jobs,
    load_ablation,
    write_ablation,
)
from advlab.gan.tricks import TrickSet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import toy_ablation  # noqa: E402


def test_configurations_are_the_nine_of_the_notebook():
    for ds in ("ring", "grid"):
        configs = ablation_configurations(ds)
        assert len(configs) == 9 and all(isinstance(t, TrickSet) for t in configs.values())
        assert configs["vanilla"].enabled() == ()
        combo = configs["combination"]
        assert combo.instance_noise and combo.feature_matching and combo.fm_adversarial
        assert combo.virtual_batch_norm and not combo.minibatch_discrimination
        assert configs["instance noise"].noise_std == ABLATION["noise_std"][ds]
        assert configs["packing (m = 2)"].pack == 2
    assert ablation_configurations("ring", noise_std=0.7)["combination"].noise_std == 0.7


@pytest.mark.parametrize("kwargs, error", [({"dataset": "moons"}, ValueError),
                                           ({"dataset": "ring", "noise_std": 0}, ValueError),
                                           ({"dataset": "ring", "noise_std": "0.2"}, TypeError)])
def test_configurations_reject_bad_input(kwargs, error):
    with pytest.raises(error, match="dataset|noise_std"):
        ablation_configurations(**kwargs)


def test_jobs_cover_every_configuration_seed_and_the_constant_rate():
    jobs = ablation_jobs()
    keys = [key for key, _ in jobs]
    assert len(keys) == len(set(keys)) == 19 * len(ABLATION["seeds"])
    for (ds, name, seed), (tricks, job_ds, job_seed, steps, settings) in jobs:
        assert (job_ds, job_seed, steps) == (ds, seed, ABLATION["steps"][ds])
        assert settings["lr"] == ABLATION["lr"][ds]
        assert settings.get("decay_from", 0.5) == (1.0 if name == CONSTANT_LR else 0.5)
        assert tricks.config() == ablation_configurations(ds)[name.split(",")[0]].config()
    assert {ds for ds, name, _ in keys if name == CONSTANT_LR} == {"ring"}
    few = ablation_jobs([3], steps={"grid": 7}, names={"vanilla"})
    assert [(k, j[3]) for k, j in few] == [(("ring", "vanilla", 3), 1000), (("grid", "vanilla", 3), 7)]
    with pytest.raises(ValueError, match="seeds"):
        ablation_jobs([-1])


def fake_record(ds, name, seed, n=50):
    tricks = ablation_configurations(ds)[name.split(",")[0]]
    samples = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) * 2
    return {"samples": samples, "cpu_seconds": 1.5,
            "config": {"tricks": tricks.config(), "steps": ABLATION["steps"][ds], "lr": ABLATION["lr"][ds],
                       "decay_from": 1.0 if name == CONSTANT_LR else 0.5}}


def test_write_and_load_round_trip_in_half_precision(tmp_path):
    keys = [("ring", "vanilla", 0), ("grid", "combination", 4), ("ring", CONSTANT_LR, 1)]
    records = {k: fake_record(*k) for k in keys}
    path = write_ablation(tmp_path / "a.pt", records)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file must be renamed into place"
    runs = load_ablation(path)["runs"]
    assert set(runs) == set(keys)
    for k in keys:
        got, want = runs[k]["samples"], records[k]["samples"]
        assert got.dtype == torch.float32 and got.shape == want.shape
        # half precision: relative rounding of at most 2**-11
        assert torch.all((got - want).abs() <= want.abs() * 2**-11 + 1e-7)
        assert runs[k]["cpu_seconds"] == 1.5


def test_load_refuses_a_file_made_with_other_settings_or_tricks(tmp_path):
    records = {("ring", "vanilla", 0): fake_record("ring", "vanilla", 0)}
    other = write_ablation(tmp_path / "other.pt", records, spec={**ABLATION, "seeds": [0]})
    with pytest.raises(ValueError, match="other settings"):
        load_ablation(other)
    wrong = fake_record("ring", "vanilla", 0)
    wrong["config"]["tricks"] = ablation_configurations("ring")["combination"].config()
    bad = write_ablation(tmp_path / "bad.pt", {("ring", "vanilla", 0): wrong})
    with pytest.raises(ValueError, match="other tricks"):
        load_ablation(bad)
    short = fake_record("grid", "vanilla", 0)
    short["config"]["steps"] = 40
    with pytest.raises(ValueError, match="other steps"):
        load_ablation(write_ablation(tmp_path / "short.pt", {("grid", "vanilla", 0): short}))
    with pytest.raises(ValueError, match="dataset, name, seed"):
        write_ablation(tmp_path / "x.pt", {"ring": fake_record("ring", "vanilla", 0)})


def test_the_shipped_ablation_matches_its_plan():
    shipped = load_ablation()
    assert set(shipped["runs"]) == {key for key, _ in ablation_jobs()}
    centers, std = toy_2d_modes("ring")
    for run in shipped["runs"].values():
        assert run["samples"].shape == (ABLATION["settings"]["n_samples"], 2)
        assert torch.isfinite(run["samples"]).all() and run["cpu_seconds"] > 0
    # the runs are GAN samples, not noise: vanilla on the ring covers ring modes in most seeds
    covered = [metrics.mode_coverage(shipped["runs"]["ring", "vanilla", s]["samples"], centers, std)
               .modes_covered for s in ABLATION["seeds"]]
    assert sum(c >= 6 for c in covered) >= len(covered) // 2


def test_the_tool_writes_a_smoke_file_it_marks_as_such(tmp_path, capsys):
    out = tmp_path / "smoke.pt"
    assert toy_ablation.main(["--steps", "3", "--seeds", "0", "--workers", "1", "--out", str(out)]) == 0
    assert "19 runs" in capsys.readouterr().out
    with pytest.raises(ValueError, match="other settings"):
        load_ablation(out)  # a smoke file never passes for the shipped one
    data = torch.load(out, weights_only=True)
    assert len(data["runs"]) == 19 and data["spec"]["smoke"] is True
    with pytest.raises(SystemExit):
        toy_ablation.main(["--steps", "3"])  # a smoke run must name its own file
