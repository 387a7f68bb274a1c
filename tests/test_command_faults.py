"""The `genlab` command's faults (issue 26) on the tiny models of the session (tests/conftest.py
tiny_models): a folder of another kind, a path the user names that does not exist, output folders
created as `mkdir -p` would, large requests (refused, chunked, with progress), and every `genlab ...`
line README.md and docs/*.md show, run as written."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, own_lines, tool_env
from genlab.command import execute, parser
from genlab.errors import GenlabError


def run(*argv):
    return execute(parser().parse_args([str(a) for a in argv]))


def refused(*argv):
    with pytest.raises(GenlabError) as e:
        run(*argv)
    assert "\n" not in str(e.value)
    return str(e.value)


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


@pytest.fixture(scope="module")
def other_kinds(tiny_models, tmp_path_factory):
    """Folders that hold something other than a GAN or VAE: a real evaluator folder (save_evaluator),
    a model config of an unknown family, training checkpoints, the processed data, an export's SavedModel."""
    from genlab.evaluation.evaluator import build_evaluator, save_evaluator
    root = tmp_path_factory.mktemp("kinds")
    save_evaluator(build_evaluator((28, 28, 1), 10, filters=[4, 8], feature_dim=8, dropout=0.0),
                   root / "evaluator", {"dataset": "fashion_mnist"})
    (root / "diffusion").mkdir()
    (root / "diffusion" / "config.json").write_text(json.dumps({"family": "diffusion", "format": 1, "config": {}}))
    run("export", tiny_models["gan"], root / "export", "--meta", tiny_models["meta"])
    return {"evaluator": root / "evaluator", "diffusion": root / "diffusion", "export": root / "export",
            "checkpoints": tiny_models["gan"].parent / "ck" / "gan", "data": tiny_models["data"]}


@pytest.mark.parametrize("kind,message", [
    ("evaluator", "{d} holds the evaluator (the classifier evaluate scores with, train_evaluator's output), not a "
                  "GAN or VAE, so genlab generate cannot use it: give a model folder the pipeline wrote "
                  "(models/gan or models/vae)"),
    ("diffusion", "{d} holds a model of another kind ('diffusion'), which genlab generate cannot use: give a GAN "
                  "or VAE folder the pipeline wrote (models/gan or models/vae)"),
    ("checkpoints", "{d} holds training checkpoints, not a GAN or VAE, so genlab generate cannot use it: give a "
                    "model folder the pipeline wrote (models/gan or models/vae)"),
    ("data", "{d} holds processed data (normalize's output), not a GAN or VAE, so genlab generate cannot use it: "
             "give a model folder the pipeline wrote (models/gan or models/vae)"),
    ("export/saved_model", "{d} holds a TensorFlow SavedModel (the export's saved_model/), not a GAN or VAE, so "
                           "genlab generate cannot use it: give a model folder the pipeline wrote (models/gan or "
                           "models/vae)"),
])
def test_a_folder_of_another_kind_is_named(other_kinds, tmp_path, kind, message):
    """Issue 26 item 6: `genlab generate models/evaluator` names what the folder holds instead of
    `config.json not found: train the model first`; nothing is written."""
    name, _, sub = kind.partition("/")
    d = other_kinds[name] / sub if sub else other_kinds[name]
    before = tree(d)
    assert refused("generate", d, "-n", 4, "-o", tmp_path / "x.png") == message.format(d=d)
    assert tree(tmp_path) == [] and tree(d) == before


