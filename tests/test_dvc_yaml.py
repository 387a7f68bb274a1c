"""dvc.yaml tells the truth about each stage's code and params: every stage lists as deps exactly its
script and the genlab modules that script imports (directly or through other genlab modules), and
its params are keys that exist in params.yaml. (Which keys each stage really reads is checked at run
time in test_experiments.py, through the GENLAB_PARAMS_AUDIT hook.)"""

import pytest
import yaml

from conftest import ROOT, flat_keys, published
from genlab.identity import module_closure

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load(published("params.yaml"))


def closure(script):
    """The script ('stages/x.py') and every project module it imports, transitively (the closure the
    code keys cover too: genlab.identity.module_closure)."""
    return {p.as_posix() for p in module_closure(script[:-3].replace("/", "."))}


def stages():
    """(name, definition) of every stage, a matrix stage once (its items share code and params)."""
    return list(DVC["stages"].items())


def script_of(stage):
    cmd = stage["cmd"]
    assert cmd.startswith("python -m stages."), cmd
    return "stages/" + cmd.split()[2].split(".")[1] + ".py"


@pytest.mark.parametrize("name,stage", stages(), ids=[n for n, _ in stages()])
def test_code_deps_are_exactly_the_imported_modules(name, stage):
    imported = closure(script_of(stage))
    if name == "check_params":   # it imports every stage's checks: it lists the code folders whole
        assert sorted(d for d in stage["deps"] if not d.startswith("data/")) == ["genlab", "stages"]
        assert {f.split("/")[0] for f in imported} == {"genlab", "stages"}
        return
    declared = {d for d in stage["deps"] if d.startswith(("stages/", "genlab/"))}
    assert declared == imported, (f"{name}: listed but not imported {sorted(declared - imported)}; "
                                  f"imported but not listed {sorted(imported - declared)}")


def declared_keys(stage):
    keys = set()
    for p in stage.get("params", []):
        keys.update([p] if isinstance(p, str) else [])
    return keys


def test_params_named_in_dvc_yaml_exist_and_every_param_is_used():
    all_keys = set(flat_keys(PARAMS))
    leaves = set(flat_keys(PARAMS, leaves=True))
    used = set()
    for name, stage in stages():
        keys = declared_keys(stage)
        assert keys <= all_keys, f"{name} lists params missing from params.yaml: {sorted(keys - all_keys)}"
        used |= keys
    assert leaves - used == set(), f"params no stage reads (remove them or list them): {sorted(leaves - used)}"



def test_check_params_runs_every_stages_checks_first():
    """check_params imports and calls the read_settings of every other stage, reads all of params.yaml,
    and the first data stage depends on its output, so a bad value stops `dvc repro` before any work."""
    from stages import check_params
    stage = DVC["stages"]["check_params"]
    others = {script_of(s) for n, s in stages() if n not in ("check_params", "report")}   # report has no checks
    assert others <= closure("stages/check_params.py")
    assert {f"stages/{m.__name__.split('.')[-1]}.py" for m in check_params.STAGES} == others
    assert all(callable(m.read_settings) for m in check_params.STAGES)
    assert stage["params"] == [{"params.yaml": None}]
    out = stage["outs"][0]
    assert out in DVC["stages"]["fetch"]["deps"] and out in stage["cmd"]
