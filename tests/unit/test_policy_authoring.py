"""`test_policies` against the real OPA binary: the repository's policies pass, and each kind of
mistake an author makes is reported at the right step, naming the file or the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controlplane.errors import ConfigurationError
from controlplane.policies import authoring
from controlplane.policies.authoring import (
    STEP_CHECK,
    STEP_COVERAGE,
    STEP_FMT,
    STEP_TEST,
    PolicyTestReport,
)
from tests.support.processes import OPA_BIN, POLICY_DIR

pytestmark = pytest.mark.skipif(
    not OPA_BIN.is_file(), reason=f"needs the OPA binary at {OPA_BIN} (make opa builds it)"
)

POLICY = """\
package shop

default allow := false

allow if input.user == "alice"

allow if input.user == "bob"
"""

POLICY_TEST = """\
package shop_test

import data.shop

test_alice_allowed if shop.allow with input as {"user": "alice"}

test_bob_allowed if shop.allow with input as {"user": "bob"}

test_eve_denied if not shop.allow with input as {"user": "eve"}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def check(
    root: Path, *, schema_dir: Path | None = None, threshold: float = 90.0
) -> PolicyTestReport:
    return authoring.test_policies(
        root, opa=OPA_BIN, schema_dir=schema_dir, coverage_threshold=threshold
    )


def statuses(report: PolicyTestReport) -> dict[str, str]:
    return {step.name: step.status for step in report.steps}


def test_repository_policies_pass_with_coverage_over_90() -> None:
    report = check(POLICY_DIR)
    assert report.ok, report.render()
    assert [step.name for step in report.steps] == [STEP_FMT, STEP_CHECK, STEP_TEST, STEP_COVERAGE]
    assert report.coverage is not None and report.coverage >= 90
    assert "--schema schemas" in report.step(STEP_CHECK).lines[0]  # the default schema dir
    rendered = report.render()
    assert rendered.count("✓") == 4 and "✗" not in rendered


def test_small_clean_policy_passes(tmp_path: Path) -> None:
    report = check(write(tmp_path, {"shop.rego": POLICY, "shop_test.rego": POLICY_TEST}))
    assert report.ok, report.render()
    assert report.step(STEP_TEST).lines[0] == "3 passed, 0 failed"
    assert report.coverage == 100


def test_badly_formatted_file_fails_fmt_and_is_named(tmp_path: Path) -> None:
    ugly = POLICY.replace('allow if input.user == "bob"', 'allow   if {  input.user=="bob" }')
    report = check(write(tmp_path, {"shop.rego": ugly, "shop_test.rego": POLICY_TEST}))
    assert statuses(report) == {
        STEP_FMT: "failed",
        STEP_CHECK: "ok",
        STEP_TEST: "ok",
        STEP_COVERAGE: "ok",
    }
    assert not report.ok
    assert "shop.rego" in report.step(STEP_FMT).lines
    assert "✗ fmt" in report.render()


def test_syntax_error_fails_check_naming_file_and_line(tmp_path: Path) -> None:
    broken = POLICY.replace('allow if input.user == "bob"', "allow if {\n\tinput.user ==\n}")
    report = check(write(tmp_path, {"shop.rego": broken, "shop_test.rego": POLICY_TEST}))
    assert report.failed_steps == [STEP_FMT, STEP_CHECK]
    check_lines = report.step(STEP_CHECK).lines
    assert any(
        line.startswith("shop.rego:9:") and "rego_parse_error" in line for line in check_lines
    )
    assert report.step(STEP_TEST).skipped and report.step(STEP_COVERAGE).skipped
    assert report.coverage is None


def test_type_error_against_the_default_input_schema(tmp_path: Path) -> None:
    annotated = "# METADATA\n# schemas:\n#   - input: schema.input\n" + POLICY.replace(
        'input.user == "bob"', 'input.usr == "bob"'
    )
    schema = {"type": "object", "properties": {"user": {"type": "string"}}}
    root = write(
        tmp_path,
        {
            "shop.rego": annotated,
            "shop_test.rego": POLICY_TEST,
            "schemas/input.json": json.dumps(schema),
        },
    )
    report = check(root)
    assert report.failed_steps == [STEP_CHECK]
    assert any("undefined ref: input.usr" in line for line in report.step(STEP_CHECK).lines)
    fixed = root / "shop.rego"
    fixed.write_text(fixed.read_text().replace("input.usr", "input.user"))
    elsewhere = tmp_path.parent / f"{tmp_path.name}-schemas"
    (root / "schemas").rename(elsewhere)
    assert check(root, schema_dir=elsewhere).ok


def test_failing_test_is_named_with_its_file(tmp_path: Path) -> None:
    wrong = POLICY_TEST.replace('{"user": "eve"}', '{"user": "alice"}')
    report = check(write(tmp_path, {"shop.rego": POLICY, "shop_test.rego": wrong}))
    assert report.failed_steps == [STEP_TEST]
    lines = report.step(STEP_TEST).lines
    assert lines[0] == "2 passed, 1 failed"
    assert "✗ data.shop_test.test_eve_denied (shop_test.rego:9)" in lines
    assert report.step(STEP_COVERAGE).skipped
    assert "✗ test" in report.render()


def test_test_that_errors_is_a_failure_with_the_error(tmp_path: Path) -> None:
    conflicting = POLICY + "\nf(x) := 1 if x > 0\n\nf(x) := 2 if x > 1\n"
    erroring = POLICY_TEST + "\ntest_conflict if shop.f(5) == 1\n"
    report = check(write(tmp_path, {"shop.rego": conflicting, "shop_test.rego": erroring}))
    assert report.failed_steps == [STEP_TEST]
    lines = report.step(STEP_TEST).lines
    assert "✗ data.shop_test.test_conflict (shop_test.rego:11)" in lines
    assert any("eval_conflict_error" in line for line in lines)


def test_no_tests_fails(tmp_path: Path) -> None:
    report = check(write(tmp_path, {"shop.rego": POLICY}))
    assert report.failed_steps == [STEP_TEST]
    assert "no tests" in report.step(STEP_TEST).lines[0]


def test_low_coverage_fails_naming_the_least_covered_file(tmp_path: Path) -> None:
    extra = POLICY + '\nadmin if input.user == "root"\n\nauditor if input.user == "carol"\n'
    only_alice = "package shop_test\n\nimport data.shop\n\n" + (
        'test_alice_allowed if shop.allow with input as {"user": "alice"}\n'
    )
    report = check(write(tmp_path, {"shop.rego": extra, "shop_test.rego": only_alice}))
    assert report.failed_steps == [STEP_COVERAGE]
    assert report.coverage is not None and report.coverage < 90
    lines = report.step(STEP_COVERAGE).lines
    assert lines[0].startswith(f"{report.coverage:.1f}% of lines covered (threshold 90%)")
    assert any(
        line.startswith("shop.rego: ") and "not covered: lines 3, 7, 9, 11" in line
        for line in lines
    )
    assert check(tmp_path, threshold=report.coverage).ok


def test_missing_directory_is_a_failed_report(tmp_path: Path) -> None:
    report = check(tmp_path / "nowhere")
    assert not report.ok
    assert "does not exist" in report.step(STEP_FMT).lines[0]
    assert all(report.step(name).skipped for name in (STEP_CHECK, STEP_TEST, STEP_COVERAGE))


def test_missing_opa_binary_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        authoring.test_policies(POLICY_DIR, opa=tmp_path / "opa")


def test_threshold_must_be_a_percentage() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        authoring.test_policies(POLICY_DIR, opa=OPA_BIN, coverage_threshold=150)
