#!/usr/bin/env bash
# Installs gdbext for the Python that gdb embeds, builds the demos, and hooks ~/.gdbinit.
# Safe to run again: every step checks before it acts.
#
#   ./install.sh [--deps] [--no-gdbinit] [--uninstall] [--tour] [--quiet]
#     --deps        install missing system packages with apt (as root), and those the tests use
#     --no-gdbinit  leave ~/.gdbinit alone; print the line to source instead
#     --uninstall   remove exactly the line this script added to ~/.gdbinit, restoring the file
#     --tour        afterwards, run gdb on the demos and show every command's output
#     --quiet       only what you must act on (the line to add, replacements, failures)
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

# edit_gdbinit add|remove PYTHON: adds this clone's source line to ~/.gdbinit (replacing another
# clone's) or removes it. The file is rewritten in place, through a symlink, keeping its mode;
# its last line keeps or lacks its newline as before, so removing gives back the bytes that were
# there before adding (and removes a file that held only the line). Prints what it did, one
# "word<TAB>detail" line each: present, added, replaced, repaired, removed, deleted, absent, other.
edit_gdbinit() {
  "$2" - "$1" "$gdbinit" "$line" <<'PY'
import os
import re
import sys

action, path, line = sys.argv[1], sys.argv[2], os.fsencode(sys.argv[3])
ours = line[len(b"source "):]
# a gdbext source line of any clone: source /some/clone/gdbext/gdbinit.py
gdbext_line = re.compile(rb"^\s*source\s+(\S.*/gdbext/gdbinit\.py)\s*$")
try:
    with open(path, "rb") as f:
        data = f.read()
except FileNotFoundError:
    data = None


def is_ours(text):
    m = gdbext_line.match(text)
    if not m:
        return False
    there = m.group(1)
    return there == ours or os.path.realpath(there) == os.path.realpath(ours)


def glued(text):
    """A line the install.sh before this one glued to a last line without a newline."""
    head = text[: -len(line)]
    return (text.endswith(line) and head.strip() != b"" and not head.lstrip().startswith(b"#")
            and not head[-1:].isspace())


def report(word, detail=b""):
    sys.stdout.write(word + "\t" + os.fsdecode(detail) + "\n")


final_newline = data is None or data.endswith(b"\n")
lines = [] if not data else (data[:-1] if final_newline else data).split(b"\n")
if action == "add":
    if any(is_ours(t) for t in lines):
        report("present")
        sys.exit(0)
    out = []
    for i, text in enumerate(lines):
        if glued(text):
            out.append(text[: -len(line)])
            if i == len(lines) - 1:  # it was the file's last line, which had no newline
                final_newline = False
            report("repaired", text[: -len(line)])
        elif gdbext_line.match(text):
            if line not in out:
                out.append(line)
            report("replaced", text.strip())
        else:
            out.append(text)
    if line not in out:
        out.append(line)
        report("added")
else:
    out = []
    for i, text in enumerate(lines):
        if is_ours(text):
            report("removed", text.strip())
        elif glued(text):
            out.append(text[: -len(line)])
            if i == len(lines) - 1:
                final_newline = False
            report("removed", line)
        else:
            if gdbext_line.match(text):
                report("other", text.strip())
            out.append(text)
    if out == lines:
        report("absent")
        sys.exit(0)
    if not out and data == line + b"\n" and not os.path.islink(path):
        os.remove(path)  # install.sh created it
        report("deleted")
        sys.exit(0)
new = b"\n".join(out) + (b"\n" if out and final_newline else b"")
if data is None:
    with open(path, "wb") as f:
        f.write(new)
elif new.startswith(data):  # appending: the bytes already there are never rewritten
    with open(path, "ab") as f:
        f.write(new[len(data):])
else:  # in place: the same file (a symlink's target), its mode and owner
    with open(path, "r+b") as f:
        f.write(new)
        f.truncate()
PY
}

# gdbinit_said: turns edit_gdbinit's report into sentences.
gdbinit_said() {
  local word detail
  while IFS=$'\t' read -r word detail; do
    case "$word" in
      present) say "$gdbinit already sources gdbext from this clone" ;;
      added) say "added to $gdbinit: $line" ;;
      replaced) echo "install.sh: replaced in $gdbinit: '$detail' (another copy of gdbext) with '$line'" ;;
      repaired) echo "install.sh: repaired $gdbinit: an earlier install.sh had glued its line to your last line ('$detail')" ;;
      removed) say "removed the gdbext line from $gdbinit" ;;
      deleted) say "removed $gdbinit: install.sh had created it for the gdbext line alone" ;;
      absent) say "$gdbinit has no line sourcing this clone's gdbext; nothing to remove" ;;
      other) echo "install.sh: $gdbinit still has '$detail', another copy of gdbext; that copy's install.sh --uninstall removes it" ;;
    esac
  done
}

