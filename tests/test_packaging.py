"""Packaging: one Python minimum everywhere, the wheel ships data/ and every subpackage,
`ptm_lib.paths.data_dir()` finds the data however ptm_lib is installed, conda's pip step installs
exactly the pins, and the licence. The wheel and pip checks take about 15 s together."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ptm_lib import paths

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
MIN_PYTHON = "3.11.5"  # numpy, scipy, ipython pins need 3.11; soupsieve==4.1.3 needs 3.11.5


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def _clean_pip_env() -> dict[str, str]:
    """pip without this machine's pip configuration (config files, PIP_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


# ------------------------------------------------------------------------------- Python version

def test_every_place_says_the_same_python_minimum():
    assert PROJECT["requires-python"] == f">={MIN_PYTHON}"
    for classifier in PROJECT.get("classifiers", []):
        m = re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier)
        assert not m or Version(m.group(1)) >= Version(MIN_PYTHON), classifier
    makefile = (ROOT / "Makefile").read_text()
    assert "sys.version_info >= (3, 11, 5)" in makefile and f"needs Python >= {MIN_PYTHON}" in makefile
    assert "(3, 10)" not in makefile and "3.10" not in makefile
    readme = (ROOT / "README.md").read_text()
    assert f"Python ≥ {MIN_PYTHON}" in readme and "3.10" not in readme
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert conda_python == f"python>={MIN_PYTHON},<3.12"


def test_the_pins_need_python_3_11_5_and_it_is_enough():
    """The reason for the minimum: what the pinned packages declare (their installed metadata)."""
    pins, needs = _pins(), {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"].lower().replace("_", "-")
        if pins.get(name) == dist.version.split("+")[0] and dist.metadata["Requires-Python"]:
            needs[name] = SpecifierSet(dist.metadata["Requires-Python"])
    assert {"numpy", "scipy", "ipython"} <= set(needs), sorted(needs)
    too_new = {n: str(s) for n, s in needs.items() if not s.contains(MIN_PYTHON)}
    assert not too_new, f"pins that need more than Python {MIN_PYTHON}: {too_new}"
    assert not needs["numpy"].contains("3.10.99"), "numpy's pin is why 3.10 is not enough"
    assert not needs["soupsieve"].contains("3.11.4"), "soupsieve's pin is why 3.11.0-3.11.4 are not enough"


def test_makefile_refuses_an_older_python():
    out = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True, check=True)
    check = next(line for line in out.stdout.splitlines() if "sys.version_info" in line)
    code = re.search(r"-c '(.*)'$", check).group(1)
    for old_version in ((3, 10, 14), (3, 11, 2)):  # 3.11.2: Debian 12's python3
        old = subprocess.run([sys.executable, "-c", f"import sys; sys.version_info = {old_version}; " + code],
                             capture_output=True, text=True)
        assert old.returncode != 0 and f"needs Python >= {MIN_PYTHON}" in old.stderr
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_test_extra_has_no_tomli_fallback():
    assert not any(Requirement(r).name == "tomli" for r in PROJECT["optional-dependencies"]["test"])


