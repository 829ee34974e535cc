"""Snapshot generation: failures recorded, resume computes only what is missing, SIGKILL-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from rom.errors import ConvergenceError, ParameterError, RomError, StoreError
from rom.parameters import ParameterSpace
from rom.pod import pod, pod_streaming, pod_two_level, projection_error
from rom.snapshots import generate
from rom.store import DONE, FAILED, SnapshotStore, array_hash

# The toy problem: u(x; a, b) = exp(-a x) sin(b x) on 200 points, with a Newton-like failure for b > 9.
TOY = '''
import time
import numpy as np
from rom.errors import ConvergenceError
from rom.parameters import ParameterSpace

class Toy:
    def __init__(self, n=200, sleep=0.0, log=None, steps=0):
        self.parameter_space = ParameterSpace({"a": (0.5, 2.0), "b": (1.0, 10.0, "log")})
        self.x = np.linspace(0.0, 1.0, n)
        self.sleep, self.log, self.steps = sleep, log, steps
        self.calls = 0
        if steps:
            self.times = np.linspace(0.0, 1.0, steps)

    def solve(self, mu):
        self.calls += 1
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{mu[0]!r} {mu[1]!r}\\n")
        time.sleep(self.sleep)
        a, b = mu
        if b > 9.0:
            raise ConvergenceError(f"Newton diverged for b = {b:.3f}", history=[1.0, 10.0])
        u = np.exp(-a * self.x) * np.sin(b * self.x)
        if self.steps:
            return np.exp(-np.outer(self.times, np.full_like(self.x, a))) * u
        return u
'''
namespace: dict = {}
exec(TOY, namespace)
Toy = namespace["Toy"]


def sample(m=30, seed=1):
    return Toy().parameter_space.lhs(m, seed=seed)


def test_generate_records_failures_and_continues(tmp_path):
    P = sample()
    toy = Toy()
    rep = generate(toy, P, tmp_path / "s.h5", progress=False, case="toy", options={"sampler": "lhs"})
    bad = np.flatnonzero(P[:, 1] > 9.0)
    assert bad.size >= 1 and toy.calls == 30
    assert rep.n_failed == bad.size and rep.n_done == 30 - bad.size and rep.n_computed == 30
    with SnapshotStore(tmp_path / "s.h5") as s:
        assert np.array_equal(np.flatnonzero(s.status == FAILED), bad)
        assert all("Newton diverged" in msg for msg in s.failures().values())
        x = np.linspace(0, 1, 200)
        i = int(np.flatnonzero(s.done)[0])
        np.testing.assert_allclose(s.snapshots([i])[:, 0], np.exp(-P[i, 0] * x) * np.sin(P[i, 1] * x), rtol=1e-15)
        assert s.attrs["case"] == "toy" and s.attrs["options"] == {"sampler": "lhs"}
    assert "failed #" in str(rep)


def test_resume_computes_only_missing(tmp_path):
    P = sample()
    path = tmp_path / "s.h5"
    generate(Toy(), P, path, progress=False)
    with SnapshotStore(path, "r+") as s:
        s.reset([0, 5, 7])
    toy = Toy()
    rep = generate(toy, P, path, progress=False)
    assert toy.calls == 3 and rep.n_computed == 3
    toy = Toy()
    generate(toy, P, path, progress=False, retry_failed=True)
    assert toy.calls == int(np.sum(P[:, 1] > 9.0))
    with pytest.raises(StoreError, match="another parameter sample"):
        generate(Toy(), sample(seed=2), path, progress=False)


class MeshedToy(Toy):
    """The toy with a mesh (hashed into the store's identity) and a choice of parameter box."""

    def __init__(self, cells=2, b_max=10.0, **kw):
        super().__init__(**kw)
        from solvers.mesh import rectangle

        self.mesh = rectangle(cells, cells)
        self.parameter_space = ParameterSpace({"a": (0.5, 2.0), "b": (1.0, b_max, "log")})


def test_resume_refuses_another_model_naming_the_differences(tmp_path):
    P = sample(10)
    path = tmp_path / "s.h5"
    generate(MeshedToy(), P, path, progress=False, case="toy", options={"n": 200})
    with SnapshotStore(path, "r+") as s:
        s.reset([1, 2])
    before = (tmp_path / "s.h5").read_bytes()
    other_mesh = array_hash(MeshedToy(cells=3).mesh.points, MeshedToy(cells=3).mesh.cells)[:12]
    same_mesh = array_hash(MeshedToy().mesh.points, MeshedToy().mesh.cells)[:12]
    refusals = [
        (MeshedToy(), {"case": "toy", "options": {"n": 100}}, r"option n: store 200, now 100"),
        (MeshedToy(), {"case": "other", "options": {"n": 200}}, r"case: store 'toy', now 'other'"),
        (MeshedToy(), {"case": "toy", "options": {"n": 200, "degree": 2}}, r"option degree: store '\(unset\)', now 2"),
        (MeshedToy(cells=3), {"case": "toy", "options": {"n": 200}},
         f"mesh_hash: store {same_mesh}, now {other_mesh}"),
        (MeshedToy(b_max=12.0), {"case": "toy", "options": {"n": 200}},
         r'parameter_space: store .*"upper": 10.0}}, now .*"upper": 12.0}}'),
    ]
    for toy, kw, message in refusals:
        with pytest.raises(StoreError, match="another full-order model; refusing to mix them: " + message):
            generate(toy, P, path, progress=False, **kw)
        assert toy.calls == 0
    # a model whose identity is all equal but whose fields are not: refused at its first result
    toy = MeshedToy(n=150)
    with pytest.raises(StoreError, match=r"returned shape \(150,\); the snapshots in .* have \(200,\): "
                                         "it holds another full-order model"):
        generate(toy, P, path, progress=False, case="toy", options={"n": 200})
    assert toy.calls == 1 and (tmp_path / "s.h5").read_bytes() == before
    toy = MeshedToy()
    rep = generate(toy, P, path, progress=False, case="toy", options={"n": 200})
    assert toy.calls == 2 and rep.n_done + rep.n_failed == 10 and rep.warnings == []


def test_resume_by_another_romtk_version_warns_and_goes_on(tmp_path, caplog):
    P = sample(8)
    path = tmp_path / "s.h5"
    generate(Toy(), P, path, progress=False)
    with SnapshotStore(path, "r+") as s:
        s.reset([3])
    with h5py.File(path, "r+") as f:
        f.attrs["romtk_version"] = "0.0.1"
    toy = Toy()
    rep = generate(toy, P, path, progress=False)
    assert toy.calls == 1 and rep.n_computed == 1
    assert len(rep.warnings) == 1 and "was written by romtk 0.0.1; resuming it with romtk" in rep.warnings[0]
    assert rep.warnings[0] in [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "warning: " in str(rep)
    with SnapshotStore(path) as s:
        assert s.identity()["romtk_version"] == "0.0.1"  # the store keeps the version that made it


def test_time_series_then_two_level_pod(tmp_path):
    P = sample(12)
    P = P[P[:, 1] <= 9.0]
    generate(Toy(steps=15), P, tmp_path / "t.h5", progress=False)
    with SnapshotStore(tmp_path / "t.h5") as s:
        assert s.n_steps == 15 and s.times.shape == (15,)
        S = s.snapshots()
        assert S.shape == (200, 15 * len(P))
        Phi, sv = pod_two_level(s.iter_trajectories(), tol=1e-6)
        assert projection_error(S, Phi) <= 1e-6
        Phi_s, _ = pod_streaming(s.iter_blocks(3), tol=1e-6, overwrite_blocks=True)
        assert projection_error(S, Phi_s) <= 1e-6 * 1.01


def test_bad_inputs(tmp_path):
    P = sample(5)
    P[3, 0] = 7.0
    with pytest.raises(ParameterError, match=r"row 3: .*\ba\b.* = 7(\.0)? lies outside (its|the) box \[0\.5, 2(\.0)?\]"):
        generate(Toy(), P, tmp_path / "x.h5", progress=False)
    with pytest.raises(RomError, match="group_size"):
        generate(Toy(), sample(5), tmp_path / "x.h5", progress=False, group_size=0)
    with pytest.raises(RomError, match="not a problem"):
        generate(object(), sample(5), tmp_path / "x.h5", progress=False)
    bad = np.array([[1.0, 9.5], [1.5, 9.9]])
    with pytest.raises(RomError, match="every snapshot failed"):
        generate(Toy(), bad, tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()

    class NaNToy(Toy):
        def solve(self, mu):
            return np.full(200, np.nan) if mu[0] > 1.9 else super().solve(mu)

    rep = generate(NaNToy(), np.array([[1.0, 2.0], [1.95, 2.0]]), tmp_path / "n.h5", progress=False)
    assert rep.failures == {1: "the solution contains NaN or Inf"}


def test_progress_bar_runs(tmp_path, capsys):
    generate(Toy(), sample(4, seed=5)[:4] * [1, 0] + [0, 2.0], tmp_path / "p.h5", progress=True)
    assert "snapshots" in capsys.readouterr().err


SCRIPT = TOY + '''
import sys
from rom.snapshots import generate
P = Toy().parameter_space.lhs(40, seed=7)
generate(Toy(sleep=float(sys.argv[2]), log=sys.argv[3]), P, sys.argv[1], progress=False)
'''


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(tmp_path):
    script = tmp_path / "gen.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, ROMTK_MPI="0")
    killed, log = tmp_path / "killed.h5", tmp_path / "calls.log"
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.04", str(log)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 12):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(killed, "r") as f:  # the interrupted file opens as plain HDF5
        done_before = int(np.sum(f["status"][...] == DONE))
    assert 0 < done_before < 40
    with SnapshotStore(killed) as s:
        missing_before = s.missing.size
    log.unlink()
    subprocess.run([sys.executable, str(script), str(killed), "0", str(log)], env=env, check=True)
    assert len(log.read_text().splitlines()) == missing_before  # only the missing ones were computed
    full = tmp_path / "full.h5"
    subprocess.run([sys.executable, str(script), str(full), "0", str(tmp_path / "full.log")], env=env, check=True)
    with SnapshotStore(killed) as a, SnapshotStore(full) as b:
        np.testing.assert_array_equal(a.parameters, b.parameters)
        np.testing.assert_array_equal(a.status, b.status)
        assert a.failures() == b.failures()
        np.testing.assert_array_equal(a.snapshots(), b.snapshots())