def test_an_export_is_used_like_its_model_folder(tiny_models, other_kinds, tmp_path):
    """An export (genlab export) carries its model folder: generate from it gives the model's images."""
    run("generate", tiny_models["gan"], "-n", 6, "--seed", 3, "-o", tmp_path / "a.npz")
    run("generate", other_kinds["export"], "-n", 6, "--seed", 3, "-o", tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert np.array_equal(a["x"], b["x"]) and np.array_equal(a["labels"], b["labels"])


@pytest.mark.slow   # the console in a subprocess
def test_the_evaluator_folder_in_one_line_from_the_console(other_kinds, tmp_path):
    r = subprocess.run([sys.executable, "-m", "genlab.command", "generate", str(other_kinds["evaluator"]),
                        "-o", str(tmp_path / "x.png")], cwd=tmp_path, capture_output=True, text=True,
                       env=tool_env(PYTHONPATH=str(ROOT)))
    assert r.returncode == 1 and r.stdout == ""
    assert own_lines(r.stderr) == [f"error: {other_kinds['evaluator']} holds the evaluator (the classifier evaluate "
                                   "scores with, train_evaluator's output), not a GAN or VAE, so genlab generate "
                                   "cannot use it: give a model folder the pipeline wrote (models/gan or models/vae)"]
    assert tree(tmp_path) == []


META_FIX = "give the data's meta.json (data/processed/meta.json after `dvc repro normalize`)"
DATA_FIX = "give the training data folder (data/processed after `dvc repro normalize`)"


@pytest.mark.parametrize("argv,message", [
    (["generate", "{gan}", "--class", "Bag", "--meta", "/nonexistent.json", "-o", "{tmp}/x.png"],
     f"--meta /nonexistent.json does not exist: {META_FIX}"),
    (["generate", "{gan}", "--meta", "{tmp}", "-o", "{tmp}/x.png"], f"--meta {{tmp}} is a folder: {META_FIX}"),
    (["interpolate", "{vae}", "--from", "0", "--to", "1", "--data", "{tmp}/nowhere", "-o", "{tmp}/x.png"],
     f"--data {{tmp}}/nowhere does not exist: {DATA_FIX}"),
    (["interpolate", "{vae}", "--from", "0", "--to", "1", "--data", "{meta}", "-o", "{tmp}/x.png"],
     f"--data {{meta}} is not a folder: {DATA_FIX}"),
    (["edit", "{vae}", "--image", "{tmp}/shirt.png", "--to", "Bag", "-o", "{tmp}/x.png"],
     "--image {tmp}/shirt.png does not exist: give the path of a PNG or JPEG image"),
    (["edit", "{vae}", "--image", "{tmp}/in.png", "--to", "Bag", "--meta", "/nonexistent.json", "-o", "{tmp}/x.png"],
     f"--meta /nonexistent.json does not exist: {META_FIX}"),
    (["export", "{gan}", "{tmp}/out", "--metrics", "{tmp}/evaluate.json"],
     "--metrics {tmp}/evaluate.json does not exist: give the evaluate stage's metrics (metrics/evaluate.json)"),
    (["export", "{gan}", "{tmp}/out", "--spread", "{tmp}/results.json"],
     "--spread {tmp}/results.json does not exist: give the seed spread's results (studies/spread/results.json)"),
    (["export", "{gan}", "{tmp}/out", "--params", "{tmp}/params.yaml"],
     "--params {tmp}/params.yaml does not exist: give the params file of the training (params.yaml)"),
    (["serve", "{gan}", "--meta", "/nonexistent.json"], f"--meta /nonexistent.json does not exist: {META_FIX}"),
    (["serve", "{vae}", "--data", "{tmp}/nowhere"], f"--data {{tmp}}/nowhere does not exist: {DATA_FIX}"),
    (["plots", "{tmp}/plots.json", "{tmp}/plots", "--md", "{tmp}/plots.md"],
     "plots_json {tmp}/plots.json does not exist: give the output of `dvc plots diff REV --json`"),
])
def test_a_path_the_user_names_must_exist(tiny_models, tmp_path, argv, message):
    """Issue 26 item 7: every option that takes a path, named but absent, is its own line, said
    before anything else (not `unknown class` later), and nothing is written."""
    Image.new("L", (28, 28)).save(tmp_path / "in.png")
    fmt = {"gan": tiny_models["gan"], "vae": tiny_models["vae"], "meta": tiny_models["meta"], "tmp": tmp_path}
    before = tree(tmp_path)
    assert refused(*(a.format(**fmt) for a in argv)) == message.format(**fmt)
    assert tree(tmp_path) == before


def test_an_absent_default_path_is_not_an_error(tiny_models, tmp_path, monkeypatch):
    """The defaults (data/processed/meta.json, metrics/evaluate.json, ...) may be absent: class ids
    stand in for names, the model card says what it lacks."""
    monkeypatch.chdir(tmp_path)
    assert run("generate", tiny_models["gan"], "-n", 4, "--class", "7", "-o", "x.png").endswith("4 images -> x.png")
    run("export", tiny_models["vae"], "out")
    assert "meta.json was not found" in (tmp_path / "out" / "MODEL_CARD.md").read_text()


def test_output_folders_are_created_like_mkdir_p(tiny_models, tmp_path, monkeypatch):
    """Issue 26 item 10: `genlab export models/gan exported/gan` (README) in a fresh clone, and -o in a
    new folder, create the folders above the output; a command that fails leaves none of them."""
    monkeypatch.chdir(tmp_path)
    run("export", tiny_models["gan"], "exported/gan", "--meta", tiny_models["meta"])
    assert (tmp_path / "exported" / "gan" / "export.json").is_file()
    run("generate", tiny_models["vae"], "-n", 4, "-o", "a/b/c.npz")
    with np.load(tmp_path / "a" / "b" / "c.npz") as z:
        assert z["x"].shape == (4, 28, 28, 1)
    before = tree(tmp_path)
    assert refused("generate", tiny_models["gan"], "--class", "Spaceship", "--meta", tiny_models["meta"],
                   "-o", "new/deep/x.png").startswith("unknown class 'Spaceship'")
    assert tree(tmp_path) == before

    def broken_png(*args, **kwargs):                      # a failure while writing, once the folders exist
        assert (tmp_path / "new" / "deep").is_dir()
        raise GenlabError("No space left on device")
    monkeypatch.setattr("genlab.command.grid_png", broken_png)
    assert refused("generate", tiny_models["gan"], "-n", 2, "-o", "new/deep/x.png") == "No space left on device"
    assert tree(tmp_path) == before                       # no new/ or new/deep/ left behind
    (tmp_path / "file").write_text("")
    assert refused("generate", tiny_models["gan"], "-n", 1, "-o", "file/x.png") == (
        "file/x.png: the folder file cannot be created (File exists): give an output path whose folders exist or "
        "can be created")
    assert tree(tmp_path) == sorted(before + ["file"])


# ---- every `genlab ...` line of README.md and docs/*.md, as written

def doc_commands():
    """(page, line) of every `genlab ...` command line in a fenced code block of README.md and docs/*.md."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), flags=re.S):
            found += [(page.relative_to(ROOT).as_posix(), ln.strip()) for ln in block.splitlines()
                      if ln.strip().startswith("genlab ")]
    return found


def test_the_docs_show_the_commands_this_test_runs():
    pages = {page for page, _ in doc_commands()}
    verbs = {shlex.split(line, comments=True)[1] for _, line in doc_commands()}
    assert pages == {"README.md", "docs/using-models.md"}
    assert verbs == {"generate", "interpolate", "edit", "export", "serve"}


@pytest.fixture
def clone(tiny_models, tmp_path):
    """A folder laid out like a fresh clone after `dvc repro`: models/gan, models/vae (the tiny models),
    data/processed (the real slice with Fashion-MNIST's class names), the images the docs' lines name."""
    for name in ("gan", "vae"):
        (tmp_path / "models").mkdir(exist_ok=True)
        (tmp_path / "models" / name).symlink_to(tiny_models[name])
    data = tmp_path / "data" / "processed"
    data.mkdir(parents=True)
    for f in tiny_models["data"].glob("*.npy"):
        (data / f.name).symlink_to(f)
    (data / "meta.json").write_text(tiny_models["meta"].read_text())
    x = np.load(tiny_models["data"] / "test_x.npy")
    for i, name in enumerate(("my-shirt.png", "a.png", "b.png")):
        Image.fromarray(((x[i, ..., 0] + 1.0) * 127.5).astype(np.uint8)).save(tmp_path / name)
    return tmp_path


@pytest.mark.slow   # runs every documented command
@pytest.mark.parametrize("page", ["README.md", "docs/using-models.md"])
def test_every_command_the_docs_show_runs_as_written(clone, page, monkeypatch):
    """Issue 26 item 10: each line runs unchanged in the clone (in the page's order, so `genlab serve
    exported/gan` serves what `genlab export` wrote); serve loads its models without binding a port."""
    from genlab import command
    from genlab.outputs.serve import Models
    monkeypatch.chdir(clone)
    lines = [line for p, line in doc_commands() if p == page]
    assert lines
    for line in lines:
        args = parser().parse_args(shlex.split(line, comments=True)[1:])
        if args.command == "serve":
            command.check_paths(args)
            models = Models(command, args.models, args.meta, args.data, args.max_images)
            assert len(models.models) == len(args.models), line
            continue
        summary = execute(args)
        assert summary.startswith(f"genlab {args.command}: "), (line, summary)
        out = Path(args.out_dir if args.command == "export" else args.out)
        assert out.exists(), line


# ---- large requests: refused before starting when they cannot fit, chunked, with progress

def gen_args(model_dir, out, n, *extra):
    return parser().parse_args(["generate", str(model_dir), "-n", str(n), "-o", str(out), *map(str, extra)])


@pytest.mark.parametrize("which,extra", [("gan", ()), ("gan", ("--class", "Bag")), ("vae", ())])
def test_a_chunked_request_gives_the_images_of_one_call(tiny_models, tmp_path, monkeypatch, capsys, which, extra):
    """Issue 26 item 5: a request larger than a chunk is drawn and written chunk by chunk; the .npz is
    byte for byte the file one call writes (genlab.io.write_npz of generate_images), the .png too, and
    stderr says how far it is in a few lines (none for a small request)."""
    from genlab import command
    from genlab.io import write_npz
    from genlab.models.load import load_model
    model = load_model(tiny_models[which])
    extra = (*extra, "--meta", tiny_models["meta"])
    x01, labels = command.generate_images(model, gen_args(tiny_models[which], "x.npz", 2500, *extra),
                                          command.class_names(tiny_models["meta"], 10))
    write_npz(tmp_path / "one.npz", x=np.clip(x01, 0, 1), **({} if labels is None else {"labels": labels}))
    run("generate", tiny_models[which], "-n", 2500, *extra, "-o", tmp_path / "one.png")
    assert own_lines(capsys.readouterr().err) == []                     # one chunk: no progress lines
    monkeypatch.setattr(command, "CHUNK_BYTES", 1)                      # chunks of 1,000 images
    run("generate", tiny_models[which], "-n", 2500, *extra, "-o", tmp_path / "chunked.npz")
    assert own_lines(capsys.readouterr().err) == [
        "genlab generate: 1,000 of 2,500 images (40 %)", "genlab generate: 2,000 of 2,500 images (80 %)",
        "genlab generate: 2,500 of 2,500 images (100 %)"]
    assert (tmp_path / "chunked.npz").read_bytes() == (tmp_path / "one.npz").read_bytes()
    run("generate", tiny_models[which], "-n", 2500, *extra, "-o", tmp_path / "chunked.png")
    assert (tmp_path / "chunked.png").read_bytes() == (tmp_path / "one.png").read_bytes()


def test_chunked_codes_of_a_code_mixture_are_those_of_one_call(tiny_models):
    """A VAE sampled from a mixture fitted to its codes (vae.prior gmm) draws the components of all codes
    before their noise: the chunks reproduce that order."""
    from genlab import command
    from genlab.models.load import load_model
    model = load_model(tiny_models["vae"])
    codes = np.random.default_rng(1).standard_normal((500, model.latent_dim)) + 2.0
    model.fit_code_gmm(codes, components=3, seed=0)
    args = gen_args(tiny_models["vae"], "x.npz", 2300, "--seed", 5)
    whole, _ = command.generate_images(model, args, None)
    chunks = [x for x, _ in command.image_chunks(model, args, None, 1000)]
    assert [len(x) for x in chunks] == [1000, 1000, 300]
    assert np.array_equal(np.concatenate(chunks), whole)


def test_an_npz_request_runs_in_constant_memory(tiny_models, tmp_path, monkeypatch):
    """20,000 images in chunks of 1,000: numpy never holds more than a few chunks (a whole x would be
    63 MB); np.load reads the file back whole."""
    import tracemalloc

    from genlab import command
    monkeypatch.setattr(command, "CHUNK_BYTES", 1)
    tracemalloc.start()
    try:
        run("generate", tiny_models["gan"], "-n", 20000, "-o", tmp_path / "big.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24e6, peak
    with np.load(tmp_path / "big.npz") as z:
        assert z["x"].shape == (20000, 28, 28, 1) and z["labels"].shape == (20000,)
        assert 0.0 <= z["x"].min() and z["x"].max() <= 1.0 and len(np.unique(z["labels"])) == 10


def test_a_request_that_cannot_fit_is_refused_before_starting(tiny_models, tmp_path, monkeypatch):
    """-n 100000000: a .png grid needs the images in memory, an .npz needs room on its disk; each is one
    line with the limit and the fix, before anything is drawn, and nothing is written."""
    import collections
    import shutil

    import genlab.training.budget
    monkeypatch.setattr(genlab.training.budget, "available_memory", lambda: 8 << 30)
    assert refused("generate", tiny_models["gan"], "-n", 100000000, "-o", tmp_path / "x.png") == (
        "-n 100000000: a .png grid of 100000000 images needs about 2336.5 GiB of memory but 8.0 GiB is available: "
        "lower -n, or write an .npz (-o images.npz is written in chunks, in constant memory)")
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100 << 30, 90 << 30, 10 << 30))
    assert refused("generate", tiny_models["gan"], "-n", 100000000, "-o", tmp_path / "new" / "x.npz") == (
        f"-n 100000000: {tmp_path / 'new' / 'x.npz'} would take about 292.4 GiB but 10.0 GiB are free on the disk "
        f"of {tmp_path}: lower -n, or write to a disk with more room")
    assert tree(tmp_path) == []


@pytest.mark.slow   # the console in a subprocess
def test_the_console_refuses_a_huge_request_in_one_line(tiny_models, tmp_path):
    """The issue's case as users run it: no traceback (it was `Unable to allocate 74.5 GiB`), at once."""
    r = subprocess.run([sys.executable, "-m", "genlab.command", "generate", str(tiny_models["gan"]), "-n",
                        "100000000", "-o", str(tmp_path / "x.png")], cwd=tmp_path, capture_output=True, text=True,
                       env=tool_env(PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 1 and r.stdout == "", r.stderr[-2000:]
    (line,) = own_lines(r.stderr)
    assert re.fullmatch(r"error: -n 100000000: a \.png grid of 100000000 images needs about 2336\.5 GiB of memory "
                        r"but [0-9.]+ [MG]iB is available: lower -n, or write an \.npz \(-o images\.npz is written "
                        r"in chunks, in constant memory\)", line), line
    assert tree(tmp_path) == []


def test_a_failure_half_way_leaves_nothing(tiny_models, tmp_path, monkeypatch):
    """A disk that fills (or Ctrl-C) after two of three chunks: no file, no temporary sibling, no folder made."""
    from genlab import command
    monkeypatch.setattr(command, "CHUNK_BYTES", 1)
    chunks = command.image_chunks

    def two_then_full(*args):
        for i, part in enumerate(chunks(*args)):
            if i == 2:
                raise OSError(28, "No space left on device")
            yield part
    monkeypatch.setattr(command, "image_chunks", two_then_full)
    monkeypatch.chdir(tmp_path)
    for out in ("deep/x.npz", "deep/x.png"):
        with pytest.raises(OSError, match="No space left"):
            run("generate", tiny_models["gan"], "-n", 2500, "-o", out)
        assert tree(tmp_path) == []
