"""Other glibcs for the gdb tests: the demos run under Debian's glibc 2.31 (bullseye), 2.36
(bookworm), 2.41 (trixie), 2.43 (sid) and 2.44 (experimental), each with or without libc debug
symbols.

    python -m tests.glibcs fetch [VERSION...]    download, extract and build (idempotent)
    python -m tests.glibcs info [VERSION...]     what is cached, as JSON
    python -m tests.glibcs gdb VERSION [--no-symbols] DEMO [ARGS...]
                                                 an interactive gdb on a demo under that glibc

The host's own glibc needs nothing fetched. For every other version, Debian's `libc6`,
`libc6-dbg` and `libgcc-s1` (plus `libc6-dev` and `linux-libc-dev` for the oldest, which is the
build sysroot) are downloaded, not installed, through a private apt configuration whose sources
are the host's Debian mirror with the other suite, and unpacked with `dpkg-deb -x`.

The demos are compiled once per glibc against the OLDEST one (`make -C demo_c portable`), so
their symbol versions exist in every glibc, and linked with that glibc's ld.so as program
interpreter and its library directory as DT_RPATH: gdb runs the program itself (with its
symbols), and the program loads that glibc.

Cache layout ($GDBEXT_GLIBC_CACHE, default tests/.cache/glibc in the repository):

    apt/<suite>/              private apt configuration, lists and .debs (removed once unpacked)
    <version>/                the unpacked packages (absolute symlinks made relative)
    <version>/usr/lib/debug/  libc6-dbg's detached debug info (.build-id/xx/yyyy.debug)
    <version>/glibc.json      stamp: suite and package versions; written last
    <version>/demo/<prog>     the demos, loading this glibc

Debug symbols: gdb finds them by build-id under `debug-file-directory`, which
`Glibc.gdb_init(symbols)` points at the version's tree (the host's /usr/lib/debug for the host
glibc) or at a directory that does not exist. `libthread-db-search-path` names the version's own
libthread_db (it must match the inferior's glibc), which gdb needs to read thread-local
variables such as malloc's `tcache`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import json
import os
import pwd
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_SRC = os.path.join(ROOT, "demo_c")
DEFAULT_CACHE = os.path.join(ROOT, "tests", ".cache", "glibc")

# The glibcs that can be fetched, and the Debian suite that ships each one. Experimental holds
# only what is newer than sid, so its sources also list sid, pinned below it (EXTRA_SUITES).
SUITES = {"2.31": "bullseye", "2.36": "bookworm", "2.41": "trixie", "2.43": "sid",
          "2.44": "experimental"}
EXTRA_SUITES = {"experimental": ("sid",)}
# The glibcs the whole suite runs its demos under. GDBEXT_TEST_GLIBCS=host keeps only the host's
# own (tests/compat/matrix.sh in its chroots: the host's run covers the others), or names a
# comma-separated list.
ALL_VERSIONS = ("2.31", "2.36", "2.41", "2.43", "2.44")


def _versions() -> tuple:
    chosen = os.environ.get("GDBEXT_TEST_GLIBCS", "").strip()
    if chosen == "host":
        return (host_version(),)
    return tuple(v.strip() for v in chosen.split(",") if v.strip()) or ALL_VERSIONS


def host_version() -> str:
    return os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # "glibc 2.36"


VERSIONS = _versions()
OLDEST = min(VERSIONS, key=lambda v: tuple(map(int, v.split("."))))


def selected(versions) -> tuple:
    """Those of a test's own glibcs this run covers (in its order): a test that names its
    versions still obeys GDBEXT_TEST_GLIBCS, whose chroots cannot run the others' demos."""
    return tuple(v for v in versions if v in VERSIONS)


# libgcc-s1: pthread_exit and pthread_cancel dlopen libgcc_s.so.1 to unwind, and the host's may
# need a newer glibc than the one under test.
PACKAGES = ("libc6", "libc6-dbg", "libgcc-s1")
SYSROOT_PACKAGES = ("libc6-dev", "linux-libc-dev")  # headers and crt files, for the oldest only
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
NO_DEBUG_DIR = "/nonexistent/gdbext-no-debug-symbols"
GDB_ENV = {"DEBUGINFOD_URLS": ""}  # never fetch symbols from the network
STAMP = "glibc.json"


class Unreachable(Exception):
    """Debian's archive could not be reached (no network, no apt, no usable mirror)."""


def cache_dir() -> str:
    return os.path.abspath(os.environ.get("GDBEXT_GLIBC_CACHE") or DEFAULT_CACHE)


