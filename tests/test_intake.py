"""Intake of real LMS downloads (grader/intake.py), and the reports and feedback of `make grade`.

Fast tests first: the parsing of file names, the grouping into attempts and the
rule that picks one, without nbgrader. Then one scratch course graded by the
real command (`python -m grader`, what `make grade` runs), built to cover many
cases at once: a Canvas, a Moodle, a Blackboard and a plain download with late
files, resubmissions, duplicates of one name, a student's own zip, nested zips,
an NFD name, files nobody can be named for, a withdrawn and a hand-placed
submission, ps01 and ps02, and a gradebook at a configured db_url of its own.
It is graded twice: all of it, then ps01 alone after a new download arrives.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import sys
import unicodedata
import zipfile
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import grading_cases as gc                      # noqa: E402

from grader import intake, nbg                   # noqa: E402
from grader.intake import Attempt, Parsed, parse_name, pick, split_attempt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
A1, NB1 = "ps01-state-space", "ps01-state-space"
A2, NB2 = "ps02-kalman-filter", "ps02-kalman-filter"
pytestmark = [pytest.mark.xdist_group("grading"), pytest.mark.slow]


# --------------------------------------------------------------------------
# parsing file names (no nbgrader)


@pytest.mark.parametrize("parts, want", [
    (("doejane_12345_678_ps02-kalman-filter.ipynb",),
     dict(student="doejane", lms="canvas", filename="ps02-kalman-filter.ipynb", attempt=0, late=False)),
    (("doejane_LATE_12345_679_ps02-kalman-filter-1.ipynb",),
     dict(student="doejane", lms="canvas", filename="ps02-kalman-filter.ipynb", attempt=1, late=True)),
    (("doejane_12345_680_ps02-kalman-filter-12.ipynb",), dict(attempt=12, order=(680,))),
    (("Jane Doe_4242_assignsubmission_file_", "ps02-kalman-filter.ipynb"),
     dict(student="Jane_Doe", lms="moodle", filename="ps02-kalman-filter.ipynb", container=True)),
    (("Jane  Doe_4242_assignsubmission_file_my work.ipynb",),
     dict(student="Jane_Doe", lms="moodle", filename="my work.ipynb")),
    (("PS 02_jdoe_attempt_2026-11-02-22-11-12_ps02-kalman-filter.ipynb",),
     dict(student="jdoe", lms="blackboard", filename="ps02-kalman-filter.ipynb",
          timestamp=datetime(2026, 11, 2, 22, 11, 12), receipt=False)),
    (("PS 02_jdoe_attempt_2026-11-02-22-11-12.txt",), dict(student="jdoe", receipt=True)),
    (("doejane_ps02-kalman-filter.ipynb",),
     dict(student="doejane", lms="plain", filename="ps02-kalman-filter.ipynb", attempt=None)),
    (("jane_doe_ps02-kalman-filter (2).ipynb",), dict(student="jane_doe", lms="plain", attempt=2)),
    (("doejane", "ps02-kalman-filter", "anything.ipynb"),
     dict(student="doejane", lms="nbgrader", filename="anything.ipynb")),
])
def test_parse_name(parts, want):
    got = parse_name(parts, A2, NB2)
    assert isinstance(got, Parsed), got
    for k, v in want.items():
        assert getattr(got, k) == v, (k, got)


@pytest.mark.parametrize("parts, why", [
    (("ps02-kalman-filter.ipynb",), "matches none of the layouts"),
    (("notes.txt",), "matches none of the layouts"),
    (("..bad_12_34_x.ipynb",), "not usable"),
])
def test_unattributable_names_say_why(parts, why):
    got = parse_name(parts, A2, NB2)
    assert isinstance(got, str) and why in got


def test_names_are_nfc():
    nfd = unicodedata.normalize("NFD", "josé")
    assert nfd != "josé"
    for name in (f"{nfd}_1_2_x.ipynb", f"{nfd}_ps02-kalman-filter.ipynb"):
        assert parse_name((name,), A2, NB2).student == "josé"
    assert intake.student_id(f"  {nfd}  Núñez ") == "josé_Núñez"


def test_split_attempt():
    assert split_attempt("ps02-1.ipynb") == ("ps02.ipynb", 1)
    assert split_attempt("ps02 (3).ipynb") == ("ps02.ipynb", 3)
    assert split_attempt("ps02.ipynb") == ("ps02.ipynb", None)
    assert split_attempt("-1.ipynb") == ("-1.ipynb", None)


# --------------------------------------------------------------------------
# the rule that picks an attempt


def att(n=None, ts=None, late=False, order=(), name=f"{NB2}.ipynb", data=b"x"):
    return Attempt("s", "canvas", {name: data}, [f"f{n}{ts}{data!r}"], n, ts, late, "", order,
                   notebook_name=name)


def test_pick_latest_first_and_on_time():
    a0, a1, a2 = att(0, data=b"0"), att(1, data=b"1"), att(2, late=True, data=b"2")
    assert pick([a2, a0, a1], "latest", NB2)[0] is a2
    assert pick([a2, a0, a1], "first", NB2)[0] is a0
    assert pick([a2, a0, a1], "latest-on-time", NB2)[0] is a1
    assert pick([a2], "latest-on-time", NB2)[0] is a2           # all late: the latest
    t1, t2 = datetime(2026, 1, 1), datetime(2026, 1, 2)
    assert pick([att(ts=t2, data=b"b"), att(ts=t1, data=b"a")], "latest", NB2)[0].timestamp == t2
    # the same attempt number: Canvas' file id decides
    assert pick([att(0, order=(9,), data=b"a"), att(0, order=(7,), data=b"b")], "latest", NB2)[0].order == (9,)


def test_pick_prefers_the_expected_name_and_never_guesses():
    right, other = att(0, data=b"r"), att(5, name="scratch.ipynb", data=b"s")
    assert pick([right, other], "latest", NB2)[0] is right
    chosen, why = pick([att(data=b"a"), att(data=b"b")], "latest", NB2)
    assert chosen is None and "cannot tell apart" in why
    chosen, why = pick([Attempt("s", "canvas", {"r.pdf": b"%PDF"}, ["r.pdf"])], "latest", NB2)
    assert chosen is None and why == "no notebook submitted"
    with pytest.raises(ValueError, match="unknown attempt rule"):
        pick([right], "newest", NB2)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_reading_a_download_attributes_every_file(tmp_path):
    """Nested zips, a student's own zip, junk, a broken zip: every file accounted for."""
    nb = b'{"cells": []}'
    own = zip_bytes({"ps02-kalman-filter.ipynb": nb, "sub/helper.py": b"x = 1"})
    inner = zip_bytes({"evae_7_8_ps02-kalman-filter.ipynb": nb})
    bulk = zip_bytes({"doejane_1_2_mywork.zip": own, "more/inner.zip": inner,
                      "__MACOSX/._x": b"", "stray.ipynb": nb, "broken.zip": b"PK\x03\x04nope"})
    (tmp_path / "bulk.zip").write_bytes(bulk)
    items, problems, ignored = intake.read(tmp_path, A2, NB2)
    by_student, unattributed, n = intake.attempts_of(items, A2, NB2, None)
    assert sorted(by_student) == ["doejane", "evae"]
    (own_attempt,) = by_student["doejane"]
    assert sorted(own_attempt.files) == ["helper.py", "ps02-kalman-filter.ipynb"]
    assert own_attempt.notebook_name == "ps02-kalman-filter.ipynb"
    reasons = {p.origin.split("!")[-1]: p.reason for p in problems + unattributed}
    assert set(reasons) == {"stray.ipynb", "broken.zip"}, reasons
    assert "not a readable zip" in reasons["broken.zip"]
    assert [p.origin for p in ignored] == ["bulk.zip!__MACOSX/._x"]


