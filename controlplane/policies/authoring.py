"""Policy authoring checks: what a policy directory must pass before it becomes a bundle.

This module owns running OPA's own tools on a directory of Rego and data, in the order an author
fixes things: `opa fmt` (no file would change), `opa check --strict` (compiles, type-checks
against the input schemas), `opa test` (every test passes) and `opa test --coverage` (at least the
threshold). It turns their output into a `PolicyTestReport`, one `StepResult` per step with
readable lines (the failing test and its file, the least-covered files and their uncovered
lines). `controlplane policy test DIR` prints it; `make rego-check` runs the same commands.

The directory is loaded the way OPA loads a bundle (`--bundle`, from inside the directory), so
that tests see exactly the data a bundle ships (`data.json`/`data.yaml`, not the JSON schemas) and
file names are reported relative to the directory. Bundle mode also sidesteps an OPA 1.22 quirk:
run on `DIR` rather than `.`, its coverage report files the uncovered lines under `DIR/DIR/...`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.errors import ConfigurationError

STEP_FMT = "fmt"
STEP_CHECK = "check"
STEP_TEST = "test"
STEP_COVERAGE = "coverage"
DEFAULT_COVERAGE_THRESHOLD = 90.0
# How many of the least-covered files a failing coverage step names.
LEAST_COVERED_SHOWN = 5
_MARKS = {"ok": "✓", "failed": "✗", "skipped": "-"}


@dataclass(frozen=True)
class StepResult:
    """One step of the checks. `lines[0]` is a one-line summary; the others are details
    (files to format, compile errors, failing tests, uncovered files)."""

    name: str
    ok: bool
    lines: tuple[str, ...]
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "ok" if self.ok else "failed"


@dataclass(frozen=True)
class PolicyTestReport:
    """The outcome of `test_policies`: every step in order, and the total coverage when the
    coverage step ran."""

    policy_dir: Path
    steps: tuple[StepResult, ...]
    coverage: float | None = None

    @property
    def ok(self) -> bool:
        """True only when every step ran and passed (a skipped step is not a pass)."""
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failed_steps(self) -> list[str]:
        return [step.name for step in self.steps if step.status == "failed"]

    def step(self, name: str) -> StepResult:
        """The step called `name`. Raises `KeyError` for a name that is not a step."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def lines(self) -> list[str]:
        """The report as lines: a header, then per step its mark, name and summary, then its
        details indented."""
        verdict = "passed" if self.ok else "failed: " + ", ".join(self.failed_steps or ["-"])
        out = [f"policy checks of {self.policy_dir}: {verdict}"]
        for step in self.steps:
            summary, *details = step.lines or ("",)
            out.append(f"  {_MARKS[step.status]} {step.name:<9} {summary}".rstrip())
            out.extend(f"      {line}" for line in details)
        return out

    def render(self) -> str:
        return "\n".join(self.lines()) + "\n"


def test_policies(
    policy_dir: Path,
    *,
    opa: Path,
    # Named after the command it backs; PT028, a pytest rule, takes it for a test function.
    schema_dir: Path | None = None,  # noqa: PT028
    coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD,  # noqa: PT028
    timeout: float = 300.0,  # noqa: PT028
) -> PolicyTestReport:
    """Run `opa fmt --list`, `opa check --strict`, `opa test` and `opa test --coverage` on
    `policy_dir`, in that order, and report each step.

    `schema_dir` defaults to `<policy_dir>/schemas` when that directory exists (its `input.json`
    is the schema the policies name with a `schemas` METADATA annotation). Tests run only if the
    policies compile, coverage only if the tests pass; the other steps are then marked skipped.
    A failing step never raises: it is a failed `StepResult`. Raises `ConfigurationError` when
    `opa` is not an executable file, `ValueError` when the threshold is not a percentage.
    """
    if not 0.0 <= coverage_threshold <= 100.0:
        raise ValueError(f"coverage threshold {coverage_threshold} is not between 0 and 100")
    binary = Path(opa).expanduser()
    if not binary.is_file():
        raise ConfigurationError(
            f"OPA binary {binary} not found (make opa builds it)", code="opa_missing"
        )
    policy_dir = Path(policy_dir)
    if schema_dir is None and (policy_dir / "schemas").is_dir():
        schema_dir = policy_dir / "schemas"
    if not policy_dir.is_dir():
        missing = StepResult(STEP_FMT, False, (f"policy directory {policy_dir} does not exist",))
        return PolicyTestReport(
            policy_dir, (missing, *_skipped((STEP_CHECK, STEP_TEST, STEP_COVERAGE), "no policies"))
        )
    runner = _Runner(binary, policy_dir.resolve(), timeout)
    fmt = _fmt_step(runner)
    check = _check_step(runner, schema_dir.resolve() if schema_dir is not None else None)
    if not check.ok:
        rest = _skipped((STEP_TEST, STEP_COVERAGE), "skipped: the policies do not compile")
        return PolicyTestReport(policy_dir, (fmt, check, *rest))
    tests = _test_step(runner)
    if not tests.ok:
        rest = _skipped((STEP_COVERAGE,), "skipped: tests failed")
        return PolicyTestReport(policy_dir, (fmt, check, tests, *rest))
    coverage, total = _coverage_step(runner, coverage_threshold)
    return PolicyTestReport(policy_dir, (fmt, check, tests, coverage), total)


