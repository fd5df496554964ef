"""The package stands alone: a non-editable install into a fresh virtualenv loads its bundled
BookCrossing data and runs the main job's first step (train Original) from an unrelated folder,
with no environment variable pointing back at the repository.

The install packages the extension module this test environment already compiled
(``IFRU_PREBUILT_EXTENSION``, setup.py): compiling the same sources again took ~5 of ``make
test``'s ~9 minutes on two cores, and ``make install`` has just compiled them from the same
checkout (in CI, a clean clone)."""
from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A new virtualenv with ``ifru_ext`` pip-installed (not editable) from a copy of the sources.

    torch and the other dependencies are the test environment's, reached through a ``.pth``
    file (installing a second torch would cost minutes and gigabytes); ``ifru_ext`` itself
    comes only from the new environment's site-packages.
    """
    root = tmp_path_factory.mktemp("install")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       root, dict(os.environ)).stdout.strip())
    ours = [Path(p) for p in site.getsitepackages()] + [Path(sysconfig.get_paths()["purelib"])]
    (purelib / "dependencies.pth").write_text("\n".join(sorted({str(p) for p in ours if p.is_dir()})) + "\n")
    # Build from a clean copy of the tracked sources, as a user's checkout would be.
    source = root / "source"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPOSITORY, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        if (REPOSITORY / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPOSITORY / name).read_bytes())
    env = {key: value for key, value in os.environ.items() if key not in ("IFRU_DATA_DIR", "PYTHONPATH")}
    install = [str(python), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", str(source)]
    env["IFRU_PREBUILT_EXTENSION"] = str(root / "not-a-module.so")
    refused = subprocess.run(install, cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    assert refused.returncode != 0 and "expected an existing module named '_C." in refused.stdout + refused.stderr
    env["IFRU_PREBUILT_EXTENSION"] = importlib.util.find_spec("ifru_ext._C").origin
    run(install, root, env)
    return venv, env


def test_the_installed_package_finds_its_data_from_another_folder(fresh_install, tmp_path):
    venv, env = fresh_install
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = run([str(venv / "bin" / "python"), "-c",
                 "import ifru_ext; d = ifru_ext.load_dataset('bookcrossing'); "
                 "print(ifru_ext.__file__); print(len(d.train), d.num_users, d.num_items)"], elsewhere, env)
    location, sizes = probe.stdout.strip().splitlines()
    assert str(venv) in location and str(REPOSITORY) not in location
    assert sizes == "351347 15758 37992"  # the paper's Table 2 statistics


def test_the_main_job_first_step_runs_from_another_folder(fresh_install, tmp_path):
    venv, env = fresh_install
    out = run([str(venv / "bin" / "ifru"), "-q", "train", "--model", "mf", "--epochs", "1", "--out", "original"],
              tmp_path, env).stdout
    assert "mf full: best epoch 1 of 1" in out and (tmp_path / "original" / "model.pt").is_file()
