"""advlab as a student gets it from pip: build the wheel, install it outside the checkout, run
notebooks 00 and 14 (which loads the shipped pretrained generators) from a bare folder.

The fresh venv reaches torch and the other third-party packages of the course venv through a
``.pth`` file (no 5 GB reinstall); that only adds the course venv's site-packages to the path, so
its editable ``advlab`` (a ``.pth`` of its own there, which Python does not follow from a path
added this way) stays out, and the test asserts that ``advlab`` is the installed wheel's.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_MB = 15
SHIPPED = [f"{n}{s}" for n in ("mlp_gan", "dcgan", "acgan", "wgan_gp", "wgan_clip")
           for s in (".pt", ".json")] + ["dcgan_snapshots.pt", "ablation_toy.pt", "tuning_toy.pt"]
STUDIES = ["study_augmentation.json"]  # advlab/shipped/: notebook 07's augmentation study
NOTEBOOKS = ["00_setup.ipynb", "14_evaluating_gans.ipynb"]
CELL_TIMEOUT_S = 900

RUNNER = r'''
import json, os, re, sys
import nbformat
from nbclient import NotebookClient
import advlab

result = {"advlab": advlab.__file__, "notebooks": {}}
for name in sys.argv[1:]:
    nb = nbformat.read(name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import advlab\nfrom advlab.gan.pretrained import pretrained_dir\n"
        "print(advlab.__file__)\nprint(pretrained_dir())"))
    client = NotebookClient(nb, timeout=int(os.environ["CELL_TIMEOUT"]), kernel_name="python3",
                            resources={"metadata": {"path": "."}})
    error = None
    try:
        client.execute()
    except Exception as exc:
        error = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(exc))[-2000:]
    lines = "".join(o.get("text", "") for o in nb.cells[-1].outputs).splitlines()
    result["notebooks"][name] = {"error": error, "kernel": lines}
print(json.dumps(result))
'''


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built from a copy of the source tree (the checkout gets no build/ or egg-info)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "data", "notebooks", "*.egg-info", "__pycache__", ".*_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
          "-w", str(tmp / "dist"), str(src)])
    (path,) = (tmp / "dist").glob("advlab-*.whl")
    return path


def test_wheel_is_small_and_ships_the_pretrained_generators(wheel):
    size_mb = wheel.stat().st_size / 1e6
    print(f"{wheel.name}: {size_mb:.1f} MB")
    assert size_mb < MAX_WHEEL_MB, f"{wheel.name} is {size_mb:.1f} MB (limit {MAX_WHEEL_MB} MB)"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for name in SHIPPED:
            member = f"advlab/gan/weights/{name}"
            assert member in names, f"{member} is not in the wheel"
            assert zf.getinfo(member).file_size == (ROOT / "lib" / member).stat().st_size
        for name in STUDIES:
            member = f"advlab/shipped/{name}"
            assert member in names, f"{member} is not in the wheel"
            assert zf.getinfo(member).file_size == (ROOT / "lib" / member).stat().st_size
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.M)
    core = [r for r in requires if "extra ==" not in r]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert len(core) == len(project["dependencies"])
    assert not [r for r in core if r.startswith(("jupyterlab", "nbval", "pytest", "sphinx"))], core
    assert any(r.startswith("jupyterlab") and 'extra == "course"' in r for r in requires)
    assert any(r.startswith("pytest") and 'extra == "dev"' in r for r in requires)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv outside the checkout with the wheel installed (no dependencies: those come
    from the course venv through a .pth file)."""
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                            "['purelib'])"]).strip())
    (purelib / "course_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
          "--no-index", str(wheel)])
    # the kernel nbclient starts must be this venv's Python, whatever kernels the machine has
    _run([str(python), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "python3"])
    return venv


def test_installed_wheel_runs_notebooks_00_and_14_from_a_bare_folder(installed, tmp_path):
    bare, home, data = tmp_path / "bare", tmp_path / "home", tmp_path / "data"
    for folder in (bare, home, data):
        folder.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, bare / name)
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {"PATH": f"{installed / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "HOME": str(home), "ADVLAB_DATA": str(data), "ADVLAB_PROFILE": "quick",
           "ADVLAB_SEED": "0", "ADVLAB_DEVICE": "cpu", "CELL_TIMEOUT": str(CELL_TIMEOUT_S),
           "LANG": "C.UTF-8"}
    out = _run([str(installed / "bin" / "python"), str(tmp_path / "runner.py"), *NOTEBOOKS],
               cwd=bare, env=env, timeout=2 * CELL_TIMEOUT_S)
    result = json.loads(out.strip().splitlines()[-1])
    site_packages = str(installed)
    assert result["advlab"].startswith(site_packages), (
        f"advlab was imported from {result['advlab']}, not from the installed wheel")
    for name in NOTEBOOKS:
        run = result["notebooks"][name]
        assert run["error"] is None, f"{name} failed from the installed wheel:\n{run['error']}"
        advlab_file, weights = run["kernel"]
        assert advlab_file.startswith(site_packages), f"{name}: kernel imported {advlab_file}"
        assert weights.startswith(site_packages) and weights.endswith("advlab/gan/weights")
    assert not list(bare.glob("*.pt")) and not (bare / "data").exists(), (
        "the notebooks wrote into the folder they were opened from")
    assert list((data / "cache").glob("target-*.pt")), "no model cache in ADVLAB_DATA"
