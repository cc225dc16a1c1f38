"""Drive a real gdb through pexpect: start a demo, stop at gdbext_stop, run commands, read facts."""

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys

import pexpect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(ROOT, "gdbext", "gdbinit.py")
BUILD = os.path.join(ROOT, "demo_c", "build")
PROMPT = "GDBEXT-TEST> "
FACT = re.compile(r"GDBEXT_FACT ([\w.]+)=(\S+)")
GDB_START_NOTICE = re.compile(r"\[Thread debugging using libthread_db enabled\]|Using host libthread_db")
TIMEOUT = float(os.environ.get("GDBEXT_TEST_TIMEOUT", "60"))


def build_demos():
    """make the demos, one process at a time (pytest-xdist workers start together)."""
    os.makedirs(BUILD, exist_ok=True)
    with open(os.path.join(BUILD, ".make-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "demo_c")], check=True,
                       stdout=subprocess.DEVNULL)


def demo(name: str) -> str:
    return os.path.join(BUILD, name)


BUILD_M32 = os.path.join(BUILD, "m32")
M32_PACKAGES = "gcc-multilib, libc6-dev-i386 (and libc6-dbg:i386 for libc's debug symbols)"
_m32_missing = ["unknown"]


def build_demos_m32():
    """`make m32`: the demos compiled with gcc -m32 into demo_c/build/m32. Returns None, or why
    they cannot be built here (no i386 toolchain), for a skip."""
    if _m32_missing != ["unknown"]:
        return _m32_missing[0]
    os.makedirs(BUILD, exist_ok=True)
    with open(os.path.join(BUILD, ".make-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        got = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "demo_c"), "m32"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    why = None
    if got.returncode != 0:
        last = (got.stdout.strip().splitlines() or ["make failed"])[-1]
        why = f"no i386 toolchain to build the -m32 demos ({last.strip()}); install {M32_PACKAGES}"
    _m32_missing[0] = why
    return why


def demo_m32(name: str) -> str:
    return os.path.join(BUILD_M32, name)


def libc_debug_missing(program: str):
    """None when the libc that `program` loads has its separate debug file installed (by
    build-id, where gdb looks), else why not: for i386 demos, whether libc6-dbg:i386 is."""
    out = subprocess.run(["ldd", program], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    m = re.search(r"libc\.so\.6 => (\S+)", out)
    if not m:
        return f"ldd {program} names no libc.so.6"
    notes = subprocess.run(["readelf", "-n", m.group(1)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True).stdout
    b = re.search(r"Build ID: ([0-9a-f]+)", notes)
    if not b:
        return f"{m.group(1)} has no build-id"
    path = f"/usr/lib/debug/.build-id/{b.group(1)[:2]}/{b.group(1)[2:]}.debug"
    if not os.path.exists(path):
        return f"no debug symbols for {m.group(1)} ({path}); install its libc6-dbg"
    return None


def parse_value(text: str):
    """'0x10' -> 16, '42' -> 42, '0x10:24' -> (16, 24), anything else stays text."""
    if ":" in text:
        parts = text.split(":")
        try:
            return tuple(int(p, 0) for p in parts)
        except ValueError:
            return text
    try:
        return int(text, 0)
    except ValueError:
        return text


class Gdb:
    """One gdb session. Every expect has a timeout, so a hang fails fast."""

    def __init__(self, program=None, args=(), load=True, extra_init=(), timeout=TIMEOUT, env=None,
                 progress=False):
        """`progress`: leave gdbext's progress line on. Off by default: a command that runs past
        half a second on a loaded machine would draw it into the transcript a test compares."""
        self.timeout = timeout
        self.facts = {}
        self.transcript = []
        self.sent = []  # the commands so far, replayed by a restart (_restart_hung_start)
        self.restarted = False
        argv = ["-nx", "-q", "-iex", f"set prompt {PROMPT}", "-iex", "set pagination off",
                "-iex", "set width 0", "-iex", "set height 0", "-iex", "set confirm off",
                "-iex", "set style enabled off"]
        for cmd in extra_init:
            argv += ["-iex", cmd]
        if load:
            argv += ["-ex", f"source {LOADER}"]
            if not progress:
                argv += ["-ex", "set gdbext progress off"]
        if program:
            argv += ["--args", program, *map(str, args)]
        self._spawn_args = (argv, {**os.environ, "TERM": "dumb", **(env or {})})  # env may set TERM
        self._spawn()

    def _spawn(self):
        argv, env = self._spawn_args
        self.child = pexpect.spawn(shutil.which("gdb") or "gdb", argv, encoding="utf-8",
                                   codec_errors="replace", timeout=self.timeout, env=env,
                                   dimensions=(500, 1000), echo=False)
        # pexpect pauses 50 ms before every send by default (for slow terminals); gdb needs
        # none, and the pause was about half the suite's wall time.
        self.child.delaybeforesend = None
        self._expect_prompt(self.timeout)

    def _expect_prompt(self, timeout=None) -> str:
        self.child.expect_exact(PROMPT, timeout=timeout or self.timeout)
        text = self.child.before.replace("\r\n", "\n")
        self.transcript.append(text)
        for name, value in FACT.findall(text):
            self.facts[name] = parse_value(value)
        return text

    def cmd(self, command: str, timeout=None) -> str:
        self.child.sendline(command)
        try:
            text = self._expect_prompt(timeout).strip("\n")
        except pexpect.TIMEOUT:
            if not self._hung_at_start(command):
                raise
            text = self._restart_hung_start(command, timeout)
        self.sent.append(command)
        return text

    def _hung_at_start(self, command: str) -> bool:
        """A first `run` that printed "Starting program:" and nothing after it in a whole timeout:
        a rare hang seen only on loaded machines (3 of ~2,000 runs in one loaded suite, none in
        190 runs alone), before the program printed anything, so before any test's step."""
        if self.restarted or command.split()[:1] not in (["run"], ["r"]) or self._program_started():
            return False
        before = (self.child.before or "").replace("\r\n", "\n")
        _, sep, tail = before.partition("Starting program:")
        said = [line for line in tail.split("\n")[1:]
                if line.strip() and not GDB_START_NOTICE.match(line)]
        return bool(sep) and not said

    def _program_started(self) -> bool:
        """Whether a program of this gdb has printed its facts: a later `run` is not a first start."""
        return any("GDBEXT_FACT" in t for t in self.transcript)

    def _restart_hung_start(self, command: str, timeout=None) -> str:
        """Log what the hung processes were doing, then start gdb afresh, replay the commands sent
        before this `run`, and run once more: a second hang fails the test."""
        hung = self._log_start_hang(command)
        self.restarted = True
        self.child.close(force=True)
        for pid in hung:  # the program gdb was starting, if it is still there
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        self.transcript.clear()
        self.facts.clear()
        self._spawn()
        for c in self.sent:
            self.child.sendline(c)
            self._expect_prompt()
        self.child.sendline(command)
        return self._expect_prompt(timeout).strip("\n")

    def _log_start_hang(self, command: str) -> list:
        """Log gdb's process tree with each process's state and wait channel; returns the pids
        below gdb."""
        lines = [f"{command!r} hung after 'Starting program:' (gdb pid {self.child.pid}); "
                 "restarting gdb once"]
        below = self._below(self.child.pid)
        for pid in [self.child.pid, *below]:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/wchan") as f:
                    wchan = f.read()
            except OSError as e:
                lines.append(f"  {pid}: {e}")
                continue
            name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
            lines.append(f"  {pid} {name} state {state} wchan {wchan or '-'}")
        message = "\n".join(lines)
        print(f"harness: {message}", file=sys.stderr)
        with contextlib.suppress(OSError):
            os.makedirs(os.path.join(ROOT, "tests", ".cache"), exist_ok=True)
            with open(os.path.join(ROOT, "tests", ".cache", "start-hangs.log"), "a") as f:
                f.write(message + "\n")
        return below

    def json(self, command: str, timeout=None):
        text = self.cmd(command, timeout)
        start = text.find("{")
        if start < 0:
            raise AssertionError(f"{command!r} printed no JSON:\n{text}")
        return json.loads(text[start:text.rfind("}") + 1])

    def run_to(self, label: str, timeout=None) -> str:
        """Run (or continue) until the program announces and reaches stop `label`."""
        out = ""
        if not any("Breakpoint" in t and "gdbext_stop" in t for t in self.transcript):
            self.cmd("break gdbext_stop")
        verb = "run" if self.pid is None else "continue"
        for _ in range(50):
            text = self.cmd(verb, timeout)
            out += text
            verb = "continue"
            if f"GDBEXT_STOP {label}" in text:
                return out
            if "exited" in text or "received signal" in text and "SIGSEGV" not in text:
                break
        raise AssertionError(f"never reached stop {label!r}:\n{out[-3000:]}")

    @property
    def pid(self):
        text = self.cmd("info inferiors")
        m = re.search(r"process (\d+)", text)
        return int(m.group(1)) if m else None

    def abandon(self):
        """End a gdb that no longer answers (gdb 13 hangs at `kill` after a failed inferior call
        on CPUs with AMX state): SIGKILL its program, then gdb, instead of close()'s 10 s wait."""
        for pid in self._below(self.child.pid):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        self.child.close(force=True)

    @staticmethod
    def _below(pid: int) -> list:
        found, todo = [], [pid]
        while todo:
            with contextlib.suppress(OSError), open(f"/proc/{todo[0]}/task/{todo[0]}/children") as f:
                kids = [int(c) for c in f.read().split()]
                found += kids
                todo += kids
            todo.pop(0)
        return found

    def close(self):
        if not self.child.isalive():
            return
        try:
            self.child.sendline("kill")
            self.child.sendline("quit")
            self.child.expect(pexpect.EOF, timeout=10)
        except (pexpect.TIMEOUT, pexpect.EOF, OSError):
            pass
        self.child.close(force=True)


def kernel_cores_or_skip():
    """Skip unless the kernel writes a dying program's core into its working directory."""
    import pytest
    import resource

    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core dumps go elsewhere (kernel.core_pattern = {pattern!r})")
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("core dumps are disabled (hard RLIMIT_CORE is 0)")


def kernel_core(g: Gdb, directory, timeout=120) -> str:
    """Kill g's program (started with cwd `directory` and `ulimit -c unlimited`) by SIGSEGV and
    return the core the kernel wrote.  The signal is sent from outside while gdb holds the
    program stopped, and gdb detaches: the program then dies untraced.  gdb's own `signal
    SIGSEGV` raced with the dying threads (gdb 18 gave its prompt back with "Couldn't get
    registers: No such process" while they waited in their exit stops, the dump not begun), and
    ending gdb then killed the program (PTRACE_O_EXITKILL), cutting the dump off."""
    import time

    pid = g.pid
    assert pid is not None, "no process to kill"
    os.kill(pid, 11)
    g.cmd("detach", timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    break  # a zombie: the dump is written before the process exits
        except OSError:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still alive {timeout} s after SIGSEGV")
        time.sleep(0.05)
    cores = [p for p in os.listdir(directory) if p == "core" or p.startswith("core.")]
    assert len(cores) == 1, os.listdir(directory)
    return os.path.join(str(directory), cores[0])


_gdb_version = None


def gdb_version() -> tuple:
    """(major, minor) of the gdb the tests run, e.g. (10, 1) for '... 10.1.90.20210103-git'."""
    global _gdb_version
    if _gdb_version is None:
        out = subprocess.run([shutil.which("gdb") or "gdb", "--version"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        m = re.search(r"(\d+)\.(\d+)", out.splitlines()[0] if out else "")
        _gdb_version = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return _gdb_version


def file_arg(path: str) -> str:
    """`path` as a file-name argument of gdb commands such as core-file: gdb 16 and later
    take quotes and backslashes there as quoting (gdb 16 NEWS: filename arguments may be
    quoted or escaped), earlier gdbs take the rest of the line as it is."""
    if gdb_version() < (16, 0):
        return path
    return re.sub(r"""([\\'"\s])""", r"\\\1", path)


def libc_tls_unreadable(glibc: str):
    """Why this gdb cannot read glibc `glibc`'s thread-local variables (malloc's tcache), or
    None when it can. gdb reads them through libthread_db, which gdb before 11 loads only when
    libpthread comes in, before libc's symbols; glibc 2.34 merged libpthread into libc, so its
    libthread_db finds none of the symbols it needs there and gdb 10 sees bare LWPs. And gdb
    loads the inferior's libthread_db into itself: one that needs a newer glibc than the one gdb
    runs on (2.43's asks for GLIBC_ABI_DT_X86_64_PLT) does not load, and gdb sees bare LWPs."""
    v = tuple(int(x) for x in glibc.split(".")[:2])
    if gdb_version() < (11, 0) and v >= (2, 34):
        return (f"gdb {gdb_version()[0]}.{gdb_version()[1]} cannot read glibc {glibc}'s "
                "thread-local variables: gdb before 11 cannot load the libthread_db of glibc "
                "2.34 and later, where libpthread was merged into libc")
    return thread_db_unloadable(glibc)


_thread_db_errors: dict = {}


def thread_db_unloadable(glibc: str):
    """Why glibc `glibc`'s libthread_db cannot be loaded next to the glibc gdb runs on, or None.
    Asked of this Python (it runs on the same glibc as gdb, as on every Debian-like host): a
    dlopen in a child process, as gdb's own; the ps_* functions it needs are gdb's, so only
    their absence here is no reason."""
    from tests import glibcs as G

    if glibc == G.host_version():
        return None
    if glibc not in _thread_db_errors:
        path = os.path.join(G.describe(glibc).libdir, "libthread_db.so.1")
        p = subprocess.run([sys.executable, "-c", "import ctypes, os, sys; ctypes.CDLL(sys.argv[1], os.RTLD_LAZY)",
                            path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        err = (p.stdout.strip().splitlines() or [""])[-1]
        ok = p.returncode == 0 or "undefined symbol: ps_" in err
        _thread_db_errors[glibc] = None if ok else (
            f"this gdb cannot load glibc {glibc}'s libthread_db, which needs a newer glibc than "
            f"the {G.host_version()} gdb runs on ({err}): gdb sees bare LWPs and no thread-local "
            "variables")
    return _thread_db_errors[glibc]


def glibc_key(glibc: str) -> tuple:
    """(2, 43) for "2.43"."""
    return tuple(int(x) for x in glibc.split(".")[:2])


def proc_maps(pid: int):
    from gdbext.model.regions import parse_proc_maps

    with open(f"/proc/{pid}/maps") as f:
        return parse_proc_maps(f.read())


def assert_clean(text: str):
    """No traceback, no Python error text, ever."""
    assert "Traceback" not in text, text
    assert "Python Exception" not in text, text
    assert "internal error" not in text, text


def gdbserver_start(argv, env=None):
    """(server process, port): gdbserver on 127.0.0.1, an ephemeral port."""
    server = subprocess.Popen(["gdbserver", "--once", "127.0.0.1:0", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, **(env or {})))
    seen = []
    for _ in range(100):
        line = server.stdout.readline()
        seen.append(line)
        m = re.search(r"Listening on port (\d+)", line)
        if m:
            return server, int(m.group(1))
        if not line:
            break
    server.kill()
    raise AssertionError("gdbserver did not listen:\n" + "".join(seen))


def remote_run_to(g, server, port: int, label: str) -> str:
    """Connect gdb `g` to gdbserver `server` and continue to stop `label`; returns what the
    program printed up to it (on gdbserver's output, not gdb's), for its facts."""
    g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
    g.cmd("break gdbext_stop")
    g.cmd("continue", timeout=60)
    said = ""
    while f"GDBEXT_STOP {label}" not in said:
        line = server.stdout.readline()
        assert line, said
        said += line
    return said


@contextlib.contextmanager
def remote_session(gdb_session, program: str):
    """A gdb connected to gdbserver running `program` (a demo name), stopped at its first
    gdbext_stop; gdbserver is killed afterwards."""
    server, port = gdbserver_start([demo(program)])
    try:
        g = gdb_session(demo(program))
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        g.cmd("break gdbext_stop")
        g.cmd("continue", timeout=60)
        yield g
    finally:
        server.kill()
        server.wait()
