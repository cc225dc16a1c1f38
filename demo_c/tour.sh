#!/usr/bin/env bash
# A short guided tour: gdb runs each demo to its stop and shows what every gdbext command sees.
# On a terminal (stdin and stdout both) it pauses between steps: Enter goes on, q ends the tour.
# It ends with what to try next.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/demo_c/build"
loader="$here/gdbext/gdbinit.py"
steps=$(grep -c "^step " "${BASH_SOURCE[0]}")
pause=0
if [ -t 0 ] && [ -t 1 ]; then pause=1; fi

next_steps() {
  echo
  echo "That was the tour. What to try next:"
  if [ -f "${HOME:-}/.gdbinit" ] && grep -qxF "source $loader" "$HOME/.gdbinit" 2>/dev/null; then
    echo "  gdbext loads in every gdb: ~/.gdbinit sources it."
  else
    echo "  load gdbext in gdb with:  source $loader  (or add that line to ~/.gdbinit)"
  fi
  echo "  gdb -p PID            attach to one of your running programs (as its user, or root),"
  echo "                        then vmmap, arenas, heapchunks, bins, chunk ADDRESS, heapleaks,"
  echo "                        heaprefs ADDRESS --path, threadstacks"
  echo "  gdb PROGRAM CORE      the same on a core file; gdb PROGRAM, run, Ctrl-C on a program you start"
  echo "  help gdbext           every command with a one-line summary; help vmmap for one command's options"
  echo "  README.md, section \"Commands\" ($here/README.md#commands): every command, option and JSON key"
}

facts=$(mktemp)
trap 'rm -f "$facts"' EXIT

n=0
step() {  # step TITLE PROGRAM ARGS... -- GDB-COMMANDS...  ("facts REGEX": the demo's own facts)
  local title=$1; shift
  local prog=() cmds=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do prog+=("$1"); shift; done
  shift
  for c in "$@"; do
    if [ "${c%% *}" = facts ]; then  # what the demo printed about itself, the pictures' oracle
      cmds+=(-ex "echo \\n(the demo says)\\n" -ex "shell sed -nE 's/^GDBEXT_FACT (${c#facts })/  \\1/p' '$facts'")
    elif [ "${c%% *}" = binfacts ]; then  # binfacts tN: one freed chunk of thread N per bin it used
      cmds+=(-ex "echo \\n(the demo says)\\n" -ex "shell awk -f '$here/demo_c/binfacts.awk' -v t='${c#binfacts }' '$facts'")
    else
      cmds+=(-ex "echo \\n(gdb) $c\\n" -ex "$c")
    fi
  done
  n=$((n + 1))
  if [ "$pause" = 1 ] && [ "$n" -gt 1 ]; then
    local answer=""
    echo
    printf -- "-- press Enter for step %d of %d, q to end the tour -- " "$n" "$steps"
    if ! read -r answer || [ "$answer" = q ] || [ "$answer" = Q ]; then
      echo
      next_steps
      exit 0
    fi
  fi
  echo
  echo "== $title"
  gdb -nx -batch -iex 'set confirm off' -iex 'set pagination off' -iex 'set width 0' -ex "source $loader" \
      -ex 'break gdbext_stop' -ex "run ${prog[*]:1} >$facts" "${cmds[@]}" -ex kill "${prog[0]}" 2>&1 \
    | grep -vE '^(Breakpoint 1 at|\[Thread debugging|Using host libthread_db|\[New Thread|\[Inferior|#1 )' || true
}

step "1. vmmap: the memory map of a program with three threads" "$build/thread_stacks" -- \
  "vmmap" "vmmap --summary" "vmmap &data_global"

step "2. arenas: every malloc arena, its heaps and threads, and malloc_par" "$build/malloc_sizes" basic -- \
  "arenas"

step "3. heapchunks: the chunks of each arena, heap by heap (first 12), and the mmapped chunks" \
  "$build/malloc_sizes" basic -- "heapchunks --limit 12" "heapchunks --arena 1 --state tcache,fastbin,unsorted"

step "4. bins: each thread's tcache and each arena's free lists" "$build/malloc_sizes" basic -- "bins"

step "5. chunk: one chunk explained" "$build/malloc_sizes" basic -- "chunk recs[3].p" "chunk recs[3].p + 5"

step "6. heapleaks: the chunks no root reaches; heaprefs --path: why one is still alive" "$build/leaks" -- \
  "heapleaks" "heaprefs g_list->next->next --path"

step "7. threadstacks: every thread's stack, guard, SP and use" "$build/thread_stacks" -- "threadstacks"

step "8. heapstat: the memory free() kept, and what malloc_trim(0) would give back" "$build/heap_growth" -- \
  "continue" "continue" "heapstat" "continue" "frame function main" \
  "printf \"the program then called malloc_trim(0): its anonymous RSS dropped by %ld KiB%c\", (before - after) / 1024, 10"

step "9. brkwatch: the program break moving under sbrk, recorded without stopping" "$build/sbrk_grow" -- \
  "brkwatch on --mmap" "continue" "continue" "brkwatch log"

step "10. brkwatch --mmap: large requests arrive through mmap, and freeing one raises the threshold" \
  "$build/malloc_sizes" threshold -- "brkwatch on --mmap" "continue" "continue" "continue" "brkwatch log"

step "11. vmmap --map: the three thread stacks, each with its guard below it" "$build/thread_stacks" -- \
  "vmmap --map --width 120 --kind stack --kind thread-stack --kind guard" \
  "facts thread\.[0-9]\.(stack_addr|stack_size|guard_size)=.*"

step "12. vmmap --map: sbrk(100 MiB) moves the break, and the heap appears above the bss" "$build/sbrk_grow" -- \
  "vmmap --map --width 120 --kind bss --kind heap" "continue" \
  "vmmap --map --width 120 --kind bss --kind heap" "facts brk\.(before|after)=.*"

step "13. vmmap --map: an anonymous mmap of 13*1023 bytes lands high, among the libraries" "$build/anon_mmap" -- \
  "vmmap --map --width 120" "facts anon\..*" "frame function main" "addrinfo anon"

step "14. heapmap, vmmap --map: malloc below the mmap threshold fills the heap, above it gets its own mapping" \
  "$build/malloc_sizes" basic -- "heapmap --arena 0" "vmmap --map --width 120 --kind heap --kind mmap-chunk" \
  "facts mmap\.t0\..*"

step "15. heapmap: freed chunks cached in bins (T tcache, F fastbin, N unsorted, S smallbin, L largebin)" \
  "$build/malloc_sizes" basic -- "heapmap --arena 0 --bytes-per-cell 128 --width 100" \
  "binfacts t0"

next_steps