def test_makefile_can_take_torch_from_another_index():
    out = subprocess.run(["make", "-n", "-B", ".venv/.installed", "TORCH_INDEX=file:///cpu-index"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    torch_line = next(line for line in out.splitlines() if "--index-url file:///cpu-index" in line)
    assert "--no-deps" in torch_line and "grep '^torch==' constraints.txt" in torch_line
    lines = out.splitlines()
    assert lines.index(torch_line) < next(i for i, l in enumerate(lines) if "-c constraints.txt -e" in l)
    plain = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "--index-url" not in plain
    assert SpecifierSet("==" + _pins()["torch"]).contains(_pins()["torch"] + "+cpu"), "a +cpu build satisfies the pin"


def test_readme_first_block_is_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make lab", "make test"]


# ------------------------------------------------------------------------------------- licence

def test_license_file_is_mit_like_pyproject():
    assert PROJECT["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) ptm-course contributors" in text
    assert "WITHOUT WARRANTY OF ANY KIND" in text


# ------------------------------------------------------------------------------ data_dir() logic

def test_data_dir_is_the_checkout_data_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.data_dir() == ROOT / "data"
    assert (paths.data_dir() / "mini_bert.safetensors").is_file()


def test_data_dir_env_var_wins_and_must_be_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.data_dir() == tmp_path
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="PTM_DATA_DIR"):
        paths.data_dir()


def test_data_dir_without_any_data_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    fake_package = tmp_path / "site-packages" / "ptm_lib"
    fake_package.mkdir(parents=True)
    monkeypatch.setattr(paths, "PACKAGE_DIR", fake_package)
    with pytest.raises(FileNotFoundError, match=r"PTM_DATA_DIR.*data/README.md|make lab"):
        paths.data_dir()
    (fake_package / "_data").mkdir()
    assert paths.data_dir() == fake_package / "_data", "a non-editable install's copy"


# ------------------------------------------------------------------------------------ the wheel

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built by setuptools from a copy of the sources (the working tree stays untouched)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("ptm_lib", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(tmp / "dist"), "-q"], capture_output=True, text=True,
                         env=_clean_pip_env(), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return next((tmp / "dist").glob("ptm_lib-*.whl"))


def _shipped_files():
    return sorted(p for p in (ROOT / "data").iterdir() if p.is_file() and not p.name.startswith("."))


def test_wheel_ships_every_data_file_every_subpackage_and_the_licence(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for path in _shipped_files():
            arc = f"ptm_lib/_data/{path.name}"
            assert arc in names, f"{path.name} is missing from the wheel"
            assert hashlib.sha256(z.read(arc)).digest() == hashlib.sha256(path.read_bytes()).digest()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    packages = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".") for p in (ROOT / "ptm_lib").rglob("__init__.py")
                if "__pycache__" not in p.parts}
    missing = sorted(pkg for pkg in packages if f"{pkg.replace('.', '/')}/__init__.py" not in names)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    modules = {str(p.relative_to(ROOT)).replace(os.sep, "/") for p in (ROOT / "ptm_lib").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules <= names, sorted(modules - names)


def test_data_dir_finds_the_copy_installed_from_the_wheel(wheel, tmp_path):
    """Unpack the wheel into a fresh prefix's site-packages (what pip install does for a pure wheel)
    and import ptm_lib from there, from a folder that is not the checkout."""
    site = tmp_path / "prefix" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (paths.ENV_VAR, "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    code = ("import ptm_lib, ptm_lib.paths as p; print(ptm_lib.__file__); print(p.data_dir()); "
            "import ptm_lib.nets, ptm_lib.text, ptm_lib.vision")
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    package_file, found = out.stdout.split()[:2]
    assert Path(package_file).is_relative_to(site), f"imported {package_file}, not the installed copy"
    assert Path(found) == site / "ptm_lib" / "_data"
    for path in _shipped_files():
        assert (Path(found) / path.name).read_bytes() == path.read_bytes()


# ------------------------------------------------------------- environment.yml through conda's pip

def _conda_pip_step(folder: Path, *extra: str, quiet: bool = True) -> subprocess.CompletedProcess:
    """What `conda env create -f <folder>/environment.yml` does with the `pip:` list (conda's
    env/installers/pip.py): write it into a temporary requirements file in the yml's folder and run
    `pip install -U -r <file> --exists-action=b` there. --dry-run --no-index: resolve against the
    packages installed here, download nothing."""
    env_yml = yaml.safe_load((folder / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env_yml["dependencies"] if isinstance(d, dict))
    req = folder / "condaenv.test.requirements.txt"
    req.write_text("\n".join(pip_lines))
    return subprocess.run([sys.executable, "-m", "pip", "install", "-U", "-r", req.name, "--exists-action=b",
                           "--dry-run", "--no-index", "--no-build-isolation", *(["--quiet"] if quiet else []), *extra],
                          cwd=folder, capture_output=True, text=True, env=_clean_pip_env(), timeout=300)


@pytest.fixture
def course_copy(tmp_path) -> Path:
    folder = tmp_path / "ptm-course"
    folder.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md", "LICENSE", "constraints.txt", "environment.yml"):
        shutil.copy2(ROOT / name, folder / name)
    for name in ("ptm_lib", "data"):
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    return folder


def test_environment_yml_pip_step_installs_exactly_the_pins(course_copy):
    env_yml = yaml.safe_load((course_copy / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env_yml["dependencies"] if isinstance(d, dict))
    assert pip_lines[0] == "-c constraints.txt" and pip_lines[-1] == "-e .[dev]"
    out = _conda_pip_step(course_copy, "--report", "report.json")
    assert out.returncode == 0, ("the pip step does not resolve to the pins installed in this .venv "
                                 "(made from constraints.txt):\n" + out.stderr)
    to_install = {i["metadata"]["name"] for i in json.loads((course_copy / "report.json").read_text())["install"]}
    assert to_install == {"ptm_lib"}, f"everything else is already at its pin; pip wants {to_install}"
    # Control: the constraints file is really read, relative to environment.yml's folder.
    # (traitlets is only a transitive dependency: nothing but constraints.txt names it.)
    constraints = course_copy / "constraints.txt"
    constraints.write_text(re.sub(r"(?m)^traitlets==.*$", "traitlets==0.0.1", constraints.read_text()))
    tampered = _conda_pip_step(course_copy, quiet=False)
    report = tampered.stdout + tampered.stderr
    assert tampered.returncode != 0 and "traitlets==0.0.1" in report, report
