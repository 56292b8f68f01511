"""Where the real CPU of a burst goes: `perf record` (cpu-clock samples,
no hardware counters needed) attached to `sluice run` while it takes one
burst, then the functions with the largest share of the samples, and the
share of each thread.

callgrind_burst.py counts instructions, which do not drift with this
machine, but it runs every thread on one simulated CPU with no caches: it
cannot see what a cache miss or a cross-core copy costs. This profile
can, at the price of run-to-run noise.

It reuses the input and the TLS counting endpoint of compare_fluent_bit.py.
Extra VAR=value arguments go into Sluice's environment.

With --callers=NAME the samples carry call stacks (DWARF unwinding, at a
third of the rate), and the samples in functions whose name holds NAME are
also counted by the code that called them: for instance
--callers=_avx_unaligned_erms says which copies glibc's memcpy and
memmove samples are (the flat profile names the one function by either).

With --kernel the samples carry frame-pointer call stacks, and those in
the kernel are counted by how the process entered it: the system call,
a page fault, an interrupt, or (the rest) the kernel function sampled.

With --drop-in Sluice runs as a FireLens drop-in, from the configuration
compare_fluent_bit.py's --drop-in gives both systems (DROP_IN_CONFIG).

With --count=SYMBOL nothing is sampled: a uprobe on the binary's
function SYMBOL counts its calls during the burst (for instance
--count=_rjem_je_large_ralloc, jemalloc's reallocation of a block over
16 KiB, which copies it when it cannot grow in place). Needs root.

Usage (after ../shared/peers/build-peers.sh and a release build with line
tables, so that the functions below are named; needs `perf`):
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release -p sluice
  ~/peers/venv/bin/python benches/perf_burst.py target/release/sluice [RECORDS] [--drop-in] [--callers=NAME | --kernel | --count=SYMBOL] [VAR=value ...]
"""

import collections
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_fluent_bit as common  # noqa: E402

TOP = 25
# The uprobe --count adds, as perf names it: group and event.
PROBE = "sluice_bench:count"


def report(data, sort):
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none"],
                         capture_output=True, text=True, check=True).stdout
    return [line.rstrip() for line in out.splitlines() if line.strip() and not line.startswith("#")]


def callers(data, name):
    """Samples whose innermost frames are in `name`, by the three frames
    that called it (inlined frames included), largest first."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    by_caller = collections.Counter()
    for sample in out.split("\n\n"):
        # Frames are "ip symbol", innermost first; the kernel's (a page
        # fault in a copy, say) are left out.
        frames = [f[1].replace(" (inlined)", "")
                  for f in (line.split(None, 1) for line in sample.strip().splitlines()[1:])
                  if len(f) > 1 and not f[0].startswith("ffffffff")]
        if not frames:
            continue
        total += 1
        inside = [i for i, f in enumerate(frames) if name in f]
        if inside and inside[0] == 0:
            # Past the last frame of `name` (it may call itself or inline).
            outer = frames[inside[-1] + 1:]
            by_caller[" <- ".join(f[:80] for f in outer[:3])] += 1
    return total, by_caller


def kernel_entries(data):
    """The share of all samples in the kernel, and of each way in."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    entries = collections.Counter()
    for sample in out.split("\n\n"):
        frames = [f for f in (line.split(None, 1) for line in sample.strip().splitlines()[1:]) if len(f) == 2]
        if not frames:
            continue
        total += 1
        if not frames[0][0].startswith("ffffffff"):
            continue
        names = [name for _, name in frames]
        entry = next((n for n in names if n.startswith(("__x64_sys_", "__do_sys_"))), None)
        if entry is None and any("exc_page_fault" in n for n in names):
            entry = "page fault"
        if entry is None:
            entry = next(("interrupt: " + n for n in names if n.startswith(("asm_sysvec_", "asm_common_interrupt"))), None)
        entries[entry or "other: " + names[0]] += 1
    return total, entries


def option(prefix):
    return next((a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith(prefix)), None)


def probe(binary, symbol):
    """A uprobe on `symbol` in `binary`; returns its event's name."""
    subprocess.run(["perf", "probe", "-q", "-x", binary, "--add", PROBE + "=" + symbol],
                   check=True, stdout=subprocess.DEVNULL)
    return PROBE


def main():
    sluice = sys.argv[1]
    kernel = "--kernel" in sys.argv[2:]
    drop_in = "--drop-in" in sys.argv[2:]
    args = [a for a in sys.argv[2:] if not a.startswith(("--callers=", "--count=")) and a not in ("--kernel", "--drop-in")]
    name = option("--callers=")
    count = option("--count=")
    records = int(args[0]) if args and "=" not in args[0] else 300_000
    extra = dict(arg.split("=", 1) for arg in args if "=" in arg)
    tls, endpoint = common.counting_endpoint("sluice-perf-tls-")
    burst = common.burst_frames(records, 1000)
    port = common.free_port()
    data = os.path.join(tempfile.mkdtemp(prefix="sluice-perf-"), "perf.data")
    env = common.sluice_env(tls, port, endpoint, "", extra)
    if drop_in:
        common.use_drop_in(env, os.path.dirname(data), port, endpoint)
    p = subprocess.Popen([sluice, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        common.wait_port(port)
        time.sleep(1)
        if count:
            sampling = ["-e", probe(sluice, count)]
        elif name:
            sampling = ["-F", "999", "--call-graph", "dwarf,16384"]
        elif kernel:
            sampling = ["-F", "4999", "-g"]
        else:
            sampling = ["-F", "2999"]
        perf = subprocess.Popen(["perf", "record", *sampling, "-o", data, "-p", str(p.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        common.send_counted(port, burst)
        delivered = common.wait_events(records)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    finally:
        p.terminate()
        p.wait(timeout=60)
        if count:
            subprocess.run(["perf", "probe", "-q", "--del", PROBE], stdout=subprocess.DEVNULL)
    if not delivered:
        raise SystemExit("the burst was not delivered")
    print("records=%d perf.data=%s" % (records, data))
    if count:
        calls = subprocess.run(["perf", "script", "-i", data, "-F", "event"],
                               capture_output=True, text=True, check=True).stdout.count(PROBE)
        print("calls of %s: %d" % (count, calls))
        return
    print("\n".join(report(data, "comm")))
    print("\n".join(report(data, "symbol")[:TOP]))
    if kernel:
        total, entries = kernel_entries(data)
        print("samples in the kernel, of %d, by way in:" % total)
        print("  %5.2f%%  all" % (100.0 * sum(entries.values()) / total))
        for entry, n in entries.most_common(TOP):
            print("  %5.2f%%  %s" % (100.0 * n / total, entry))
    if name:
        total, by_caller = callers(data, name)
        print("samples in %s, of %d, by caller:" % (name, total))
        for caller, n in by_caller.most_common(TOP):
            print("  %5.2f%%  %s" % (100.0 * n / total, caller))


if __name__ == "__main__":
    main()
