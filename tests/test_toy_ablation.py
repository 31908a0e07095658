"""Notebook 10's ablation and its tuning runs as shipped data: their plans, the files' writer and
readers, the rule that picks a setting, the tool."""

import sys
from pathlib import Path

import pytest
import torch

from advlab import metrics
from advlab.data import toy_2d_modes
from advlab.gan.toy import (
    ABLATION,
    CONSTANT_LR,
    TUNING,
    ablation_configurations,
    ablation_jobs,
    load_ablation,
    load_tuning,
    pick_setting,
    tuning_candidates,
    tuning_jobs,
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


def test_tuning_candidates_bracket_the_ablation_and_contain_its_configurations():
    for ds in ("ring", "grid"):
        knobs = tuning_candidates(ds)
        assert set(knobs) == {"lr", "noise_std", "combinations"}
        lrs = [job["lr"] for _, job in knobs["lr"].values()]
        assert lrs == TUNING["lr"][ds] and ABLATION["lr"][ds] in lrs
        assert min(lrs) == ABLATION["lr"][ds] / 2 and max(lrs) == ABLATION["lr"][ds] * 2
        stds = [tricks.noise_std for tricks, _ in knobs["noise_std"].values()]
        assert stds == TUNING["noise_std"][ds] and ABLATION["noise_std"][ds] in stds
        assert all(t.config() == TrickSet().config() for t, _ in knobs["lr"].values())
        configs = ablation_configurations(ds)
        own = [t for t, job in knobs["noise_std"].values() if t.noise_std == ABLATION["noise_std"][ds]]
        assert own[0].config() == configs["instance noise"].config()
        combos = knobs["combinations"]
        assert combos["combination"][0].config() == configs["combination"].config()
        for name, (tricks, job) in combos.items():  # each subset drops exactly one of the three fixes
            assert job == {"lr": ABLATION["lr"][ds]}
            if name != "combination":
                assert len(tricks.enabled()) == 2
                assert set(tricks.enabled()) < set(configs["combination"].enabled())
    jobs = tuning_jobs()
    assert len(jobs) == (3 + 3 + 4 + 3 + 4 + 4) * len(TUNING["seeds"]) == 63  # ring, then grid
    assert not set(TUNING["seeds"]) & set(ABLATION["seeds"]), "tuning seeds must not be reported"
    with pytest.raises(ValueError, match="seeds"):
        tuning_jobs([-2])
    with pytest.raises(ValueError, match="dataset"):
        tuning_candidates("spiral")


def test_pick_setting_follows_the_declared_rule():
    # most modes wins outright when no other candidate is within half a mode
    assert pick_setting({"a": [(20, 0.1), (22, 0.1)], "b": [(19, 0.9), (20, 0.9)]}) == "a"
    # within half a mode of the most, the higher mean high-quality fraction wins
    assert pick_setting({"a": [(20, 0.1), (21, 0.1)], "b": [(20, 0.5), (20, 0.5)]}) == "b"
    assert pick_setting({"x": [(8, 0.55), (8, 0.65)], "y": [(8, 0.7), (8, 0.4)], "z": [(7, 0.9)]}) == "x"
    with pytest.raises(ValueError, match="results"):
        pick_setting({})
    with pytest.raises(ValueError, match="results"):
        pick_setting({"a": []})


def fake_tuning_record(ds, name, seed):
    tricks, job = {n: c for knob in tuning_candidates(ds).values() for n, c in knob.items()}[name]
    return {"samples": torch.randn(20, 2, generator=torch.Generator().manual_seed(seed)),
            "cpu_seconds": 2.0,
            "config": {"tricks": tricks.config(), "steps": ABLATION["steps"][ds], "lr": job["lr"],
                       "decay_from": 0.5}}


def test_tuning_file_round_trip_and_refusals(tmp_path):
    spec = {**TUNING, "ablation": ABLATION}
    keys = [("ring", "vanilla, lr 0.008", 100), ("grid", "noise + virtual batch norm", 102)]
    path = write_ablation(tmp_path / "t.pt", {k: fake_tuning_record(*k) for k in keys}, spec=spec)
    assert set(load_tuning(path)["runs"]) == set(keys)
    with pytest.raises(ValueError, match="other settings"):  # the ablation's settings moved
        load_tuning(write_ablation(tmp_path / "o.pt", {}, spec={**TUNING, "ablation": {**ABLATION, "lr": {}}}))
    wrong = fake_tuning_record("ring", "vanilla, lr 0.008", 100)
    wrong["config"]["lr"] = 4e-3  # a run at another learning rate than its name says
    with pytest.raises(ValueError, match="not a candidate"):
        load_tuning(write_ablation(tmp_path / "w.pt", {("ring", "vanilla, lr 0.008", 100): wrong}, spec=spec))


def test_the_shipped_tuning_runs_match_their_plan_and_the_rule_picks_the_ablations_settings():
    runs = load_tuning()["runs"]
    assert set(runs) == {key for key, _ in tuning_jobs()}
    for ds in ("ring", "grid"):
        centers, std = toy_2d_modes(ds)
        picks = {}
        for knob, candidates in tuning_candidates(ds).items():
            results = {}
            for name in candidates:
                cover = [metrics.mode_coverage(runs[ds, name, s]["samples"], centers, std)
                         for s in TUNING["seeds"]]
                results[name] = [(c.modes_covered, c.high_quality) for c in cover]
            picks[knob] = pick_setting(results)
        assert picks["lr"] == f"vanilla, lr {ABLATION['lr'][ds]:g}", (ds, picks)
        assert picks["noise_std"] == f"instance noise, σ0 {ABLATION['noise_std'][ds]:g}", (ds, picks)
