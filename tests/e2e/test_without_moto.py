"""A production install has no moto (it is the `demo` extra): the app, the CLI, the WSGI entry
point and every module of bot/, handlers/ and storage/ (the demo's too) import without it, and
`roleup demo` says how to install it.

Each test runs Python in a subprocess whose path starts with a `moto` package that refuses to
import and notes every attempt, as an install without moto would refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = """\
import os

with open(os.environ["ROLEUP_TEST_MOTO_TRIED"], "a") as tried:
    tried.write("moto\\n")
raise ModuleNotFoundError("No module named 'moto'", name="moto")
"""

IMPORT_EVERYTHING = """\
import importlib, pkgutil, sys

import bot, bot.app, bot.cli, bot.wsgi, handlers, storage

names = ["bot.app", "bot.cli", "bot.wsgi"]
for package in (bot, handlers, storage):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            names.append(module.name)
for name in names:
    importlib.import_module(name)
print(len(names), "modules imported")
"""


@pytest.fixture
def without_moto(tmp_path: Path, repo_root: Path) -> dict[str, str]:
    """The environment of a Python whose `import moto` fails (and is noted in `tried`)."""
    blocked = tmp_path / "blocked" / "moto"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocked.parent), str(repo_root)])
    env["ROLEUP_TEST_MOTO_TRIED"] = str(tmp_path / "tried")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'roleup.db'}"
    return env


def run_python(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        input="quit\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_roleup_demo_without_moto_names_the_install_command(
    without_moto: dict[str, str], tmp_path: Path
) -> None:
    done = run_python(["-m", "bot", "demo"], without_moto, tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "roleup: the demo needs moto, which this install leaves out; "
        "install it with: pip install 'roleup-aws[demo]'"
    ]
    assert done.stdout == ""  # nothing was started
    assert (tmp_path / "tried").read_text() == "moto\n"  # the blocker really stood in its way
    assert not (tmp_path / "roleup.db").exists()


def test_app_cli_wsgi_and_every_module_import_without_moto(
    without_moto: dict[str, str], tmp_path: Path
) -> None:
    done = run_python(["-c", IMPORT_EVERYTHING], without_moto, tmp_path)
    assert done.returncode == 0, done.stderr
    imported = int(done.stdout.split()[0])
    assert imported > 100  # the walk found the modules of bot, handlers and storage
    assert not (tmp_path / "tried").exists(), "a module imported moto at import time"
