"""Issue 75, 11: the first run of a fresh install (``pip install`` runs nothing after it) compiles numba's
kernels beside the run and says so, once; ``python -m m5data.warm`` marks the cache warm."""

import sys

from m5data import warm


def test_a_cold_cache_is_warmed_beside_the_run_once_and_waited_for(tmp_path, monkeypatch, capsys):
    from m5data.console import console

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert warm.marker().parent == tmp_path / "numba" and not warm.is_warm()
    # a stand-in for `python -m m5data.warm` (its ~65 CPU-s are not this test's subject): it marks the cache
    # warm a moment after the run's own work has ended, so the run must wait for it
    stand_in = [sys.executable, "-c", f"import time; time.sleep(1); open({str(warm.marker())!r}, 'w').write('x')"]
    # the console's own attribute, not its ``file`` property: undoing a property's setattr would pin the console
    # to the stream capsys closes after this test (every later console print of this worker then fails)
    monkeypatch.setattr(console, "_file", sys.stdout)
    with warm.beside_the_run(stand_in):
        ran = True
    assert ran and warm.is_warm()  # waited for: the marker is there when the block has ended
    said = " ".join(capsys.readouterr().out.split())
    assert "numba kernels are being compiled beside it, once" in said
    with warm.beside_the_run([sys.executable, "-c", "raise SystemExit(3)"]):
        pass
    assert "compiled beside it" not in capsys.readouterr().out  # warm: nothing started, nothing said


def test_the_marker_names_what_numba_keys_its_cache_on(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "a"))
    first = warm.marker()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "b"))
    assert warm.marker().name == first.name and warm.marker().parent == tmp_path / "b"
    monkeypatch.setattr(sys, "executable", sys.executable + "-other")  # another interpreter: another cache
    assert warm.marker().name != first.name
