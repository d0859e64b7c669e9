"""tests/check_summary.sh, the last line of `make check`: PASS only when every Check suite that
ran reported without failures and pytest reported passes without failures or errors."""
import pathlib
import subprocess

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "check_summary.sh"
C_OK = "== build/tests/check_a\n100%: Checks: 17, Failures: 0, Errors: 0\n" \
       "== build/tests/check_b\n100%: Checks: 3, Failures: 0, Errors: 0\n"


def summary(tmp_path, c_log, py_log, status=0):
    (tmp_path / "c.log").write_text(c_log)
    (tmp_path / "p.log").write_text(py_log)
    r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "c.log"), str(tmp_path / "p.log"),
                        str(status)], capture_output=True, text=True, timeout=30)
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout + r.stderr
    return r.returncode, lines[0]


def test_pass(tmp_path):
    rc, line = summary(tmp_path, C_OK, "....\n120 passed, 2 skipped in 30.1s\n")
    assert rc == 0
    assert line == ("revl: make check PASS: C 2/2 suites, 20 checks, 0 failed; "
                    "pytest 120 passed, 0 failed, 0 errors, 2 skipped")


def test_fail_cases(tmp_path):
    cases = [
        (C_OK, "2 failed, 118 passed in 3.0s\n", 0),                      # a pytest failure
        (C_OK, "118 passed, 1 error in 3.0s\n", 0),                       # a pytest error
        (C_OK, "", 0),                                                    # pytest never reported
        (C_OK.replace("Failures: 0, Errors: 0\n== build/tests/check_b",
                      "Failures: 1, Errors: 0\n== build/tests/check_b"), "5 passed in 1s\n", 0),
        (C_OK + "== build/tests/check_c\n", "5 passed in 1s\n", 0),       # a suite that crashed
        (C_OK, "5 passed in 1s\n", 1),                                    # a nonzero status
    ]
    for c_log, py_log, status in cases:
        rc, line = summary(tmp_path, c_log, py_log, status)
        assert rc == 1 and "FAIL" in line, (c_log, py_log, status, line)