def test_two_files_of_one_name_are_two_attempts(tmp_path):
    """Canvas' file names differ (ids, LATE) but name the same file: two attempts, the
    later file id graded -- not one attempt holding both."""
    (tmp_path / "c.zip").write_bytes(zip_bytes({f"bertb_102_9003_{NB2}.ipynb": b'{"cells": [1]}',
                                               f"bertb_LATE_102_9004_{NB2}.ipynb": b'{"cells": [2]}'}))
    items, problems, _ = intake.read(tmp_path, A2, NB2)
    by_student, _, _ = intake.attempts_of(items, A2, NB2, None)
    first, second = by_student["bertb"]
    assert (first.order, first.late, second.order, second.late) == ((9003,), False, (9004,), True)
    assert list(second.files) == [f"{NB2}.ipynb"] and second.files[f"{NB2}.ipynb"] == b'{"cells": [2]}'
    assert pick(by_student["bertb"], "latest", NB2)[0] is second
    assert pick(by_student["bertb"], "latest-on-time", NB2)[0] is first


def test_settings_file(tmp_path):
    cfg = tmp_path / "intake.toml"
    cfg.write_text('rule = "first"\n[due]\nps02-kalman-filter = 2026-11-02T23:59:00\n'
                   '[choose.ps02-kalman-filter]\ndoejane = "abc123"\nroe = "withdraw"\n')
    s = intake.load_settings(cfg)
    assert s.rule == "first" and s.due[A2] == datetime(2026, 11, 2, 23, 59)
    assert s.choose[A2] == {"doejane": "abc123", "roe": "withdraw"}
    assert intake.load_settings(cfg, "latest").rule == "latest"
    cfg.write_text('rule = "newest"\n')
    with pytest.raises(ValueError, match="unknown attempt rule"):
        intake.load_settings(cfg)


