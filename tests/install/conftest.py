"""install.sh runs here with HOME in a temporary directory: never the real ~/.gdbinit."""

import os
import subprocess

import pytest

from tests.harness import LOADER, ROOT

INSTALL = os.path.join(ROOT, "install.sh")
LINE = f"source {LOADER}"


def _installed() -> bool:
    """Whether install.sh has already made this clone's virtualenv, so running it again reaches
    neither pip nor the network (the compatibility chroots run the suite without one)."""
    stamp = os.path.join(ROOT, ".venv", ".gdbext-installed")
    return os.path.exists(stamp) and \
        os.path.getmtime(stamp) >= os.path.getmtime(os.path.join(ROOT, "pyproject.toml"))


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def install(demos, home):
    """install(*args, env=None, check=True) -> CompletedProcess of install.sh with HOME=home.
    The demos are built first, so install.sh's own `make` finds nothing to do."""
    if not _installed():
        pytest.skip("install.sh has not made this clone's .venv; running it would use pip")

    def run(*args, env=None, check=True):
        e = dict(os.environ, HOME=str(home), **(env or {}))
        p = subprocess.run(["bash", INSTALL, *args], env=e, capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, (p.stdout, p.stderr)
        return p

    return run
