"""Grading on a real Dask cluster: `python -m grader --scheduler tcp://...` (grader/cluster.py).

A module fixture starts a real `dask scheduler` and three `dask worker`
processes (one thread each, no nanny) on 127.0.0.1 in a temporary folder, and
stops them after: two of this checkout, and one whose PYTHONPATH puts first a
copy of kflib with one comment added (another kflib). One small scratch course
of ps01 (the instructor's answers, an alternative correct solution, the
two-parts-wrong submission of tests/submissions/ps01-state-space/wrong.py, and
a notebook with one part left undone) is graded in separate copies:

1. on this machine, grader.pipeline.run with --jobs 2;
2. on the cluster: every submission graded exactly once, grades.csv equal,
   report.csv equal except the seconds and the notes, feedback pages identical
   byte for byte, and the grades of the instructor's answers, the alternative
   and wrong.py are the points read from the source notebook;
3. in that run the worker with the other kflib is refused with a line naming it
   and kflib (and nothing else), and gets no task: the two others grade;
4. killing a worker that holds tasks as soon as the first result has arrived,
   and starting a new one then: the run finishes, every submission is graded
   once, the killed worker's tasks were graded by the surviving checked worker
   (not by the refused one nor by the unchecked newcomer), and the grades equal
   the local run's.

Cheap checks: a scheduler that is not there and a cluster with no matching
worker are clear errors (RuntimeError: the command exits with status 2).
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import grading_cases as gc                      # noqa: E402

from grader import cluster, pipeline, work      # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
A, NB = gc.ASSIGNMENT, gc.NOTEBOOK
pytestmark = [pytest.mark.xdist_group("grading"), pytest.mark.slow]
TIMESTAMP = "2026-11-20 10:00:00.000000 UTC"   # every submission's, so grades.csv is reproducible


def points_of(test_cell: str) -> float:
    """A test cell's points, read from the instructor's source notebook."""
    src = nbformat.read(ROOT / "solutions" / A / f"{NB}.ipynb", 4)
    return float(next(gc.meta(c)["points"] for c in src.cells if gc.meta(c).get("grade_id") == test_cell))


FULL = sum(points_of(t) for t in ("test_cv_model", "test_simulate", "test_prior", "test_arima"))
WRONG = FULL - points_of("test_simulate") - points_of("test_prior")   # wrong.py: two parts wrong


def submissions() -> dict[str, bytes]:
    wrong, alt = gc.fragments("wrong.py"), gc.fragments("alternative.py")
    undone = {gid: c.source for c in gc.release().cells
              if gc.meta(c).get("solution") and (gid := gc.meta(c).get("grade_id")) == "arima"}
    nbs = {"ada": gc.with_answers(),
           "bob": gc.with_answers(simulate=wrong["simulate"], prior=wrong["prior"]),
           "cyd": gc.with_answers(**alt),
           "eve": gc.with_answers(**undone)}
    return {s: nbformat.writes(nb).encode() for s, nb in nbs.items()}


def build_course(root: Path, students: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder / A, root / folder / A)
    for student, data in submissions().items():
        if students is not None and student not in students:
            continue
        folder = root / "grading" / "submitted" / student / A
        folder.mkdir(parents=True)
        (folder / f"{NB}.ipynb").write_bytes(data)
        (folder / "timestamp.txt").write_text(TIMESTAMP)
    return root


class Hooked(io.StringIO):
    """The run's output; `on_line(line)` is called for every line as it is printed."""

    def __init__(self, on_line=None):
        super().__init__()
        self.on_line = on_line

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.on_line is not None:
            for line in text.splitlines():
                self.on_line(line)
        return n


class Graded:
    def __init__(self, root, summary, output, executor=None):
        self.root, self.summary, self.output, self.executor = root, summary, output, executor


def grade(root: Path, scheduler: str | None = None, on_line=None) -> Graded:
    """grader.pipeline.run on this course; with a scheduler, also the DaskExecutor it used."""
    made = []

    class Recording(cluster.DaskExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    stream = Hooked(on_line)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cluster, "DaskExecutor", Recording)
        summary = pipeline.run(pipeline.Options(root=root, jobs=2, timeout=10, scheduler=scheduler),
                               out=pipeline.Out(stream))
    assert (len(made) == 1) == (scheduler is not None)
    return Graded(root, summary, stream.getvalue(), made[0] if made else None)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def report(root: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "notes")}
            for r in read_csv(root / "grading" / "report.csv")]


