"""benchmarks/peak_rss.py, what every benchmark that prints memory measures with: the peak of a whole
process tree (the RSS of a process and all its descendants, summed), which counts what ``ru_maxrss``
misses: the largest single process is not the sum, and a parent's own high-water mark holds none of
its children's allocations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from peak_rss import PeakRSS, run_measured  # noqa: E402

MIB = 2**20

# a child that allocates (and touches) MB MiB, says so on stdout, then holds it until a line on stdin
HOLDER = """
import sys
block = bytearray({mb} << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("ready", flush=True)
sys.stdin.readline()
"""

# two such children at once, released after both are ready and a while has passed; then the
# parent's own high-water mark and the largest of its waited-for children's, as ru_maxrss has them
TWO_HOLDERS = """
import json, resource, subprocess, sys, time
kids = [subprocess.Popen([sys.executable, "-c", {code!r}], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)]
assert [kid.stdout.readline() for kid in kids] == ["ready\\n"] * 2
time.sleep(1.0)
for kid in kids:
    kid.communicate("go\\n")
print(json.dumps({{"self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}}))
"""


def test_the_tree_peak_counts_a_childs_allocation_that_the_parents_high_water_mark_misses():
    with PeakRSS(tree=True, every=0.05) as mem:
        kid = subprocess.Popen([sys.executable, "-c", HOLDER.format(mb=200)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        assert kid.stdout.readline() == "ready\n"
        tree, alone = mem.sample(), PeakRSS().sample()  # the child holds its 200 MiB now
        kid.communicate("go\n")
    assert kid.returncode == 0
    assert mem.peak - mem.start_rss >= 200 * MIB
    assert tree - alone >= 200 * MIB  # this process alone (what its ru_maxrss counts) holds none of it


def test_run_measured_sums_a_commands_tree_where_ru_maxrss_has_the_largest_process():
    done = run_measured([sys.executable, "-c", TWO_HOLDERS.format(code=HOLDER.format(mb=100))],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, every=0.01)
    assert done.returncode == 0, done.stderr
    maxrss = json.loads(done.stdout)
    assert done.peak >= 200 * MIB  # both children's 100 MiB at once, and the parent's own
    # (the command's own ru_maxrss is not asserted: a process forked from a large one, a pytest worker of
    # 2 GB, starts with that one's high-water mark, so it says nothing of the command's tree)
    assert set(maxrss) == {"self_kib", "children_kib"}
    assert done.cpu > 0 and done.seconds > 0


def test_run_measured_passes_input_and_returns_a_failures_outcome():
    done = run_measured([sys.executable, "-c", "import sys; data = sys.stdin.read(); print(data.upper());"
                         " print('oops', file=sys.stderr); sys.exit(3)"],
                        input=b"hello", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (3, b"HELLO", b"oops")
    assert done.peak > 0


def test_an_excluded_child_is_left_out_of_the_tree():
    kid = subprocess.Popen([sys.executable, "-c", HOLDER.format(mb=200)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert kid.stdout.readline() == "ready\n"
        with_kid, without = PeakRSS(tree=True).sample(), PeakRSS(tree=True, exclude=(kid.pid,)).sample()
    finally:
        kid.communicate("go\n")
    assert with_kid - without >= 200 * MIB
