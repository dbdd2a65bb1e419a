"""The wheel ``pip install .`` builds holds every module of the package, subpackages included
(``make setup`` installs in editable mode, which would not notice one left out)."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from gesturelab import config

pytestmark = pytest.mark.integration


def test_the_wheel_holds_every_module_of_the_package(tmp_path):
    root = config.REPO_ROOT
    source = tmp_path / "source"
    # a copy, so the build's own build/ and egg-info never land in the repository
    shutil.copytree(
        root / "gesturelab", source / "gesturelab", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "train_with_mlflow.py"):
        shutil.copy2(root / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("gesturelab-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(root).as_posix() for p in (root / "gesturelab").rglob("*.py")}
    assert len(modules) > 40 and any("/datasets/" in m for m in modules)
    missing = sorted(modules - held)
    assert not missing, f"the wheel leaves out {missing}"
    assert "train_with_mlflow.py" in held
    entry = [n for n in held if n.endswith("entry_points.txt")]
    assert (
        entry
        and "gesturelab = gesturelab.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
    )