def feedback_pages(root: Path) -> dict[str, bytes]:
    fb = root / "grading" / "feedback"
    return {str(p.relative_to(fb)): p.read_bytes() for p in sorted(fb.rglob("*.html"))}


def assert_each_graded_once(g: Graded, students: list[str]) -> None:
    rows = [(r.assignment, r.student) for r in g.summary.rows]
    assert sorted(rows) == sorted((A, s) for s in students), rows
    assert all(r.status == "graded" for r in g.summary.rows), [(r.student, r.status, r.flags)
                                                              for r in g.summary.rows]
    done = [ln.split(":")[0].split()[-1] for ln in g.output.splitlines()
            if ln.startswith("  [") and f"] {A} " in ln]
    assert sorted(done) == sorted(students), f"progress lines name each submission once: {done}"
    if g.executor is not None:
        assert sorted(s for _, s in g.executor.placements) == sorted(students), g.output


STUDENTS = sorted(submissions())


class Cluster:
    def __init__(self, c: cluster.LocalDaskCluster, odd: str):
        self.c, self.odd = c, odd
        self.address = c.address
        self.odd_address = c.address_of(odd)
        self.good = {c.address_of(n) for n in c.names() if n != odd}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    other = tmp_path_factory.mktemp("other-kflib")
    shutil.copytree(ROOT / "kflib", other / "kflib", ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "kflib" / "__init__.py", "a") as fh:
        fh.write("\n# another version of kflib\n")
    with cluster.local_cluster(2) as c:
        odd = c.start_worker(env={"PYTHONPATH": str(other)})
        yield Cluster(c, odd)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Graded:
    return grade(build_course(tmp_path_factory.mktemp("dask-local-course")))


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory, dask_cluster) -> Graded:
    return grade(build_course(tmp_path_factory.mktemp("dask-cluster-course")), dask_cluster.address)


# --------------------------------------------------------------------------


def test_local_run_grades(local_run):
    assert_each_graded_once(local_run, STUDENTS)
    grades = {r.student: r.grade for r in local_run.summary.rows}
    assert grades["ada"] == grades["cyd"] == FULL
    assert grades["bob"] == WRONG
    assert grades["eve"] < FULL


def test_cluster_grades_every_submission_once(dask_run, dask_cluster):
    assert_each_graded_once(dask_run, STUDENTS)
    assert "on the Dask cluster at " + dask_cluster.address in dask_run.output
    assert set(dask_run.executor.placements.values()) <= dask_cluster.good


def test_cluster_equals_local(dask_run, local_run):
    assert read_csv(dask_run.root / "grading" / "grades.csv") == read_csv(local_run.root / "grading" / "grades.csv")
    assert report(dask_run.root) == report(local_run.root)
    local_pages = feedback_pages(local_run.root)
    assert sorted(local_pages) == sorted(f"{s}/{A}/{NB}.html" for s in STUDENTS)
    assert feedback_pages(dask_run.root) == local_pages
    grades = {r.student: r.grade for r in dask_run.summary.rows}
    assert grades["ada"] == grades["cyd"] == FULL and grades["bob"] == WRONG


def test_unreachable_scheduler_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]            # closed again: nothing listens there
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(RuntimeError, match="cannot connect to the Dask scheduler at " + address):
        cluster.DaskExecutor(address, pipeline.Out(io.StringIO()), connect_timeout=2)


def test_command_exits_2_when_the_scheduler_is_unreachable(tmp_path, monkeypatch, capsys):
    from grader import cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2)
    root = build_course(tmp_path / "course", ["ada"])
    assert cli.main(["--course", str(root), "--scheduler", address, "--timeout", "10"]) == 2
    assert f"grading failed: cannot connect to the Dask scheduler at {address}" in capsys.readouterr().err
    assert not (root / "grading" / "grades.csv").exists()


