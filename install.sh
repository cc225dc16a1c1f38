#!/usr/bin/env bash
# Installs gdbext for the Python that gdb embeds, builds the demos, and hooks ~/.gdbinit.
# Safe to run again: every step checks before it acts.
#
#   ./install.sh [--deps] [--no-gdbinit] [--uninstall] [--tour] [--quiet]
#     --deps        install missing system packages with apt (as root)
#     --no-gdbinit  leave ~/.gdbinit alone; print the line to source instead
#     --uninstall   remove exactly the line this script added to ~/.gdbinit
#     --tour        afterwards, run gdb on a demo and show every command's output
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
loader="$here/gdbext/gdbinit.py"
line="source $loader"
gdbinit="${HOME}/.gdbinit"
deps=0; gdbinit_step=1; uninstall=0; tour=0; quiet=0
for arg in "$@"; do
  case "$arg" in
    --deps) deps=1 ;;
    --no-gdbinit) gdbinit_step=0 ;;
    --uninstall) uninstall=1 ;;
    --tour) tour=1 ;;
    --quiet) quiet=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
say() { [ "$quiet" = 1 ] || echo "install.sh: $*"; }

if [ "$uninstall" = 1 ]; then
  if [ -f "$gdbinit" ] && grep -qxF "$line" "$gdbinit"; then
    grep -vxF "$line" "$gdbinit" > "$gdbinit.tmp" || true
    mv "$gdbinit.tmp" "$gdbinit"
    say "removed the gdbext line from $gdbinit"
  else
    say "$gdbinit has no gdbext line; nothing to remove"
  fi
  exit 0
fi

# 1. System tools: gdb with Python, a C compiler and make, venv for gdb's Python.
missing=()
command -v gdb >/dev/null || missing+=(gdb)
command -v gcc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$deps" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or run as root with --deps" >&2
    exit 1
  fi
fi

# 2. Which Python does gdb embed? Not necessarily the python3 on PATH.
probe=$(gdb -nx -batch -ex 'python import sys; print("GDBPY", sys.base_prefix, "%d.%d" % sys.version_info[:2])' 2>/dev/null | grep '^GDBPY' || true)
if [ -z "$probe" ]; then
  echo "install.sh: this gdb has no Python support; install a gdb built with Python (Debian: gdb)" >&2
  exit 1
fi
read -r _ gdb_prefix gdb_pyver <<<"$probe"
gdb_python=""
for cand in "$gdb_prefix/bin/python$gdb_pyver" "/usr/bin/python$gdb_pyver" "$(command -v "python$gdb_pyver" || true)"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$gdb_pyver'" 2>/dev/null; then
    gdb_python=$cand; break
  fi
done
if [ -z "$gdb_python" ]; then
  echo "install.sh: gdb embeds Python $gdb_pyver but no python$gdb_pyver executable was found" >&2
  exit 1
fi
say "gdb embeds Python $gdb_pyver ($gdb_python)"

# 3. A virtualenv made with that Python, holding gdbext's dependencies (and the test tools).
venv="$here/.venv"
if ! "$gdb_python" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$deps" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing python$gdb_pyver-venv with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$gdb_pyver-venv" >/dev/null \
      || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "install.sh: python$gdb_pyver lacks venv; install python3-venv or run as root with --deps" >&2
    exit 1
  fi
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$gdb_pyver'" 2>/dev/null; then
  say "creating $venv"
  rm -rf "$venv"
  "$gdb_python" -m venv "$venv"
fi
stamp="$venv/.gdbext-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  say "installing gdbext and its dependencies into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[test,dev]" 2> >(grep -v "^WARNING: Location" >&2)
  touch "$stamp"
fi
# Byte-compile now, for gdb's Python: gdb then never compiles gdbext at start-up or at a
# command's first run, even where PYTHONDONTWRITEBYTECODE is set (gdb then writes no .pyc itself).
"$venv/bin/python" -m compileall -q "$here/gdbext" >/dev/null 2>&1 \
  || say "could not byte-compile gdbext (a read-only checkout?); gdb compiles it as it loads it"
if ! gdb -nx -batch -ex "source $loader" -ex 'python import pygments, gdbext.commands' >/dev/null 2>&1; then
  echo "install.sh: gdb could not load gdbext; run: gdb -nx -batch -ex 'source $loader'" >&2
  exit 1
fi

# 4. The demo programs.
make -s -C "$here/demo_c" >/dev/null
say "built the demo programs in demo_c/build"

# 5. ~/.gdbinit.
if [ "$gdbinit_step" = 1 ]; then
  if [ -f "$gdbinit" ] && grep -qxF "$line" "$gdbinit"; then
    say "$gdbinit already sources gdbext"
  else
    echo "$line" >> "$gdbinit"
    say "added to $gdbinit: $line"
  fi
else
  say "to load gdbext, put this line in your .gdbinit: $line"
fi

if [ "$tour" = 1 ]; then
  exec bash "$here/demo_c/tour.sh"
fi
