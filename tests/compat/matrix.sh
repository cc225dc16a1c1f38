#!/usr/bin/env bash
# Compatibility matrix: run the whole test suite inside minimal Debian chroots, one per suite.
#
#   sudo tests/compat/matrix.sh [bullseye|trixie|sid|experimental|all ...] [--rebuild] [--shell] [-- ARGS...]
#
#   bullseye      gdb 10, Python 3.9, glibc 2.31
#   trixie        gdb 16, Python 3.13, glibc 2.41
#   sid           gdb 18, Python 3.14, glibc 2.43
#   experimental  sid with experimental's glibc (2.44)
#   all           all four (the default)
#   --rebuild  make the chroots again from scratch instead of reusing the cached ones
#   --shell    instead of the tests, a shell in the chroot, set up as for the tests (for
#              looking into a failure); with `-- COMMAND ARGS...`, run that command in /src
#   -- ARGS    passed to pytest inside each chroot (e.g. -- -x -k vmmap)
#
# Needs root (debootstrap, chroot, mount) on a Debian-like host; installs debootstrap with apt
# when it is missing. Each chroot is made once with debootstrap and cached in
# $GDBEXT_COMPAT_CACHE/<suite> (default /var/cache/gdbext-compat); a stamp file marks it complete,
# so an interrupted debootstrap is redone, never reused. The Debian mirror is the one this host's
# apt uses (override with GDBEXT_COMPAT_MIRROR).
#
# Each run happens in a private mount and PID namespace (unshare): /proc, /dev, a fresh /tmp and
# the repository at /src are mounted there, and the trap unmounts them on exit, on failure and on
# Ctrl-C (and the namespace drops whatever is left when it ends, with any process still running).
# The repository is mounted through an overlay: the chroot reads the working tree as it is, with
# uncommitted changes, and everything it writes (the demo builds, cores, caches) goes to a scratch
# directory that is thrown away, so the working tree and its demo_c/build are never touched.
# The scratch directory is on disk, in $GDBEXT_COMPAT_CACHE (a run's /tmp holds gcore files of
# 100-200 MB each, kept by pytest for the whole run: gigabytes, more than a tmpfs in memory may
# hold); it is made before each suite's run and removed after it, also on failure and Ctrl-C.
# The suite runs with the chroot's own python3, pytest, pexpect, pygments and hypothesis (the
# Debian packages, no virtualenv): `python3 -m pytest -q -n 2 tests -p no:cacheprovider`, two gdbs
# at a time (GDBEXT_COMPAT_JOBS=N for another number).
#
# What a chroot adds is its gdb, its Python and its own glibc as the host's: every test runs
# there, but the demos run under the chroot's glibc only (GDBEXT_TEST_GLIBCS=host), not again
# under the other glibcs of tests/glibcs.py: the host's own run of the suite (.ci/run) runs them
# under all five, and repeating that in four chroots multiplied the matrix's time for little
# (the heap model's answers depend on the glibc, not on the gdb that reads the memory).
# GDBEXT_COMPAT_GLIBCS=all (or a list such as 2.31,2.43) runs them all in the chroots too.
#
# Time on a 2-core machine: each chroot is made once (debootstrap and packages, about a minute)
# and cached; a suite's run is the rest (the README's Tests section has the figures). The suites
# run one after another, each with two gdbs at a time, which already keeps both cores busy.
# experimental is sid with another glibc only: .ci/run passes it `-- --ignore=...` for the tests
# that do not depend on the glibc (unit tests, install, gdb's command line), which sid ran.
#
# Exit status: 0 when every suite passed, 1 when a suite failed, 2 on a usage error or when a
# chroot could not be made.
# shellcheck disable=SC2317,SC2016  # functions run from traps; sh and perl code in single quotes
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$self")/../.." && pwd)
cache=${GDBEXT_COMPAT_CACHE:-/var/cache/gdbext-compat}
run_timeout=${GDBEXT_COMPAT_TIMEOUT:-3600}  # seconds for one suite's pytest run
packages=gdb,gdbserver,gcc,make,libc6-dev,libc6-dbg,python3,python3-pexpect,python3-pytest,python3-pytest-xdist,python3-pygments,python3-hypothesis,procps,musl-tools,libjemalloc2
# Left over from the host (its demo builds, its virtualenv, its caches): hidden under an empty
# tmpfs inside the chroot, so the chroot builds and caches its own.
hide_dirs=(demo_c/build .venv .hypothesis .pytest_cache benchmarks/out build)
# The tests' own download cache (tests/.cache: other glibcs, ...) is kept per chroot, in the
# chroot at this path, and mounted over /src/tests/.cache, so a run does not fetch it again.
test_cache=/var/cache/gdbext-tests
chroot_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "compat: $*"; }
die() { echo "compat: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# What runs inside the private namespace (the script calls itself through unshare).
mounted=()
cleanup() {  # the trap: unmount what mnt mounted, newest first
  local rc=$? i
  trap - EXIT
  trap '' INT TERM  # a second Ctrl-C must not stop the unmounting
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[i]}" 2>/dev/null || umount -R -l "${mounted[i]}" 2>/dev/null \
      || echo "compat: could not unmount ${mounted[i]}" >&2
  done
  exit "$rc"
}
mnt() {  # mnt MOUNT-ARGS... TARGET: mount and remember TARGET for the trap
  mount "$@"
  mounted+=("${!#}")
}
wait_for() {  # wait_for PID: its exit status, even when a trapped signal interrupts the wait
  local rc=0
  wait "$1" || rc=$?
  while kill -0 "$1" 2>/dev/null; do rc=0; wait "$1" || rc=$?; done
  return "$rc"
}
job=""
forward() {  # forward CMD...: run it in the background, passing INT and TERM on to it as TERM
  local rc stop=""
  trap 'stop=130; [ -z "$job" ] || kill -TERM "$job" 2>/dev/null' INT
  trap 'stop=143; [ -z "$job" ] || kill -TERM "$job" 2>/dev/null' TERM
  "$@" &
  job=$!
  wait_for "$job" && rc=0 || rc=$?
  job=""
  set_traps
  [ -z "$stop" ] || { echo "compat: interrupted" >&2; exit "$stop"; }
  return "$rc"
}
set_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Inside the private namespace: debootstrap a minimal system, then let apt (whose resolver,
# unlike debootstrap's, follows virtual packages such as bullseye's libboost-regex for gdb)
# install the packages. Called as `matrix.sh --provision SUITE DIR MIRROR`.
# experimental is not a whole release: its chroot is sid with experimental's glibc pinned above
# sid's. sid's (and so experimental's) Release may carry an expired Valid-Until on a snapshot
# mirror: apt in those chroots is told not to check it.
provision() {
  local suite=$1 dir=$2 mirror=$3 base=$1
  set_traps
  [ "$suite" != experimental ] || base=sid
  forward debootstrap --variant=minbase "$base" "$dir" "$mirror"
  mnt -t proc -o nosuid,nodev,noexec proc "$dir/proc"
  mnt --rbind /dev "$dir/dev"
  if [ "$base" = sid ]; then
    echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99gdbext-valid-until"
  fi
  if [ "$suite" = experimental ]; then
    echo "deb $mirror experimental main" >"$dir/etc/apt/sources.list.d/experimental.list"
    printf 'Package: src:glibc\nPin: release a=experimental\nPin-Priority: 990\n' \
      >"$dir/etc/apt/preferences.d/gdbext-glibc"
  fi
  local env=(env -i HOME=/root "PATH=$chroot_path" LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
  forward chroot "$dir" "${env[@]}" apt-get update -q
  # experimental's glibc replaces the one debootstrap installed before the rest comes
  [ "$suite" != experimental ] || forward chroot "$dir" "${env[@]}" apt-get dist-upgrade -y -q
  # shellcheck disable=SC2086  # the package list, split on purpose
  forward chroot "$dir" "${env[@]}" apt-get install -y -q --no-install-recommends ${packages//,/ }
  chroot "$dir" "${env[@]}" apt-get clean
  rm -rf "$dir/var/lib/apt/lists/"*
}

# Mount, run the suite (or a shell) in the chroot, unmount. SCRATCH is an empty directory on
# disk that the caller made and removes: the overlay's upper layer, /tmp and the hidden dirs.
# Called as `matrix.sh --inside DIR SCRATCH tests|shell [ARGS...]`.
inside() {
  local dir=$1 scratch=$2 mode=$3; shift 3
  set_traps
  mkdir "$scratch/upper" "$scratch/work" "$scratch/tmp" "$scratch/hide"
  chmod 1777 "$scratch/tmp"
  mnt -t proc -o nosuid,nodev,noexec proc "$dir/proc"
  mnt --rbind /dev "$dir/dev"  # /dev/null, /dev/ptmx and /dev/pts for pexpect's terminals
  mnt --bind "$scratch/tmp" "$dir/tmp"
  mkdir -p "$dir/src"
  case "$repo" in
    *[,:]*) die "the repository path $repo holds ',' or ':', which an overlay mount cannot take" ;;
  esac
  mnt -t overlay gdbext-src -o "lowerdir=$repo,upperdir=$scratch/upper,workdir=$scratch/work" "$dir/src"
  local d i=0
  for d in "${hide_dirs[@]}"; do
    if [ -d "$dir/src/$d" ]; then
      i=$((i + 1))
      mkdir -m 0755 "$scratch/hide/$i"
      mnt --bind "$scratch/hide/$i" "$dir/src/$d"
    fi
  done
  mkdir -p "$dir$test_cache" "$dir/src/tests/.cache"
  mnt --bind "$dir$test_cache" "$dir/src/tests/.cache"

  local env=(env -i HOME=/root "PATH=$chroot_path" LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1)
  [ -z "${GDBEXT_TEST_TIMEOUT:-}" ] || env+=("GDBEXT_TEST_TIMEOUT=$GDBEXT_TEST_TIMEOUT")
  [ -z "${GDBEXT_COMPAT_JOBS:-}" ] || env+=("GDBEXT_COMPAT_JOBS=$GDBEXT_COMPAT_JOBS")
  case "${GDBEXT_COMPAT_GLIBCS:-host}" in
    all) ;;
    *) env+=("GDBEXT_TEST_GLIBCS=${GDBEXT_COMPAT_GLIBCS:-host}") ;;
  esac
  if [ "$mode" = shell ]; then
    if [ $# -gt 0 ]; then
      chroot "$dir" "${env[@]}" /bin/sh -c 'cd /src && exec "$@"' sh "$@"
    else
      say "a shell in the chroot (the repository is at /src, changes there are thrown away); exit to unmount"
      chroot "$dir" "${env[@]}" TERM="${TERM:-dumb}" /bin/sh -c 'cd /src && exec /bin/bash -i'
    fi
    return
  fi
  chroot "$dir" "${env[@]}" /bin/sh -c '
    gdbv=$(gdb --version | head -n1 | sed "s/.* //")
    gdbpy=$(gdb -nx -batch -ex "python import sys; print(\"%d.%d.%d\" % sys.version_info[:3])" 2>/dev/null)
    libc=$(getconf GNU_LIBC_VERSION | sed "s/.* //")
    echo "compat: versions: gdb $gdbv, gdb Python $gdbpy, python3 $(python3 -c "import platform; print(platform.python_version())"), glibc $libc, pytest $(python3 -c "import pytest; print(pytest.__version__)")"'
  local rc=0
  forward timeout --kill-after=30 "$run_timeout" chroot "$dir" "${env[@]}" /bin/sh -c \
    'cd /src && exec python3 -m pytest -q -n "${GDBEXT_COMPAT_JOBS:-2}" tests -p no:cacheprovider "$@"' pytest "$@" || rc=$?
  [ "$rc" != 124 ] || echo "compat: the suite did not finish in ${run_timeout} s (GDBEXT_COMPAT_TIMEOUT)" >&2
  return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Outside: the mirror, the cached chroots, one namespace per suite, the summary.

mirror_uri() {  # the Debian mirror this host's apt already uses, for the other suites
  local f uri
  if [ -n "${GDBEXT_COMPAT_MIRROR:-}" ]; then echo "$GDBEXT_COMPAT_MIRROR"; return; fi
  for f in /etc/apt/sources.list.d/*.sources; do  # deb822: first "deb" stanza not *-security
    [ -f "$f" ] || continue
    uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; deb = 0; sec = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/ && $i ~ /[ \t]deb([ \t]|$)/) deb = 1
          if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
          if ($i ~ /^Suites:/ && $i ~ /-security/) sec = 1
        }
        if (deb && !sec && uri != "") { print uri; exit } }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return; fi
  done
  # one-line format: deb [options] URI SUITE COMPONENTS...
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" && $0 !~ /-security/ {
        for (i = 2; i <= NF; i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; continue } print $i; exit } }' \
    | head -n1
}

scratch=""
remove_scratch() {  # the run's scratch directory, once its namespace (and every mount) is gone
  [ -n "$scratch" ] || return 0
  rm -rf --one-file-system "$scratch" || echo "compat: could not remove $scratch" >&2
  scratch=""
}

mounts_under() {  # the mount points at or below $1 in this namespace
  findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1 || $0 == d'
}

chroot_ready() {  # chroot_ready SUITE DIR: a complete chroot, made for these packages, is cached
  local stamp="$2/.gdbext-compat-complete"
  [ "$rebuild" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "suite=$1 mirror=$mirror packages=$packages" ]
}

ensure_chroot() {  # ensure_chroot SUITE DIR: build it unless a complete one is cached
  local suite=$1 dir=$2 log
  chroot_ready "$suite" "$dir" && return 0
  if [ -n "$(mounts_under "$dir")" ]; then
    echo "compat: $dir has mounts under it; unmount them first:" >&2
    mounts_under "$dir" >&2
    return 2
  fi
  say "$suite: debootstrap from $mirror into $dir (once; cached afterwards)"
  rm -rf --one-file-system "$dir" || return 2
  log="$cache/$suite.debootstrap.log"
  if ! run_isolated --provision "$suite" "$dir" "$mirror" >"$log" 2>&1; then
    [ -n "$stop" ] || tail -n 20 "$log" >&2
    echo "compat: $suite: making the chroot failed (full log: $log)" >&2
    return 2
  fi
  mkdir -p "$dir/src" && echo "suite=$suite mirror=$mirror packages=$packages" >"$dir/.gdbext-compat-complete"
}

lock() {  # lock -s|-x: the suite's lock on fd 9 (shared to run, exclusive to build)
  flock -n "$1" 9 && return
  say "$suite: waiting for another run of this suite"
  flock "$1" 9
}

end_leftovers() {  # without a PID namespace: end the processes still running in the chroot DIR
  local dir=$1 p root
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    if [ "$root" = "$dir" ]; then
      say "ending leftover process ${p#/proc/} in $dir"
      kill -KILL "${p#/proc/}" 2>/dev/null || true
    fi
  done
}

# The script itself in a private namespace, in the background so that INT and TERM reach the
# trap at once (unshare --fork ignores them while it waits), which passes them on. `reset`
# undoes the SIGINT that bash ignores in background jobs, so the inner trap sees Ctrl-C.
run_isolated() {  # run_isolated --inside|--provision ARGS...
  if [ "$mode" = shell ] && [ "$1" = --inside ]; then  # in the foreground: it owns the terminal
    "${isolate[@]}" "$self" "$@"
    return
  fi
  "${isolate[@]}" "${reset[@]}" "$self" "$@" &
  child=$!
  local rc=0
  wait_for "$child" || rc=$?
  child=""
  return "$rc"
}
pass_on() {  # the outer trap: remember the signal, send TERM to the inner script
  stop=$1
  [ -n "$child" ] || return 0
  local kids
  kids=$(cat "/proc/$child/task/$child/children" 2>/dev/null || true)
  # shellcheck disable=SC2086  # a list of PIDs
  kill -TERM "$child" $kids 2>/dev/null || true
}

main() {
  local suites=() pytest_args=() results=() failed=() suite dir rc t0 t1 t2 left status line total_start
  local setup_failed=0
  rebuild=0 mode=tests
  while [ $# -gt 0 ]; do
    case "$1" in
      bullseye|trixie|sid|experimental) suites+=("$1") ;;
      all) suites+=(bullseye trixie sid experimental) ;;
      --rebuild) rebuild=1 ;;
      --shell) mode=shell ;;
      --) shift; pytest_args=("$@"); break ;;
      -h|--help) sed -n '2,14p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
  done
  [ ${#suites[@]} -gt 0 ] || suites=(bullseye trixie sid experimental)
  # shellcheck disable=SC2207  # suite names have no spaces
  suites=($(printf '%s\n' "${suites[@]}" | awk '!seen[$0]++'))  # each once, in order
  [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount); run it with sudo"

  mirror=$(mirror_uri)
  case "$mirror" in
    */debian|*/debian/) ;;
    "") die "found no Debian mirror in this host's apt sources; set GDBEXT_COMPAT_MIRROR to one (its URI ends in /debian)" ;;
    *) die "the mirror $mirror does not look like a Debian archive (its URI ends in /debian); set GDBEXT_COMPAT_MIRROR to one" ;;
  esac
  local tool
  for tool in debootstrap unshare chroot findmnt flock timeout; do
    command -v "$tool" >/dev/null && continue
    if [ "$tool" = debootstrap ] && command -v apt-get >/dev/null; then
      say "installing debootstrap with apt"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    else
      die "$tool is missing (debootstrap: apt-get install debootstrap; the rest: util-linux, coreutils)"
    fi
  done
  mkdir -p "$cache"

  # A private mount and PID namespace when the kernel allows one (mounts and processes vanish
  # with it); otherwise the trap alone unmounts and leftover processes are ended by PID.
  if unshare --mount --pid --fork --propagation private true 2>/dev/null; then
    isolate=(unshare --mount --pid --fork --propagation private)
  else
    isolate=()
    say "note: no private namespace here; relying on the trap to unmount"
  fi
  reset=()
  if command -v perl >/dev/null; then  # perl-base is Essential on Debian
    reset=(perl -e '$SIG{INT} = $SIG{TERM} = "DEFAULT"; exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n"')
  fi
  child="" stop=""
  trap 'remove_scratch' EXIT
  trap 'pass_on 130' INT
  trap 'pass_on 143' TERM

  total_start=$(date +%s)
  for suite in "${suites[@]}"; do
    dir="$cache/$suite"
    rc=0
    # Runs of a suite share its lock; making (or remaking) its chroot takes it alone.
    exec 9>"$cache/$suite.lock"
    t0=$(date +%s)
    lock -s
    if ! chroot_ready "$suite" "$dir"; then
      lock -x
      ensure_chroot "$suite" "$dir" || { rc=$?; setup_failed=1; }
      lock -s
    fi
    t1=$(date +%s)
    if [ "$rc" = 0 ]; then
      [ "$mode" = shell ] || say "$suite: running the suite in $dir (set-up $((t1 - t0)) s)"
      scratch=$(mktemp -d "$cache/$suite.run.XXXXXX")
      run_isolated --inside "$dir" "$scratch" "$mode" "${pytest_args[@]}" || rc=$?
      [ ${#isolate[@]} -gt 0 ] || end_leftovers "$dir"
      remove_scratch  # nothing is mounted inside it (it is only ever the source of mounts)
    fi
    t2=$(date +%s)
    exec 9>&-
    left=$(mounts_under "$dir")
    if [ -n "$left" ]; then
      echo "compat: $suite: mounts left behind:" >&2
      echo "$left" >&2
      [ "$rc" != 0 ] || rc=1
    fi
    if [ "$mode" = shell ]; then
      [ "$rc" = 0 ] || failed+=("$suite")
      continue
    fi
    if [ "$rc" = 0 ]; then
      status=passed
    else
      status="FAILED (exit $rc)"
      [ -z "$stop" ] || status=interrupted
      failed+=("$suite")
    fi
    line="$suite $status: set-up $((t1 - t0)) s, tests $((t2 - t1)) s, chroot $(du -sh --one-file-system "$dir" 2>/dev/null | cut -f1)"
    say "$line"
    results+=("$line")
    [ -z "$stop" ] || break
  done

  if [ "$mode" = shell ]; then
    [ ${#failed[@]} = 0 ]
    return
  fi
  echo
  for line in "${results[@]}"; do say "$line"; done
  if [ -n "$stop" ]; then
    say "interrupted after $(( $(date +%s) - total_start )) s"
    return "$stop"
  fi
  if [ ${#failed[@]} -gt 0 ]; then
    say "${#failed[@]} of ${#suites[@]} suites failed (${failed[*]}) in $(( $(date +%s) - total_start )) s"
    return $((1 + setup_failed))
  fi
  say "all ${#suites[@]} suites passed (${suites[*]}) in $(( $(date +%s) - total_start )) s"
}

# On one line, so bash has read it whole before it runs: editing this file during a run is safe.
case "${1:-}" in --inside) shift; inside "$@" ;; --provision) shift; provision "$@" ;; *) main "$@" ;; esac; exit $?