def test_no_matching_worker_is_an_error(dask_cluster, tmp_path):
    """A task planned for another environment than every worker's is not submitted."""
    out = io.StringIO()
    ex = cluster.DaskExecutor(dask_cluster.address, pipeline.Out(out))
    try:
        task = work.Task(A, "ada", {}, "k", "0" * 64, str(ROOT), {})
        with pytest.raises(RuntimeError, match=f"no worker of the Dask cluster at .* may grade {A}"):
            list(ex.run([task]))
        assert not ex.placements and not ex.futures
    finally:
        ex.close()
    assert out.getvalue().count("REFUSED: Dask worker") == len(dask_cluster.c.names()) == 3


def test_worker_with_another_kflib_is_refused(dask_run, dask_cluster):
    odd = dask_cluster.odd_address
    refusals = [ln for ln in dask_run.output.splitlines() if ln.startswith("REFUSED")]
    assert len(refusals) == 1, dask_run.output
    assert f"{odd} ({dask_cluster.odd})" in refusals[0] and f"may not grade {A}" in refusals[0]
    assert "kflib (tree" in refusals[0] and "grader (tree" not in refusals[0] \
        and "assignment (tree" not in refusals[0] and "versions" not in refusals[0], refusals[0]
    assert set(dask_run.executor.refused) == {(odd, A)}
    assert odd not in dask_run.executor.placements.values()
    assert len(set(dask_run.executor.placements.values())) == 2, "both checked workers graded"


def test_killing_a_worker_loses_nothing(dask_cluster, local_run, tmp_path):
    students = ["ada", "bob", "eve"]
    c, events = dask_cluster.c, {}

    def on_line(line: str) -> None:
        # as soon as the first result has arrived: kill a checked worker that holds
        # tasks, and start a new worker (it joins during the run, unchecked)
        if events or not line.startswith("  [1/"):
            return
        busy = {w: keys for w, keys in c.client.processing().items() if keys}
        assert set(busy) <= dask_cluster.good, busy
        assert busy, "a worker holds tasks when the first result arrives"
        addr = sorted(busy)[0]
        events["killed"], events["keys"] = addr, list(busy[addr])
        c.kill_worker(next(n for n in c.names() if c.address_of(n) == addr))
        events["newcomer"] = c.address_of(c.start_worker())

    g = grade(build_course(tmp_path / "course", students), dask_cluster.address, on_line)
    assert events, "a worker was killed during the run"
    assert_each_graded_once(g, students)
    survivor = (dask_cluster.good - {events["killed"]}).pop()
    lost = [s for s in students if any(f"-{s}-" in k for k in events["keys"])]
    assert lost, events
    for s in lost:
        assert g.executor.placements[(A, s)] == survivor, "re-run on the surviving checked worker"
    assert set(g.executor.placements.values()) <= {survivor, events["killed"]}
    local = {r["student_id"]: r for r in read_csv(local_run.root / "grading" / "grades.csv")}
    assert read_csv(g.root / "grading" / "grades.csv") == [local[s] for s in students]
    assert report(g.root) == [r for r in report(local_run.root) if r["student"] in students]


def test_tasks_go_to_a_new_checked_worker_when_all_checked_ones_are_gone(dask_cluster, local_run, tmp_path):
    c, events = dask_cluster.c, {}

    def on_line(line: str) -> None:
        # right after the task was submitted: kill every worker it may run on, start a new one
        if events or not line.startswith(f"  {A}: 1 task(s) on "):
            return
        events["killed"] = [n for n in c.names() if n != dask_cluster.odd]
        for n in events["killed"]:
            c.kill_worker(n)
        events["newcomer"] = c.address_of(c.start_worker())

    g = grade(build_course(tmp_path / "course", ["ada"]), dask_cluster.address, on_line)
    assert events and events["killed"], g.output
    assert "every checked worker left; 1 task(s) go to newly checked worker(s) " in g.output
    assert_each_graded_once(g, ["ada"])
    assert g.executor.placements == {(A, "ada"): events["newcomer"]}
    local = {r["student_id"]: r for r in read_csv(local_run.root / "grading" / "grades.csv")}
    assert read_csv(g.root / "grading" / "grades.csv") == [local["ada"]]
