"""The workflows: generated files up to date, labelled inputs and outputs, a test each."""

import glob
import os
import sys

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


def boxes(workflow):
    """(name, left, top, right, bottom) of every input and step as the editor draws them
    (an input node is about 200 x 90 px, a tool node about 220 x 180)."""
    for kind, width, height in (("inputs", 200, 90), ("steps", 220, 180)):
        for name, node in workflow.get(kind, {}).items():
            position = node.get("position")
            assert position, f"{name} has no position"
            yield name, position["left"], position["top"], position["left"] + width, \
                position["top"] + height


def test_every_step_has_a_position_and_none_overlap():
    for path in WORKFLOWS:
        with open(path) as handle:
            workflow = yaml.safe_load(handle)
        placed = list(boxes(workflow))
        for i, (name, left, top, right, bottom) in enumerate(placed):
            for other, l2, t2, r2, b2 in placed[i + 1:]:
                assert right <= l2 or r2 <= left or bottom <= t2 or b2 <= top, \
                    f"{os.path.basename(path)}: {name} overlaps {other}"
        steps = workflow["steps"]
        for name, step in steps.items():  # pipeline order: a step right of its sources
            for source in step.get("in", {}).values():
                source = source.get("source") if isinstance(source, dict) else source
                origin = str(source).split("/")[0]
                if origin in steps:
                    assert steps[origin]["position"]["left"] < step["position"]["left"], \
                        f"{os.path.basename(path)}: {name} is not right of {origin}"


def test_no_workflow_repeats_a_key():
    """YAML keeps the last of two equal keys without a word: a step's second `out` would
    silently drop the first."""
    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        repeated = {k for k in keys if keys.count(k) > 1}
        assert not repeated, f"line {node.start_mark.line + 1}: repeated {repeated}"
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    for path in WORKFLOWS + sorted(glob.glob(os.path.join(REPO, "workflows", "*", "*.yml"))):
        with open(path) as handle:
            yaml.load(handle, Loader=Strict)


def test_the_tool_shed_repository_ships_what_the_scripts_read():
    """A Tool Shed install gets only the .shed.yml includes: the scripts, the CLASS_STAR
    network and its licence, the macros, the help pictures."""
    import fnmatch
    with open(os.path.join(REPO, ".shed.yml")) as handle:
        patterns = yaml.safe_load(handle)["include"]
    needed = [os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "scripts", "*"))
              if not p.endswith("__pycache__")]
    needed += ["macros.xml", "static/images/sky_compute_example.jpg"]
    missing = [p for p in needed if not any(fnmatch.fnmatch(p, pat) for pat in patterns)]
    assert not missing, missing


def test_editor_messages_are_found_in_subworkflows_too():
    steps = {"0": {"label": "image", "upgrade_messages": {}},
             "1": {"label": "join", "upgrade_messages": {}, "subworkflow": {"steps": {
                 "0": {"label": None, "name": "Extract sources",
                       "upgrade_messages": {"thresh": "No value found for 'thresh'"}}}}}}
    messages = _suite().editor_messages(steps)
    assert messages == ["join > Extract sources: {'thresh': \"No value found for 'thresh'\"}"]
    assert _suite().editor_messages({"0": {"label": "x"}}) == []


def _suite():
    sys.path.insert(0, os.path.join(REPO, "harness"))
    import suite
    return suite


def test_the_history_check_names_a_missing_output(monkeypatch):
    suite = _suite()
    present = set(suite.HOT_COLD_OUTPUTS) - {"object mask"}

    def fake_api(url, path, key=None, **kwargs):
        name = suite.urllib.parse.unquote(path.split("qv=")[1].split("&")[0])
        return [{"id": "1", "name": name}] if name in present else []
    monkeypatch.setattr(suite, "api", fake_api)
    ok, detail = suite.check_history_names("http://127.0.0.1:1", "k")
    assert not ok and detail == "no dataset named 'object mask'"
    present.add("object mask")
    assert suite.check_history_names("http://127.0.0.1:1", "k") == (
        True, "7 outputs named after their labels")


def section_parameters(tool_id):
    """{section name: the names of its direct parameters and conditionals} of a tool."""
    import xml.etree.ElementTree as ET
    root = ET.parse(os.path.join(REPO, "tools", f"{tool_id}.xml")).getroot()
    return {section.get("name"): {(child.get("name") or child.get("argument", "")
                                   .lstrip("-").replace("-", "_"))
                                  for child in section if child.tag in ("param", "conditional")}
            for section in root.find("inputs").iter("section")}


def tool_steps(workflow):
    """Every tool step of a workflow, those of its inlined subworkflows included."""
    for name, step in workflow["steps"].items():
        if isinstance(step.get("run"), dict):
            yield from tool_steps(step["run"])
        elif step.get("tool_id"):
            yield name, step


def test_every_stated_section_has_every_parameter_of_the_tool():
    """A tool step whose state names a section must give each of its parameters: Galaxy
    refuses to invoke a workflow with a missing one ("Workflow step has upgrade messages"),
    as it did when sep_extract gained --mask-type."""
    for path in WORKFLOWS:
        with open(path) as handle:
            workflow = yaml.safe_load(handle)
        for name, step in tool_steps(workflow):
            if not os.path.exists(os.path.join(REPO, "tools", f"{step['tool_id']}.xml")):
                continue  # Galaxy's own tools
            sections = section_parameters(step["tool_id"])
            for section, value in (step.get("tool_state") or {}).items():
                if section in sections and isinstance(value, dict):
                    missing = sections[section] - set(value) - set(step.get("in", {}))
                    missing = {m for m in missing
                               if f"{section}|{m}" not in step.get("in", {})}
                    assert not missing, f"{os.path.basename(path)} {name}: {section} lacks " \
                                        f"{sorted(missing)}"
