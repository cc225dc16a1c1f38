#!/usr/bin/env bash
# A short guided tour: gdb runs each demo to its stop and shows what every gdbext command sees.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/demo_c/build"
loader="$here/gdbext/gdbinit.py"

step() {  # step TITLE PROGRAM ARGS... -- GDB-COMMANDS...
  local title=$1; shift
  local prog=() cmds=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do prog+=("$1"); shift; done
  shift
  for c in "$@"; do cmds+=(-ex "echo \\n(gdb) $c\\n" -ex "$c"); done
  echo
  echo "== $title"
  gdb -nx -batch -iex 'set confirm off' -iex 'set pagination off' -iex 'set width 0' -ex "source $loader" \
      -ex 'break gdbext_stop' -ex 'run >/dev/null' "${cmds[@]}" -ex kill --args "${prog[@]}" 2>&1 \
    | grep -vE '^(Breakpoint 1|\[Thread debugging|Using host libthread_db|\[New Thread|\[Inferior|#1 )' || true
}

step "1. vmmap: the memory map of a program with three threads" "$build/thread_stacks" -- \
  "vmmap" "vmmap --summary" "vmmap &data_global"