def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _check(argv, what, **kw) -> str:
    p = _run(argv, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(argv)}):\n{p.stdout[-3000:]}")
    return p.stdout


def _tail(output: str, lines: int = 3) -> str:
    """The last lines of a tool's output, on one line (apt's error comes last)."""
    return " | ".join(output.strip().splitlines()[-lines:])


def multiarch() -> str:
    return _check(["gcc", "-print-multiarch"], "gcc -print-multiarch").strip()


def build_id(path: str) -> str | None:
    """The GNU build-id of an ELF file, as hex, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        return None
    is64, little = data[4] == 2, data[5] == 1
    e = "<" if little else ">"
    if is64:
        shoff, = struct.unpack_from(e + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(e + "HH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(e + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(e + "HH", data, 0x2E)
    for i in range(shnum):
        base = shoff + i * shentsize
        if is64:
            _, stype, _, _, off, size = struct.unpack_from(e + "IIQQQQ", data, base)
        else:
            _, stype, _, _, off, size = struct.unpack_from(e + "IIIIII", data, base)
        if stype != 7:  # SHT_NOTE
            continue
        pos = off
        while pos + 12 <= off + size:
            namesz, descsz, ntype = struct.unpack_from(e + "III", data, pos)
            name_at = pos + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            if ntype == 3 and data[name_at:name_at + namesz].rstrip(b"\0") == b"GNU":
                return data[desc_at:desc_at + descsz].hex()
            pos = desc_at + (descsz + 3) // 4 * 4
    return None


def libc_release(path: str) -> str | None:
    """The version a libc.so.6 announces ('... release version 2.31.'), read from the file."""
    with open(path, "rb") as f:
        m = re.search(rb"release version (\d+\.\d+)", f.read())
    return m.group(1).decode() if m else None


@dataclass(frozen=True)
class Glibc:
    """One glibc the demos can run under. Paths are absolute; `root` is "/" for the host's."""

    version: str
    suite: str
    host: bool
    root: str
    libdir: str       # the directory holding libc.so.6 (the demos' DT_RPATH)
    loader: str       # ld.so, the demos' program interpreter
    libc: str         # the libc.so.6 the demos load
    debug_dir: str    # debug-file-directory holding this glibc's .build-id tree
    demo_dir: str
    packages: dict = field(default_factory=dict)  # Debian package -> version
    build_error: str = ""  # make's output when a demo did not build (the others still do)

    def demo(self, name: str) -> str:
        path = os.path.join(self.demo_dir, name)
        if not os.path.exists(path):
            raise RuntimeError(f"demo {name!r} is not built for glibc {self.version} in "
                               f"{self.demo_dir}; make said:\n{self.build_error or '(nothing)'}")
        return path

    @property
    def debug_file(self) -> str | None:
        """libc.so.6's detached debug info (libc6-dbg), or None when it is absent."""
        bid = build_id(self.libc)
        if not bid:
            return None
        path = os.path.join(self.debug_dir, ".build-id", bid[:2], bid[2:] + ".debug")
        return path if os.path.exists(path) else None

    @property
    def has_symbols(self) -> bool:
        return self.debug_file is not None

    def gdb_init(self, symbols: bool) -> list:
        """gdb commands to run before the program is loaded (as -iex)."""
        cmds = [f"set debug-file-directory {self.debug_dir if symbols else NO_DEBUG_DIR}"]
        if not self.host:
            # The inferior's own libthread_db (a host one refuses a different glibc).
            cmds += [f"add-auto-load-safe-path {self.libdir}",
                     f"set libthread-db-search-path {self.libdir}"]
        return cmds

    gdb_env = GDB_ENV

    def to_json(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(has_symbols=self.has_symbols, debug_file=self.debug_file)
        return d


# ---- apt, privately ------------------------------------------------------------------------

def _debian_uris(etc: str = "/etc/apt") -> tuple:
    """The Debian archive URIs to use and the keyring to check them with.

    The URIs are the host's own (its apt sources, deb822 or one-line; suites without a "-", so
    not -security or -updates), or $GDBEXT_GLIBC_URIS (space-separated) when set, e.g. for an
    archive that has moved. The keyring is Debian's archive keyring when installed (it holds the
    keys of every supported release; the host's Signed-By may name a single release's key),
    else the host's Signed-By."""
    uris, signed_by = [], None
    for path in sorted(glob.glob(f"{etc}/sources.list.d/*.sources")):
        with open(path) as f:
            for stanza in re.split(r"\n\s*\n", f.read()):
                fields = {}
                for line in stanza.splitlines():
                    m = re.match(r"([\w-]+):\s*(.*)", line)
                    if m:
                        fields[m.group(1).lower()] = m.group(2).split()
                if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) == ["yes"] \
                        and any("-" not in s for s in fields.get("suites", [])):
                    uris += [u for u in fields.get("uris", []) if u not in uris]
                    signed_by = signed_by or (fields.get("signed-by") or [None])[0]
    for path in [f"{etc}/sources.list"] + sorted(glob.glob(f"{etc}/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
                    if m and "-" not in m.group(3) and m.group(2) not in uris:
                        uris.append(m.group(2))
                        opt = re.search(r"signed-by=(\S+)", m.group(1) or "")
                        signed_by = signed_by or (opt.group(1) if opt else None)
    if os.environ.get("GDBEXT_GLIBC_URIS"):
        uris = os.environ["GDBEXT_GLIBC_URIS"].split()
    if os.path.exists(KEYRING):
        return uris, KEYRING
    return uris, signed_by if signed_by and os.path.isfile(signed_by) else None


class _Apt:
    """apt-get with its own sources, state and cache under <cache>/apt/<suite>."""

    def __init__(self, cache: str, suite: str, arch: str):
        self.dir = os.path.join(cache, "apt", suite)
        self.suite, self.arch = suite, arch
        for d in ("sources.list.d", "preferences.d", "state/lists/partial",
                  "cache/archives/partial", "debs"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        status = os.path.join(self.dir, "status")
        if not os.path.exists(status):
            open(status, "w").close()

    def opts(self) -> list:
        d = self.dir
        user = pwd.getpwuid(os.getuid()).pw_name
        o = {
            "Dir::Etc::sourcelist": f"{d}/sources.list",
            "Dir::Etc::sourceparts": f"{d}/sources.list.d",
            "Dir::Etc::preferences": f"{d}/preferences",
            "Dir::Etc::preferencesparts": f"{d}/preferences.d",
            "Dir::State": f"{d}/state",
            "Dir::State::status": f"{d}/status",
            "Dir::Cache": f"{d}/cache",
            "APT::Architecture": self.arch,
            "APT::Architectures": self.arch,
            "APT::Default-Release": "",
            "Acquire::Languages": "none",
            "APT::Sandbox::User": user,
            "Acquire::Retries": "0",           # fail fast when the archive is unreachable
            "Acquire::http::Timeout": "20",
            # sid's and experimental's Release files may carry an expired Valid-Until on an
            # archive snapshot; the signature is still checked.
            "Acquire::Check-Valid-Until": "false",
        }
        return [x for k, v in o.items() for x in ("-o", f"{k}={v}")]

    def update(self):
        uris, keyring = _debian_uris()
        if not uris:
            raise Unreachable("no Debian archive URI in the host's apt sources")
        if shutil.which("apt-get") is None:
            raise Unreachable("apt-get is not installed")
        opt = f"[signed-by={keyring}] " if keyring else ""
        with open(os.path.join(self.dir, "sources.list"), "w") as f:
            f.write("# written by tests/glibcs.py: the host's Debian mirror, another suite\n")
            for uri in uris:
                for suite in (self.suite, *EXTRA_SUITES.get(self.suite, ())):
                    f.write(f"deb {opt}{uri} {suite} main\n")
        # experimental is NotAutomatic (priority 1): pin it above its base so its packages win
        # where it has them, and the base suite gives the rest.
        with open(os.path.join(self.dir, "preferences"), "w") as f:
            f.write(f"Package: *\nPin: release a={self.suite}\nPin-Priority: 990\n")
        p = _run(["apt-get", "-q", *self.opts(), "update"])
        lists = glob.glob(os.path.join(self.dir, "state/lists", f"*_dists_{self.suite}_main_*Packages*"))
        if p.returncode != 0 or not lists:
            raise Unreachable(f"apt-get update for {self.suite} failed: {_tail(p.stdout)}")

    def download(self, packages) -> list:
        """Download the candidate .debs of `packages`; returns their paths."""
        debs = os.path.join(self.dir, "debs")
        for old in glob.glob(os.path.join(debs, "*.deb")):
            os.unlink(old)
        p = _run(["apt-get", "-q", *self.opts(), "download", *packages], cwd=debs)
        found = sorted(glob.glob(os.path.join(debs, "*.deb")))
        if p.returncode != 0 or len(found) != len(packages):
            raise Unreachable(f"apt-get download {' '.join(packages)} ({self.suite}) failed: "
                              f"{_tail(p.stdout)}")
        return found


def _relink_absolute(root: str):
    """Point the tree's absolute symlinks (/lib64/ld-linux... -> /lib/...) inside the tree."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                target = os.readlink(path)
                if target.startswith("/"):
                    os.unlink(path)
                    os.symlink(os.path.relpath(root + target, dirpath), path)


def _fetch(cache: str, version: str, arch: str, with_sysroot: bool) -> dict:
    """Download and unpack one foreign glibc into <cache>/<version> unless its stamp is there."""
    dest = os.path.join(cache, version)
    packages = PACKAGES + (SYSROOT_PACKAGES if with_sysroot else ())
    stamp = _read_stamp(dest)
    if stamp and all(p in stamp.get("packages", {}) for p in packages):
        return stamp
    suite = SUITES[version]
    apt = _Apt(cache, suite, arch)
    apt.update()
    debs = apt.download(packages)
    tmp = f"{dest}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    versions = {}
    for deb in debs:
        _check(["dpkg-deb", "-x", deb, tmp], "dpkg-deb -x")
        name, ver = _check(["dpkg-deb", "-f", deb, "Package", "Version"], "dpkg-deb -f") \
            .replace("Package: ", "").replace("Version: ", "").split()
        versions[name] = ver
    _relink_absolute(tmp)
    libc = _find_libc(tmp, multiarch())
    if libc_release(libc) != version:
        raise RuntimeError(f"{suite}'s libc6 is glibc {libc_release(libc)}, not {version}")
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    shutil.rmtree(apt.dir, ignore_errors=True)  # lists and .debs: ~30 MiB, needed no more
    stamp = {"version": version, "suite": suite, "packages": versions,
             "fetched": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(os.path.join(dest, STAMP), "w") as f:
        json.dump(stamp, f, indent=1)
    return stamp


def _read_stamp(dest: str) -> dict | None:
    try:
        with open(os.path.join(dest, STAMP)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _find_libc(root: str, triplet: str) -> str:
    for d in (f"lib/{triplet}", f"usr/lib/{triplet}", "lib64", "usr/lib64", "lib", "usr/lib"):
        path = os.path.join(root, d, "libc.so.6")
        if os.path.exists(path):
            return path
    raise RuntimeError(f"no libc.so.6 under {root}")


def _find_loader(libdir: str) -> str:
    found = sorted(glob.glob(os.path.join(libdir, "ld-linux*.so.*")))
    if not found:
        raise RuntimeError(f"no ld-linux*.so.* in {libdir}")
    return found[0]


def _host_packages() -> dict:
    p = _run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n",
              *PACKAGES])
    return {f[0]: f[1] for f in (line.split() for line in p.stdout.splitlines())
            if len(f) >= 3 and f[2].startswith("ii")}


def describe(version: str, cache: str | None = None) -> Glibc:
    """The Glibc for `version` (paths only; `ensure` makes them exist)."""
    cache = cache or cache_dir()
    triplet = multiarch()
    demo_dir = os.path.join(cache, version, "demo")
    if version == host_version():
        libc = _find_libc("/", triplet)
        libdir = os.path.dirname(libc)
        loaders = sorted(glob.glob(os.path.join(libdir, "ld-linux*.so.*")))
        return Glibc(version, SUITES.get(version, ""), True, "/", libdir,
                     loaders[0] if loaders else "", libc, "/usr/lib/debug", demo_dir,
                     _host_packages())
    root = os.path.join(cache, version)
    libc = _find_libc(root, triplet)
    libdir = os.path.dirname(libc)
    stamp = _read_stamp(root) or {}
    return Glibc(version, SUITES[version], False, root, libdir, _find_loader(libdir), libc,
                 os.path.join(root, "usr", "lib", "debug"), demo_dir, stamp.get("packages", {}))


def _build_demos(g: Glibc, sysroot: str) -> str:
    """make -C demo_c portable for one glibc; a no-op when the binaries are up to date.

    Keeps going past a demo that does not build (make -k) and returns make's output then, so
    one demo needing a newer glibc does not take the others down; "" when all built."""
    flags = [f"SYSROOT={sysroot}"]
    if not g.host:
        flags += [f"INTERP={g.loader}", f"RPATH={g.libdir}"]
    # The binaries embed these paths: rebuild when they change (a moved cache, another sysroot).
    key = os.path.join(g.demo_dir, ".flags")
    try:
        with open(key) as f:
            same = f.read() == "\n".join(flags)
    except OSError:
        same = False
    if not same:
        shutil.rmtree(g.demo_dir, ignore_errors=True)
    os.makedirs(g.demo_dir, exist_ok=True)
    with open(key, "w") as f:
        f.write("\n".join(flags))
    p = _run(["make", "-s", "-k", "-C", DEMO_SRC, "portable", f"PORTABLE_OUT={g.demo_dir}",
              *flags])
    return p.stdout if p.returncode != 0 else ""


@contextlib.contextmanager
def _locked(cache: str):
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure(versions=VERSIONS, build=True) -> dict:
    """Fetch what is missing and build the demos; returns {version: Glibc}.

    Raises Unreachable when a glibc must be downloaded and Debian's archive cannot be reached.
    Safe to call from several processes at once (a lock file serialises them)."""
    cache = cache_dir()
    host = host_version()
    arch = _check(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip() \
        if shutil.which("dpkg") else None
    wanted = sorted(set(versions) | ({OLDEST} if build else set()))
    with _locked(cache):
        for v in wanted:
            if v == host:
                continue
            if arch is None:
                raise Unreachable("dpkg is not installed (not a Debian-like host)")
            _fetch(cache, v, arch, with_sysroot=build and v == OLDEST)
        out = {v: describe(v, cache) for v in versions}
        if build:
            sysroot = "" if OLDEST == host else os.path.join(cache, OLDEST)
            out = {v: dataclasses.replace(g, build_error=_build_demos(g, sysroot))
                   for v, g in out.items()}
    return out



def for_test(version: str, symbols: bool) -> Glibc:
    """ensure() for one test: the Glibc of `version`, or the test skipped saying why (Debian's
    archive unreachable; symbols asked for and that glibc has none)."""
    import pytest

    try:
        g = ensure((version,))[version]
    except Unreachable as e:
        pytest.skip(f"Debian's archive is unreachable, no other glibc to test: {e}")
    if symbols and not g.has_symbols:
        pytest.skip(f"no debug symbols for glibc {version} ({g.libc}); install libc6-dbg")
    return g

class Fetched(dict):
    """{version: Glibc} as `ensure` returns it, which fetches a version asked for that is not
    there yet: the host's own glibc when it is none of VERSIONS (a newer Debian, another
    distribution), which the tests of host-only things (a kernel's core dump) still run under."""

    def __missing__(self, version):
        self[version] = ensure((version,))[version]
        return self[version]


# ---- command line --------------------------------------------------------------------------

def _du(path: str) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv.pop(0) if argv else "fetch"
    if cmd in ("fetch", "info"):
        versions = tuple(argv) or VERSIONS
        unknown = [v for v in versions if v not in SUITES]
        if unknown:
            print(f"unknown glibc version(s) {', '.join(unknown)}; known: {', '.join(SUITES)}",
                  file=sys.stderr)
            return 2
        t0 = time.monotonic()
        try:
            got = ensure(versions) if cmd == "fetch" else \
                {v: describe(v) for v in versions}
        except Unreachable as e:
            print(f"glibcs: Debian's archive is unreachable: {e}", file=sys.stderr)
            return 1
        if cmd == "info":
            print(json.dumps({v: g.to_json() for v, g in got.items()}, indent=1))
            return 0
        for v, g in got.items():
            pk = ", ".join(f"{k} {ver}" for k, ver in sorted(g.packages.items()))
            print(f"glibc {v} ({g.suite}{', host' if g.host else ''}): {g.libc}")
            print(f"  packages: {pk or '-'}")
            print(f"  debug symbols: {g.debug_file or 'none'}")
            print(f"  demos: {g.demo_dir}")
        print(f"cache {cache_dir()}: {_du(cache_dir()) / 2**20:.0f} MiB; "
              f"{time.monotonic() - t0:.1f} s")
        return 0
    if cmd == "gdb":
        symbols = "--no-symbols" not in argv
        argv = [a for a in argv if a != "--no-symbols"]
        if len(argv) < 2:
            print("usage: python -m tests.glibcs gdb VERSION [--no-symbols] DEMO [ARGS...]",
                  file=sys.stderr)
            return 2
        version, program, *args = argv
        if version not in SUITES:
            print(f"unknown glibc version {version}; known: {', '.join(SUITES)}",
                  file=sys.stderr)
            return 2
        try:
            g = ensure((version,))[version]
        except Unreachable as e:
            print(f"glibcs: Debian's archive is unreachable: {e}", file=sys.stderr)
            return 1
        init = [x for c in g.gdb_init(symbols) for x in ("-iex", c)]
        loader = os.path.join(ROOT, "gdbext", "gdbinit.py")
        os.environ.update(g.gdb_env)
        os.execvp("gdb", ["gdb", "-nx", *init, "-ex", f"source {loader}", "--args", g.demo(program),
                          *args])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