# Not a test: keeps pytest from collecting the function above when a test module imports it.
test_policies.__test__ = False  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _Outcome:
    returncode: int
    stdout: str
    stderr: str

    def output_lines(self) -> list[str]:
        text = "\n".join(part for part in (self.stdout.strip(), self.stderr.strip()) if part)
        return [line.rstrip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class _Runner:
    opa: Path
    cwd: Path
    timeout: float

    def run(self, *args: str) -> _Outcome:
        """`opa ARGS .` inside the policy directory; a timeout or an OS error is an outcome too."""
        argv = [str(self.opa), *args, "."]
        try:
            done = subprocess.run(  # noqa: S603 (the configured OPA binary, no shell)
                argv,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return _Outcome(-1, "", f"opa {args[0]} did not finish within {self.timeout:g} s")
        except OSError as exc:
            return _Outcome(-1, "", f"could not run {self.opa}: {exc}")
        return _Outcome(done.returncode, done.stdout, done.stderr)


def _skipped(names: Sequence[str], why: str) -> tuple[StepResult, ...]:
    return tuple(StepResult(name, False, (why,), skipped=True) for name in names)


def _fmt_step(runner: _Runner) -> StepResult:
    outcome = runner.run("fmt", "--list")
    unformatted = sorted(line.strip() for line in outcome.stdout.splitlines() if line.strip())
    problems = [line for line in outcome.stderr.splitlines() if line.strip()]
    if outcome.returncode == 0 and not unformatted:
        return StepResult(STEP_FMT, True, ("every file is formatted as opa fmt would",))
    lines: list[str] = []
    if unformatted:
        lines.append(f"{len(unformatted)} file(s) differ from opa fmt (run opa fmt --write):")
        lines += unformatted
    if problems:
        lines.append("opa fmt could not read every file:")
        lines += problems
    return StepResult(STEP_FMT, False, tuple(lines))


def _check_step(runner: _Runner, schema_dir: Path | None) -> StepResult:
    args = ["check", "--strict", "--bundle", "--format", "json"]
    if schema_dir is not None:
        args += ["--schema", str(schema_dir)]
    outcome = runner.run(*args)
    what = "opa check --strict" + (f" --schema {schema_dir.name}" if schema_dir else "")
    if outcome.returncode == 0:
        return StepResult(STEP_CHECK, True, (f"{what}: compiles and type-checks",))
    errors = _json_errors(outcome.stderr) or _json_errors(outcome.stdout)
    if errors is None:
        return StepResult(STEP_CHECK, False, (f"{what} failed:", *outcome.output_lines()))
    lines = [f"{what}: {len(errors)} error(s)"]
    lines += [_describe_error(error) for error in errors]
    return StepResult(STEP_CHECK, False, tuple(lines))


def _json_errors(text: str) -> list[dict[str, Any]] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    return [error for error in errors if isinstance(error, dict)]


def _describe_error(error: dict[str, Any]) -> str:
    location = error.get("location") or {}
    where = ":".join(
        str(location[key]) for key in ("file", "row", "col") if location.get(key) is not None
    )
    code = error.get("code")
    message = " ".join(str(error.get("message", "")).split())
    return ": ".join(part for part in (where, code, message) if part)


def _test_step(runner: _Runner) -> StepResult:
    outcome = runner.run("test", "--bundle", "--format", "json", "--fail-on-empty")
    try:
        results = json.loads(outcome.stdout)
    except ValueError:
        results = None
    if not isinstance(results, list):
        return StepResult(STEP_TEST, False, ("opa test failed:", *outcome.output_lines()))
    tests = [result for result in results if isinstance(result, dict)]
    failed = [result for result in tests if result.get("fail") or result.get("error")]
    skipped = [result for result in tests if result.get("skip")]
    passed = len(tests) - len(failed) - len(skipped)
    summary = f"{passed} passed, {len(failed)} failed" + (
        f", {len(skipped)} skipped" if skipped else ""
    )
    if not tests:
        return StepResult(STEP_TEST, False, ("no tests were run (name them test_...)",))
    if not failed and outcome.returncode == 0:
        return StepResult(STEP_TEST, True, (summary,))
    lines = [summary]
    for result in sorted(failed, key=_test_name):
        lines.append(f"✗ {_test_name(result)} ({_test_location(result)})")
        error = result.get("error")
        if isinstance(error, dict):
            lines.append(f"    {_describe_error(error)}")
    if not failed:  # a non-zero exit with every test passing: say what OPA said
        lines += outcome.stderr.strip().splitlines()
    return StepResult(STEP_TEST, False, tuple(lines))


def _test_name(result: dict[str, Any]) -> str:
    return f"{result.get('package', 'data')}.{result.get('name', '?')}"


def _test_location(result: dict[str, Any]) -> str:
    location = result.get("location") or {}
    return f"{location.get('file', '?')}:{location.get('row', '?')}"


@dataclass(frozen=True)
class _FileCoverage:
    name: str
    covered: int
    not_covered_rows: tuple[int, ...]

    @property
    def percent(self) -> float:
        total = self.covered + len(self.not_covered_rows)
        return 100.0 * self.covered / total if total else 100.0


def _coverage_step(runner: _Runner, threshold: float) -> tuple[StepResult, float | None]:
    outcome = runner.run("test", "--bundle", "--coverage", "--format", "json")
    try:
        report = json.loads(outcome.stdout)
    except ValueError:
        report = None
    if not isinstance(report, dict) or outcome.returncode != 0:
        failure = ("opa test --coverage failed:", *outcome.output_lines())
        return StepResult(STEP_COVERAGE, False, failure), None
    total = float(report.get("coverage") or 0.0)
    summary = f"{total:.1f}% of lines covered (threshold {threshold:g}%)"
    if total >= threshold:
        return StepResult(STEP_COVERAGE, True, (summary,)), total
    files = sorted(_file_coverage(report), key=lambda f: (f.percent, f.name))
    lines = [summary, "least covered:"]
    for entry in [f for f in files if f.not_covered_rows][:LEAST_COVERED_SHOWN]:
        rows = entry.not_covered_rows
        label = "line" if len(rows) == 1 else "lines"
        lines.append(f"{entry.name}: {entry.percent:.1f}% (not covered: {label} {_ranges(rows)})")
    return StepResult(STEP_COVERAGE, False, tuple(lines)), total


def _file_coverage(report: dict[str, Any]) -> list[_FileCoverage]:
    """Per-file coverage computed from OPA's ranges (merging entries that name the same file)."""
    covered: dict[str, set[int]] = {}
    missed: dict[str, set[int]] = {}
    files = report.get("files")
    for reported, entry in files.items() if isinstance(files, dict) else []:
        if not isinstance(entry, dict):
            continue
        name = reported.removeprefix("./")
        covered.setdefault(name, set()).update(_rows(entry.get("covered")))
        missed.setdefault(name, set()).update(_rows(entry.get("not_covered")))
    return [
        _FileCoverage(name, len(covered[name] - missed[name]), tuple(sorted(missed[name])))
        for name in covered
    ]


def _rows(ranges: object) -> set[int]:
    rows: set[int] = set()
    for span in ranges if isinstance(ranges, list) else []:
        try:
            start, end = int(span["start"]["row"]), int(span["end"]["row"])
        except (KeyError, TypeError, ValueError):
            continue
        rows.update(range(start, end + 1))
    return rows


def _ranges(rows: Sequence[int]) -> str:
    """`[3, 4, 5, 9]` → `"3-5, 9"`."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
