"""install.sh --deps and what the README says install and the tests fetch (issue 12, item 3).
apt-get, dpkg and id are stand-ins on PATH here: nothing is installed."""

import os
import re

from tests.harness import ROOT

ARCH = os.popen("/usr/bin/dpkg --print-architecture").read().strip()
LIBC_DBG = f"libc6-dbg:{ARCH}"  # named with its architecture: libc6-dbg:i386 may be there too
OPTIONAL = ("gdbserver", "musl-tools", "libjemalloc2", LIBC_DBG)
I386 = ("gcc-multilib", "libc6-dev-i386", "libc6-dbg:i386")  # on amd64, after adding i386

STUBS = {
    # every optional package is missing, and dpkg knows no foreign architecture
    "dpkg": """case "$1" in -s) case "$2" in gdbserver|musl-tools|libjemalloc2|libc6-dbg|libc6-dbg:*|gcc-multilib|libc6-dev-i386|libc6-dbg:i386) exit 1 ;; esac; exec /usr/bin/dpkg "$@" ;;
  --print-foreign-architectures) exit 0 ;;
  --add-architecture) echo "dpkg $*" >> "$APT_LOG"; exit 0 ;;
esac
exec /usr/bin/dpkg "$@"
""",
    # one package is not in this distribution's apt
    "apt-get": """echo "apt-get $*" >> "$APT_LOG"
case " $* " in *" install "*" libjemalloc2 "*) echo "E: Unable to locate package libjemalloc2" >&2; exit 100 ;; esac
exit 0
""",
    "id": """[ "$1" = -u ] && { echo 0; exit 0; }; exec /usr/bin/id "$@"
""",
}


def _stub_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        f = bin_dir / name
        f.write_text("#!/bin/sh\n" + body)
        f.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOG": str(tmp_path / "apt.log")}


def test_deps_installs_the_optional_test_packages_and_goes_on_without_one(install, tmp_path):
    env = _stub_path(tmp_path)
    p = install("--deps", "--no-gdbinit", "--quiet", env=env)
    log = (tmp_path / "apt.log").read_text()
    installs = [line.split()[1:] for line in log.splitlines() if " install " in line]
    asked = {w for args in installs for w in args if not w.startswith("-") and w != "install"}
    assert set(OPTIONAL) <= asked, log
    for pkg in ("gdbserver", "musl-tools", LIBC_DBG):  # each tried without the one apt lacks
        assert any(pkg in args and "libjemalloc2" not in args for args in installs), log
    assert "libjemalloc2" in p.stderr and "skipped" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    if ARCH == "amd64":
        # the i386 tests' packages, after dpkg learnt the architecture and apt its lists
        lines = log.splitlines()
        added = lines.index("dpkg --add-architecture i386")
        assert set(I386) <= asked, log
        assert any("update" in line for line in lines[added:]), log
        first = next(i for i, line in enumerate(lines) if " install " in line and "gcc-multilib" in line)
        assert added < first, log


def test_deps_with_both_architectures_installed_installs_nothing(install, tmp_path):
    """Everything is installed, libc6-dbg for amd64 and i386 both: dpkg -s calls the bare name
    ambiguous (and fails), so install.sh must name the architecture, or apt reinstalls it on
    every run."""
    env = _stub_path(tmp_path)
    (tmp_path / "bin" / "dpkg").write_text("""#!/bin/sh
case "$1" in
  -s) case "$2" in
        libc6-dbg) echo "dpkg-query: error: ambiguous package name 'libc6-dbg'" >&2; exit 2 ;;
        *) echo "Package: $2"; echo "Status: install ok installed"; exit 0 ;;
      esac ;;
  --print-foreign-architectures) echo i386; exit 0 ;;
  --add-architecture) echo "dpkg $*" >> "$APT_LOG"; exit 0 ;;
esac
exec /usr/bin/dpkg "$@"
""")
    install("--deps", "--no-gdbinit", "--quiet", env=env)
    log = tmp_path / "apt.log"
    installs = [line for line in log.read_text().splitlines() if " install " in line] \
        if log.exists() else []
    assert not [line for line in installs if "libc6-dbg" in line], installs


def _readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_readme_says_install_uses_pip_and_the_tests_download_glibcs():
    text = _readme()
    install = text[:text.index("## Commands")]
    assert re.search(r"pip\b.*network|network.*\bpip\b", install, re.S | re.I), install
    assert re.search(r"80 MB", install), install
    for pkg in ("gdbserver", "musl-tools", "libjemalloc2"):
        assert pkg in install, pkg


def test_readme_test_commands_show_skip_reasons():
    commands = [line for line in _readme().splitlines() if "pytest" in line and "-n 2" in line]
    assert commands
    for line in commands:
        assert " -rs " in line, line
