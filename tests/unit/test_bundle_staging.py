"""The dev bundle: tests stay out, the revision follows the content and nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from controlplane.stack.opa_server import stage_bundle
from tests.support.processes import BUNDLE_TEMPLATE, POLICY_DIR


def test_bundle_holds_policies_but_not_tests(tmp_path: Path) -> None:
    revision = stage_bundle(POLICY_DIR, BUNDLE_TEMPLATE, tmp_path)
    staged = {
        p.relative_to(tmp_path / "governance").as_posix()
        for p in (tmp_path / "governance").rglob("*")
        if p.is_file()
    }
    assert "governance/execution/decision.rego" in staged
    assert not any(name.endswith("_test.rego") for name in staged)
    manifest = json.loads((tmp_path / "governance" / ".manifest").read_text())
    assert manifest["revision"] == revision
    assert manifest["roots"] == ["governance", "system"]
    assert manifest["rego_version"] == 1


def test_revision_changes_with_content_only(tmp_path: Path) -> None:
    policies = tmp_path / "rego"
    shutil.copytree(POLICY_DIR, policies)
    first = stage_bundle(policies, BUNDLE_TEMPLATE, tmp_path / "a")
    assert stage_bundle(policies, BUNDLE_TEMPLATE, tmp_path / "b") == first
    (policies / "governance" / "execution" / "decision_test.rego").write_text("package x\n")
    assert stage_bundle(policies, BUNDLE_TEMPLATE, tmp_path / "c") == first  # tests are not content
    rego = policies / "governance" / "execution" / "decision.rego"
    rego.write_text(rego.read_text() + "\n# changed\n")
    assert stage_bundle(policies, BUNDLE_TEMPLATE, tmp_path / "d") != first