# --------------------------------------------------------------------------
# the scratch course, graded by `python -m grader`

CANVAS_LATE_NAME = f"bertb_LATE_102_9004_{NB1}.ipynb"


def nb_bytes(nb) -> bytes:
    return nbformat.writes(nb).encode()


def ps01_correct():
    return nb_bytes(gc.with_answers())


def ps01_wrong():                                # (b) wrong: 8 / 10
    return nb_bytes(gc.with_answers(simulate=gc.fragments("wrong.py")["simulate"]))


PREDICT_LATE = '''
def kalman_filter_loglik(F, H, Q, R, x0, P0, y):
    F, H, Q, R, x, P, y = (np.asarray(a, dtype=float) for a in (F, H, Q, R, x0, P0, y))
    T, m = y.shape
    xs, Ps, ll = np.empty((T, len(x))), np.empty((T, len(x), len(x))), 0.0
    for t in range(T):                       # update first, then predict: one step behind
        S = H @ P @ H.T + R
        K = P @ H.T @ np.linalg.inv(S)
        nu = y[t] - H @ x
        ll += -0.5 * (m * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + nu @ np.linalg.solve(S, nu))
        x = x + K @ nu
        P = P - K @ H @ P
        xs[t], Ps[t] = x, P
        x = F @ x
        P = F @ P @ F.T + Q
    return xs, Ps, float(ll)
'''


def ps02_notebook(**changes) -> bytes:
    src = nbformat.read(ROOT / "solutions" / A2 / f"{NB2}.ipynb", 4)
    answers = {gc.meta(c)["grade_id"]: "\n".join(ln for ln in c.source.splitlines()
                                                 if ln.strip() not in gc.SOLUTION_MARKERS)
               for c in src.cells if gc.meta(c).get("solution") and not gc.meta(c).get("grade")}
    rel = nbformat.read(ROOT / "exercises" / A2 / f"{NB2}.ipynb", 4)
    return nb_bytes(gc.fill({**answers, **changes}, rel))


NFD_JOSE = unicodedata.normalize("NFD", "josé")
# student -> (grade, status, flags) of ps01
EXPECT_PS01 = {
    "bertb": (8, "graded", {"late"}),             # Canvas: two files of one name, the later one LATE
    "carlc": (10, "graded", set()),               # Canvas: the student's own zip, inside a zip
    "josé": (10, "graded", {"late"}),             # Canvas, NFD name: a first try, then a LATE -1
                                                  # resubmission in another download with the NFC name
    "kim": (0, "not graded", {"empty"}),          # Canvas: a PDF only
    "Eva_Evans": (10, "graded", set()),           # Moodle: a folder per student
    "gina": (10, "graded", {"late"}),             # Blackboard: two attempts, the second after the due date
    "hugo": (8, "graded", set()),                 # plain: a file, and a later "(1)" copy in a zip
    "lena": (None, "not graded", {"ambiguous"}),  # two plain files of one name, nothing tells them apart
    "mona": (None, "withdrawn", set()),           # withdrawn in grading/intake.toml
    "nils": (8, "graded", set()),                 # attempt chosen in grading/intake.toml (the first)
    "otto": (10, "graded", set()),                # placed by hand; its Canvas download is not used
}
UNATTRIBUTED = {"stray-copy.ipynb", "notes.txt", "broken.zip"}