if [ "$uninstall" = 1 ]; then
  if [ ! -e "$gdbinit" ]; then
    say "$gdbinit does not exist; nothing to remove"
    exit 0
  fi
  py=""
  for cand in "$here/.venv/bin/python" python3 python; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; assert sys.version_info >= (3, 5)' 2>/dev/null; then
      py=$cand; break
    fi
  done
  if [ -z "$py" ]; then
    echo "install.sh: no Python to edit $gdbinit with; remove this line from it by hand: $line" >&2
    exit 1
  fi
  edit_gdbinit remove "$py" | gdbinit_said
  exit 0
fi

can_apt() { [ "$deps" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() {  # apt_install PACKAGE...: quietly; the package lists are updated once per run
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq || true
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. System tools: gdb with Python, a C compiler and make, venv for gdb's Python.
missing=()
command -v gdb >/dev/null || missing+=(gdb)
command -v gcc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  if can_apt; then
    say "installing ${missing[*]} with apt"
    apt_install "${missing[@]}"
  else
    echo "install.sh: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or run as root with --deps" >&2
    exit 1
  fi
fi

# Packages only the tests use; each one's tests are skipped (pytest -rs says why) without it:
# libc's debug symbols, gdbserver (remote targets), musl-gcc (a non-glibc malloc), jemalloc.
optional_packages() {  # optional_packages WHAT PACKAGE...: install those dpkg lacks, one by one if need be
  local what=$1 p err
  shift
  local absent=()
  for p in "$@"; do
    case "$(dpkg -s "$p" 2>/dev/null || true)" in *"Status: install ok installed"*) ;; *) absent+=("$p") ;; esac
  done
  [ ${#absent[@]} -gt 0 ] || return 0
  if can_apt; then
    say "installing ${absent[*]} with apt ($what)"
    if ! apt_install "${absent[@]}" 2>/dev/null; then
      for p in "${absent[@]}"; do  # one at a time: a package this distribution lacks stops no other
        if ! err=$(apt_install "$p" 2>&1); then
          echo "install.sh: could not install $p with apt${err:+ (${err##*$'\n'})}; the tests that need it will be skipped" >&2
        fi
      done
    fi
  else
    say "$what also use ${absent[*]} (not installed; those tests are skipped): --deps as root installs them"
  fi
}
if command -v dpkg >/dev/null; then
  # libc6-dbg with this machine's architecture: once libc6-dbg:i386 is installed too (below), a
  # bare name is ambiguous to dpkg -s, which then fails, and apt would reinstall it on every run
  dbg=libc6-dbg
  arch=$(dpkg --print-architecture 2>/dev/null || true)
  [ -z "$arch" ] || dbg="libc6-dbg:$arch"
  optional_packages "for the tests" "$dbg" gdbserver musl-tools libjemalloc2 chromium  # chromium: memreport's browser test
  # i386 inferiors (tests/gdb/test_i386.py): gcc -m32 and i386 libc's debug symbols, from
  # Debian's i386 architecture, which dpkg must know first (then the package lists again).
  if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
    if can_apt && ! dpkg --print-foreign-architectures 2>/dev/null | grep -qx i386; then
      for p in gcc-multilib libc6-dev-i386 libc6-dbg:i386; do
        case "$(dpkg -s "$p" 2>/dev/null || true)" in *"Status: install ok installed"*) ;; *)
          say "adding dpkg's i386 architecture (for the i386 tests)"
          dpkg --add-architecture i386 && apt_updated=0
          break ;;
        esac
      done
    fi
    optional_packages "the i386 tests" gcc-multilib libc6-dev-i386 libc6-dbg:i386
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
  if can_apt; then
    say "installing python$gdb_pyver-venv with apt"
    apt_install "python$gdb_pyver-venv" 2>/dev/null || apt_install python3-venv
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
  edit_gdbinit add "$gdb_python" | gdbinit_said
else
  # Even with --quiet: without this line gdbext is installed but never loaded.
  echo "install.sh: to load gdbext, put this line in your .gdbinit: $line"
fi

if [ "$tour" = 1 ]; then
  exec bash "$here/demo_c/tour.sh"
fi
