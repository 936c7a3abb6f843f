"""Where the course's shipped files are, however ptm_lib is installed.

`data_dir()` is the folder of the shipped checkpoints listed in ``data/README.md``:

1. ``$PTM_DATA_DIR`` if set (your own copy, or checkpoints you re-created with ``make pretrain``);
2. the repository's ``data/`` next to the package: a source checkout or an editable install
   (``make lab``/``make test``, ``pip install -e .``), so edits to ``data/`` are seen at once;
3. the copy installed with the package by a non-editable install (``pip install .`` or a wheel):
   ``<site-packages>/ptm_lib/_data``. pyproject.toml ships ``data/*`` as package data of
   ``ptm_lib._data`` (``package-dir`` maps that package to ``data/``). Package data, not
   ``[tool.setuptools.data-files]``: setuptools marks data-files as discouraged for wheels, and
   their place (``<prefix>/share/...``) depends on the install scheme (venv, ``--user``,
   ``--prefix``, ``--target``, conda), whereas package data is always next to the code;
4. otherwise a FileNotFoundError that says what to do.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ENV_VAR = "PTM_DATA_DIR"


def source_data_dir() -> Path | None:
    """``<repo>/data`` when ptm_lib is imported from a source checkout (editable install), else None."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "data").is_dir():
        return root / "data"
    return None


def installed_data_dir() -> Path | None:
    """The copy of ``data/`` that a non-editable install puts next to the package, else None."""
    folder = PACKAGE_DIR / "_data"
    return folder if folder.is_dir() else None


def data_dir() -> Path:
    """The folder of the course's shipped checkpoints (see the module docstring for the order)."""
    env = os.environ.get(ENV_VAR)
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"${ENV_VAR} is set to {env!r}, which is not a folder. "
                                    f"Point it at a copy of the course's data/ folder, or unset it.")
        return folder
    for folder in (source_data_dir(), installed_data_dir()):
        if folder is not None:
            return folder
    raise FileNotFoundError(
        f"ptm_lib (imported from {PACKAGE_DIR}) has no data folder: neither a course checkout's data/ "
        f"next to it nor a copy installed with it. Run the course from its folder (`make lab`), install "
        f"it with `pip install -c constraints.txt .` from the course folder, or set ${ENV_VAR} to a "
        f"folder holding the files listed in data/README.md.")