def build_course(root: Path) -> None:
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    for a in (A1, A2):
        for folder in ("solutions", "exercises"):
            shutil.copytree(ROOT / folder / a, root / folder / a)
    # the gradebook somewhere else than nbgrader_config.py's default
    with open(root / "nbgrader_config.py", "a") as fh:
        fh.write(f"\nc.CourseDirectory.db_url = {'sqlite:///' + str(root / 'db' / 'gb.sqlite')!r}\n")
    (root / "db").mkdir()
    dl = root / "grading" / "downloaded" / A1 / "archive"
    dl.mkdir(parents=True)
    t0 = (2026, 11, 1, 10, 0, 0)
    canvas = {
        f"bertb_102_9003_{NB1}.ipynb": ps01_correct(),
        CANVAS_LATE_NAME: ps01_wrong(),
        "inner/second-page.zip": zip_bytes({"carlc_103_9005_submission.zip": zip_bytes(
            {f"{NB1}.ipynb": ps01_correct(), f".ipynb_checkpoints/{NB1}-checkpoint.ipynb": ps01_wrong()})}),
        f"{NFD_JOSE}_105_9007_{NB1}.ipynb": ps01_wrong(),
        "kim_106_9011_report.pdf": b"%PDF-1.4 not a notebook",
        f"otto_107_9012_{NB1}.ipynb": ps01_wrong(),
        "stray-copy.ipynb": ps01_correct(),
        "broken.zip": b"PK\x03\x04 cut short",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in canvas.items():
            z.writestr(zipfile.ZipInfo(name, t0), data)
    (dl / "canvas-submissions.zip").write_bytes(buf.getvalue())
    (dl / "canvas-more.zip").write_bytes(zip_bytes({f"josé_LATE_105_9020_{NB1}-1.ipynb": ps01_correct()}))
    (dl / "moodle.zip").write_bytes(zip_bytes({
        f"Eva Evans_201_assignsubmission_file_/{NB1}.ipynb": ps01_correct()}))
    bb = dl / "blackboard"
    bb.mkdir()
    for ts, data in (("2026-11-01-10-00-00", ps01_wrong()), ("2026-11-03-09-00-00", ps01_correct())):
        (bb / f"PS01_gina_attempt_{ts}_{NB1}.ipynb").write_bytes(data)
        (bb / f"PS01_gina_attempt_{ts}.txt").write_text(f"Name: Gina Gray (gina)\nDate Submitted: {ts}\n")
    (dl / f"hugo_{NB1}.ipynb").write_bytes(ps01_correct())
    (dl / "notes.txt").write_text("grading notes\n")
    (dl / "plain.zip").write_bytes(zip_bytes({f"hugo_{NB1} (1).ipynb": ps01_wrong(),
                                              f"mona_{NB1}.ipynb": ps01_correct(),
                                              f"nils_{NB1}.ipynb": ps01_wrong(),
                                              f"nils_{NB1}-1.ipynb": ps01_correct()}))
    for i, data in enumerate((ps01_correct(), ps01_wrong())):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(zipfile.ZipInfo(f"lena_{NB1}.ipynb", t0), data)
        (dl / f"lena-{i}.zip").write_bytes(buf.getvalue())
    hand = root / "grading" / "submitted" / "otto" / A1
    hand.mkdir(parents=True)
    (hand / f"{NB1}.ipynb").write_bytes(ps01_correct())
    nils_first = intake.Attempt("nils", "plain", {f"{NB1}.ipynb": ps01_wrong()}, []).id
    (root / "grading" / "intake.toml").write_text(
        f'rule = "latest"\n[due]\n{A1} = 2026-11-02T23:59:00\n'
        f'[choose.{A1}]\nmona = "withdraw"\nnils = "{nils_first}"\n')
    # ps02: two students by hand, one from a Canvas download; the others never submitted it
    for student, data in (("otto", ps02_notebook()), ("hugo", ps02_notebook(filter=PREDICT_LATE))):
        folder = root / "grading" / "submitted" / student / A2
        folder.mkdir(parents=True)
        (folder / f"{NB2}.ipynb").write_bytes(data)
    dl2 = root / "grading" / "downloaded" / A2 / "archive"
    dl2.mkdir(parents=True)
    (dl2 / f"pia_301_9100_{NB2}.ipynb").write_bytes(ps02_notebook(filter=PREDICT_LATE))


def make_grade(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "--course", str(root), "--jobs", "2",
                           "--timeout", "10", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1500)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


class Course:
    def __init__(self, root, first, second, report1, grades1, intake1):
        self.root, self.first, self.second = root, first, second
        self.report1, self.grades1, self.intake1 = report1, grades1, intake1


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    root = tmp_path_factory.mktemp("lms-course")
    build_course(root)
    originals = {p: p.read_bytes() for p in (root / "grading").rglob("*") if p.is_file()}
    first = make_grade(root)
    (tmp_path_factory.getbasetemp() / "lms-first-run.txt").write_text(first.stdout + first.stderr)
    report1 = read_csv(root / "grading" / "report.csv")
    grades1 = (root / "grading" / "grades.csv").read_bytes()
    intake1 = read_csv(root / "grading" / "intake.csv")
    for p, data in originals.items():
        assert p.read_bytes() == data, f"{p} changed"
    # a new download arrives: pia's resubmission of ps02; ps02 is graded again alone
    (root / "grading" / "downloaded" / A2 / "archive" / "canvas-later.zip").write_bytes(
        zip_bytes({f"pia_301_9130_{NB2}-1.ipynb": ps02_notebook()}))
    second = make_grade(root, A2)
    (tmp_path_factory.getbasetemp() / "lms-second-run.txt").write_text(second.stdout + second.stderr)
    for p, data in originals.items():
        assert p.read_bytes() == data, f"{p} changed"
    return Course(root, first, second, report1, grades1, intake1)


def rows_of(report: list[dict], assignment: str) -> dict[str, dict]:
    return {r["student"]: r for r in report if r["assignment"] == assignment and r["status"] != "not attributed"}


@pytest.mark.parametrize("student", sorted(EXPECT_PS01))
def test_lms_layouts_grade_and_flags(course, student):
    grade, status, flags = EXPECT_PS01[student]
    row = rows_of(course.report1, A1)[student]
    assert row["status"] == status, row
    assert (float(row["grade"]) if row["grade"] else None) == grade, row
    assert set(filter(None, row["flags"].split(";"))) == flags, row


def test_every_unattributed_file_is_reported_and_the_exit_status_says_so(course):
    lost = [r for r in course.report1 if r["status"] == "not attributed"]
    assert {r["source"].split("!")[-1] for r in lost} == UNATTRIBUTED, lost
    assert all(r["flags"] == "unattributed" and r["reasons"] for r in lost)
    assert course.first.returncode == 1, course.first.stdout[-3000:] + course.first.stderr[-3000:]
    last = course.first.stdout.strip().splitlines()[-1]
    assert last.startswith("make grade: FAILED for some:") and "3 downloaded file(s) could not be attributed" in last
    assert "2 submission(s) could not be graded" in last                      # kim, lena
    assert "Could not attribute 3 downloaded file(s)" in course.first.stdout


def test_intake_counts_and_attempts_kept(course):
    m = re.search(rf"{A1}: intake: (\d+) files .*?, (\d+) attributed, (\d+) not attributed; (\d+) students",
                  course.first.stdout)
    assert m, course.first.stdout[:3000]
    # 21 files (the checkpoint copy in carlc's zip is ignored) and the broken zip; of the
    # 21, stray-copy.ipynb and notes.txt cannot be attributed
    assert tuple(map(int, m.groups())) == (22, 19, 3, len(EXPECT_PS01))
    rows = [r for r in course.intake1 if r["assignment"] == A1]
    graded = {r["student"] for r in rows if r["graded"] == "yes"}
    assert graded == {s for s, (_, st, _) in EXPECT_PS01.items() if st == "graded"}
    assert {r["student"] for r in rows if r["attempt"] == "by hand"} == {"otto"}
    assert sorted((r["attempt"] == "by hand", r["graded"]) for r in rows if r["student"] == "otto") == [
        (False, "no"), (True, "yes")]                      # the download is kept, not graded
    assert {r["graded"] for r in rows if r["student"] == "mona"} == {"withdrawn"}
    assert {r["graded"] for r in rows if r["student"] == "lena"} == {"not graded"}
    bertb = sorted((r["late"] != "", r["graded"]) for r in rows if r["student"] == "bertb")
    assert bertb == [(False, "no"), (True, "yes")]
    kept = root_attempts = course.root / "grading" / "attempts" / A1
    for r in rows:
        if r["sha256"]:
            assert (kept / r["student"] / r["sha256"][:10]).is_dir(), r
    modes = {oct(p.stat().st_mode & 0o777) for p in root_attempts.rglob("*") if p.is_file()}
    assert modes == {"0o644"}
    assert not (course.root / "grading" / "submitted" / "josé").exists()   # nothing written there


def test_rerun_takes_in_a_new_attempt_and_keeps_other_reports(course):
    pia = rows_of(course.report1, A2)["pia"]
    assert float(pia["grade"]) == 9 and pia["attempt"] == "1 of 1", pia
    report2 = read_csv(course.root / "grading" / "report.csv")
    pia = rows_of(report2, A2)["pia"]
    assert float(pia["grade"]) == 12 and pia["flags"] == "" and pia["attempt"] == "2 of 2", pia
    assert "9130" in pia["source"] and "9100" in pia["notes"]
    ps01 = lambda report: sorted((r["student"], r["grade"], r["flags"], r["source"])      # noqa: E731
                                 for r in report if r["assignment"] == A1)
    assert ps01(report2) == ps01(course.report1)                                      # ps01 rows kept
    assert len(report2) == len(course.report1)
    kept = course.root / "grading" / "attempts" / A2 / "pia"
    assert len([p for p in kept.iterdir() if p.is_dir()]) == 2                           # both attempts kept
    assert course.second.returncode == 0, course.second.stdout[-2000:]
    assert course.second.stdout.strip().splitlines()[-1] == (
        "make grade: all 3 submissions graded; every downloaded file attributed.")
    grades = {(r["assignment"], r["student_id"]): r for r in read_csv(course.root / "grading" / "grades.csv")}
    assert grades[(A2, "pia")]["score"] == "12.0"
    assert grades[(A1, "gina")]["score"] == "10.0"                                       # still there


def test_ps02_and_blank_grades(course):
    ps02 = rows_of(course.report1, A2)
    assert set(ps02) == {"otto", "hugo", "pia"}
    assert float(ps02["otto"]["grade"]) == 12 and float(ps02["hugo"]["grade"]) == 9
    by = {(r["assignment"], r["student_id"]): r for r in read_csv(course.root / "grading" / "grades.csv")}
    assert by[(A2, "otto")]["score"] == "12.0"
    assert by[(A2, "gina")]["score"] == "" and by[(A2, "gina")]["timestamp"] == ""   # never submitted
    assert by[(A1, "pia")]["score"] == ""
    assert by[(A1, "mona")]["score"] == "" and by[(A1, "lena")]["score"] == ""      # withdrawn, undecided
    assert float(by[(A1, "kim")]["score"]) == 0                                      # submitted a PDF
    assert by[(A1, "josé")]["score"] == "10.0"
    assert by[(A1, "gina")]["timestamp"].startswith("2026-11-03 09:00:00")


def test_csv_files_are_excel_readable_with_one_line_ending(course):
    for name in ("grades.csv", "report.csv", "intake.csv"):
        data = (course.root / "grading" / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf"), name
        assert data.count(b"\r\n") == data.count(b"\n") > 1, name
    assert course.grades1.startswith(b"\xef\xbb\xbf")


def test_gradebook_at_the_configured_db_url(course):
    from nbgrader.api import Gradebook

    assert not (course.root / "grading" / "gradebook.db").exists()
    url = nbg.db_url(course.root)
    assert url.endswith("/db/gb.sqlite")
    with Gradebook(url) as gb:
        assert gb.find_submission(A1, "gina").score == 10
        assert gb.find_submission(A2, "hugo").score == 9
        assert {s.student.id for s in gb.assignment_submissions(A1)} == {
            s for s, (_, st, _) in EXPECT_PS01.items() if st != "withdrawn" and s != "lena"}
    assert "Gradebook: sqlite:///" in course.first.stdout and "gb.sqlite" in course.first.stdout
    with Gradebook(url) as gb:
        assert gb.find_submission(A2, "pia").score == 12


def test_unreachable_gradebook_fails_clearly(tmp_path):
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    with open(tmp_path / "nbgrader_config.py", "a") as fh:
        fh.write("\nc.CourseDirectory.db_url = 'sqlite:////nonexistent-folder/kf/gradebook.db'\n")
    proc = make_grade(tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot open the gradebook sqlite:////nonexistent-folder/kf/gradebook.db" in proc.stderr
    assert "Nothing was graded" in proc.stderr


# --------------------------------------------------------------------------
# feedback


def test_feedback_loads_nothing_from_the_network(course):
    pages = sorted((course.root / "grading" / "feedback").rglob("*.html"))
    assert len(pages) >= 12
    for page in pages:
        text = page.read_text(encoding="utf-8")
        loads = REMOTE.findall(text)
        loads += re.findall(r"""(?:@import|url\()\s*["']?((?:https?:)?//[^"')\s]+)""", text, re.I)
        assert not loads, (page, loads)
        assert "cdnjs" not in text and "MathJax.Hub" not in text, page
        src = re.search(r'<script defer src="([^"]+tex-svg\.js)"', text)
        assert src, page
        assert (page.parent / src.group(1)).resolve().is_file(), page


def test_feedback_keeps_the_visible_tests_message(course):
    from test_grading import body_text

    text = re.sub(r"\s+", " ", body_text(course.root / "grading" / "feedback" / "hugo" / A2 / f"{NB2}.html"))
    assert ("The visible test in your notebook says: x_filt[0] must be x_1|1, not x0: x0 and P0 are "
            "at time 0, so predict first (x_1|0 = F x0), then update with y_1") in text, text[:3000]
    assert text.count("The visible test in your notebook says") == 1
    good = body_text(course.root / "grading" / "feedback" / "otto" / A2 / f"{NB2}.html")
    assert "The visible test in your notebook says" not in good


REMOTE = re.compile(r"""<[a-z]+\b[^>]*?\b(?:src|href|data)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", re.I)


def test_localize_replaces_nbconverts_mathjax():
    """nbconvert's own MathJax macro (what generate_feedback's template calls) loads MathJax 2
    from a CDN; localize() leaves no remote load and points at the local MathJax 3."""
    import jinja2
    from jupyter_core.paths import jupyter_path

    from grader import feedback

    folders = [os.path.join(p, "nbconvert", "templates", "base") for p in jupyter_path()]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([f for f in folders if os.path.isdir(f)]))
    macro = env.from_string("{% from 'mathjax.html.j2' import mathjax %}{{ mathjax() }}").render()
    page = f"<html><head>{macro}<link rel='stylesheet' href='https://cdn.example/x.css'></head></html>"
    assert REMOTE.findall(page)                                       # the check sees the CDN
    local = feedback.localize(page, "../../_static/mathjax/tex-svg.js")
    assert not REMOTE.findall(local) and "MathJax.Hub" not in local
    assert '<script defer src="../../_static/mathjax/tex-svg.js"></script>' in local
    assert not REMOTE.findall(feedback.localize(page, None))


def test_visible_messages_come_only_from_the_release(tmp_path):
    from grader import course, feedback

    a = course.load_assignment(ROOT, A2)
    predict = "so predict first (x_1|0 = F x0), then update with y_1"

    def autograded(evalue, grade_id="test_filter"):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("_visible_tests_c()", metadata={"nbgrader": {"grade_id": grade_id}})
        cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue=evalue, traceback=[])]
        nb.cells.append(cell)
        path = tmp_path / f"{abs(hash(evalue))}.ipynb"
        nbformat.write(nb, path)
        return path

    msg = ("x_filt[0] must be x_1|1, not x0: x0 and P0 are at time 0,\n" + predict)
    assert feedback.visible_messages(a, autograded(msg)) == {"filter": msg}
    # the hidden tests' or the student's own text is never taken
    assert feedback.visible_messages(a, autograded("expected 0.123456 at [3, 1]")) == {}
    assert feedback.visible_messages(a, autograded("x_filt[0] must be x_1|1, SECRET")) == {}
    # an f-string's field stands for a short shape or number, not for a paragraph
    shape = "x_filt must have shape (T, n) = (4, 2); got (4, 3)"
    assert feedback.visible_messages(a, autograded(shape)) == {"filter": shape}
    long = "x_filt must have shape (T, n) = (4, 2); got " + "hidden test source line " * 5
    assert len(feedback.visible_messages(a, autograded(long)).get("filter", "")) < len(long) - 60
