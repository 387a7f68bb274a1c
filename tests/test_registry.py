"""The model registry and the model card. dvc.yaml declares the GAN and VAE as DVC artifacts of type
model (DVC parses them; once registered with `gto register`, `dvc.api.artifacts_show`, what
`dvc artifacts get` and DVC Studio use, resolves each name to its path; with the smoke pipeline's cache
`dvc artifacts get` downloads the model); `genlab export` writes MODEL_CARD.md with the data, params,
metrics ± the seed spread's sd, intended use and misuse."""

import json
import os
import subprocess

import pytest
import yaml

from conftest import ROOT, copy_project, copy_tree, dvc, published, tool_env
from genlab.outputs.model_card import model_card


def register(proj, *names):
    """`gto register NAME` (an annotated git tag NAME@v0.1.0), as the model registry does."""
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for name in names:
        r = subprocess.run(["gto", "register", name, "--version", "v0.1.0"], cwd=proj, capture_output=True,
                           text=True, env=tool_env(**git))
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow   # DVC and gto in the test process, gto in subprocesses
def test_models_are_dvc_artifacts_that_resolve_by_name(tmp_path):
    from dvc.api import artifacts_show
    from dvc.repo import Repo
    proj = copy_project(tmp_path)
    declared = Repo(str(proj)).artifacts.read()["dvc.yaml"]
    assert {n: (a.type, a.path) for n, a in declared.items()} == {"gan": ("model", "models/gan"),
                                                                   "vae": ("model", "models/vae")}
    assert all(a.desc and "image-generation" in a.labels for a in declared.values())
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, a in declared.items():   # each artifact is the output of the stage its meta names
        assert a.path in stages[a.meta["stage"]]["outs"]
    register(proj, "gan", "vae")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=proj, capture_output=True, text=True).stdout.strip()
    for name in ("gan", "vae"):
        assert artifacts_show(name, repo=str(proj)) == {"rev": head, "path": f"models/{name}"}
    r = dvc(proj, "artifacts", "get", ".", "nope")
    assert r.returncode != 0 and "nope" in r.stderr


@pytest.mark.slow   # TensorFlow in a pytest of its own
def test_reading_artifacts_after_tensorflow_leaves_the_test_output_open(tmp_path):
    """DVC checks artifact names with gto, whose import reconfigures logging and so closes every handler alive,
    absl's among them once TensorFlow is loaded, and with it pytest's capture file: every later test of that
    worker then failed (CI, 2026-12-04). Run in a pytest of its own with the suite's conftest."""
    import sys
    (tmp_path / "test_order.py").write_text(
        "import sys\n"
        "def test_tensorflow_first():\n    import tensorflow  # noqa: F401\n"
        "def test_then_artifact_names():\n    from dvc.repo.artifacts import check_name_format\n"
        "    check_name_format('gan')\n"
        "def test_output_still_open():\n    print('still open', file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-n0", "-q",
                        f"--rootdir={tmp_path}", f"--basetemp={tmp_path / 'bt'}", str(tmp_path / "test_order.py")],
                       cwd=tmp_path, capture_output=True, text=True,
                       env=tool_env(PYTHONPATH=f"{ROOT / 'tests'}{os.pathsep}{ROOT}"))
    assert r.returncode == 0 and "3 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.slow
def test_dvc_artifacts_get_downloads_the_model(smoke_pipeline, tmp_path):
    proj = copy_tree(smoke_pipeline[0], tmp_path / "proj")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["add", "-A"], cwd=proj, check=True)
    subprocess.run(git + ["commit", "-qm", "run"], cwd=proj, check=True)
    register(proj, "gan")
    dvc(proj, "artifacts", "get", ".", "gan", "-o", str(tmp_path / "got"), check=True)
    for f in ("config.json", "generator.weights.h5"):
        assert (tmp_path / "got" / f).read_bytes() == (proj / "models" / "gan" / f).read_bytes()


def committed(rel):
    return json.loads(published(rel))


def test_model_card_from_the_committed_results():
    params = yaml.safe_load(published("params.yaml"))
    meta = {"dataset": "fashion_mnist", "shape": [28, 28, 1], "n_classes": 10, "counts": {"train": 54000},
            "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                            "Bag", "Ankle boot"]}
    config = {"arch": "dcgan", "conditional": True, "latent_dim": 100, "shape": [28, 28, 1], "n_classes": 10}
    evaluation, spread = committed("metrics/evaluate.json"), committed("studies/spread/results.json")
    card = model_card(family="gan", config=config, meta=meta, params=params, evaluation=evaluation,
                      spread=spread, files=["generator.keras"])
    fd, sd = evaluation["gan"]["fd"], spread["stats"]["gan.fd"]["std"]
    assert f"| Fréchet distance | {fd:.3f} ± {sd:.2g} | {evaluation['floor']['fd']:.3f} | lower |" in card
    assert "**fashion_mnist**" in card and "train 54,000" in card and "Ankle boot" in card
    assert f"| `gan.lr` | `{params['gan']['lr']}` |" in card and "| `train.epochs` |" in card
    assert "| `vae." not in card and "ELBO" not in card   # the GAN's card holds only the GAN's numbers
    for heading in ("## Intended use", "## What it can and cannot do", "## Misuse"):
        assert heading in card
    assert "deepfakes" in card and "cannot make faces" in card and "chosen class" in card
    bare = model_card(family="vae", config={"arch": "conv", "shape": [28, 28, 1]}, meta=None, params={},
                      evaluation=None, spread=None, files=[])
    assert "No metrics were found" in bare and "meta.json was not found" in bare and " ± " not in bare


@pytest.mark.slow   # trains models to export
def test_export_carries_the_model_card(tiny_models, tmp_path):
    from genlab.command import execute, parser
    out = tmp_path / "export"
    run = {}
    for name, rel in (("metrics", "metrics/evaluate.json"), ("spread", "studies/spread/results.json"),
                      ("params", "params.yaml")):
        run[name] = tmp_path / rel.replace("/", "-")
        run[name].write_text(published(rel))     # the committed run, whatever the workspace holds
    line = execute(parser().parse_args(["export", str(tiny_models["gan"]), str(out), "--meta", str(tiny_models["meta"]),
                                        "--metrics", str(run["metrics"]), "--spread", str(run["spread"]),
                                        "--params", str(run["params"])]))
    assert line.endswith("MODEL_CARD.md)")
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: GAN (dcgan, conditional)") and "| `latent_dim` | `32` |" in card
    assert "Sneaker" in card and "deepfakes" in card and "- `generator.keras`" in card
    assert "± " in card   # the committed seed spread
    (tmp_path / "bad.json").write_text("{not json")
    from genlab.errors import GenlabError
    with pytest.raises(GenlabError, match=r"bad.json cannot be read \(JSONDecodeError\)"):
        execute(parser().parse_args(["export", str(tiny_models["gan"]), str(tmp_path / "e2"),
                                     "--metrics", str(tmp_path / "bad.json")]))
    assert not (tmp_path / "e2").exists()
