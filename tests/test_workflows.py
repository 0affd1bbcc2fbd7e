"""The workflows: generated files up to date, labelled inputs and outputs, a test each."""

import glob
import os

import yaml

from conftest import REPO

WORKFLOWS = sorted(glob.glob(os.path.join(REPO, "workflows", "*.gxwf.yml")))


def test_generated_workflows_are_current():
    import sys
    sys.path.insert(0, os.path.join(REPO, "harness"))
    import build_workflows
    for source, target in build_workflows.targets():
        with open(target) as handle:
            assert handle.read() == build_workflows.built(source), \
                f"run python harness/build_workflows.py: {target} is stale"


def test_every_workflow_has_metadata_docs_and_a_test():
    assert {os.path.basename(w) for w in WORKFLOWS} >= {
        "hot_cold_catalog.gxwf.yml", "desi_sources.gxwf.yml", "desi_hot_cold.gxwf.yml"}
    for path in WORKFLOWS:
        with open(path) as handle:
            workflow = yaml.safe_load(handle)
        assert workflow["license"] == "MIT" and workflow["creator"] and workflow["release"]
        assert workflow["doc"].startswith("This workflow")
        assert all(step.get("doc") for step in workflow["steps"].values())
        assert all(" " in name or name.isalpha() or name.isupper() for name in workflow["inputs"])
        assert os.path.exists(path.replace(".gxwf.yml", ".gxwf-tests.yml"))
