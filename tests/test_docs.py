"""The docs name only things that exist: params keys, files, links, modules and functions, env variables.

For README.md, docs/*.md and benchmarks/README.md (no TensorFlow import: files are parsed, not run):
- every params key in code (`train.epochs`, `-S gan.loss=ns`, `evaluate.min_evaluator_accuracy.mnist`)
  exists in params.yaml; a dotted name that is a committed metric (`gan.fd` in `dvc exp show`) is fine;
- every repository path in code (`genlab/training/loop.py`, `stages/sample.py`, `tests/test_<name>.py`)
  exists, or is (under, or above) an output declared in dvc.yaml;
- every relative Markdown link resolves from the page's folder, and its #anchor names a heading there;
- every `genlab.x.y` / `genlab.x.y.name` is a module of the package and a top-level name in it,
  and every `stages.x` a stage script;
- every GENLAB_* environment variable is a string the code reads (a literal in a .py file);
- every table has a header row and the same number of cells in every row (as GitHub renders it);
- README.md stays under 12 KB, and test counts, durations and load averages stay in docs/testing.md
  and benchmarks/README.md.
"""

import ast
import fnmatch
import glob
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from conftest import published

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
         "benchmarks/README.md"]
PARAMS = yaml.safe_load(published("params.yaml"))

# Named on purpose although they do not exist (the docs show what happens when you use them).
NOT_PARAMS = {"gan.learning_rate": "the example of a -S key DVC refuses",
              "train.epoch": "the example of a typo check_params refuses",
              "train.classes": "a table of the validation suite (split.table) in an error message",
              "train.images": "a table of the validation suite (split.table) in an error message"}
# Paths that are not in a fresh clone but are made by a documented command.
MADE_LOCALLY = {".venv": "bootstrap.sh", ".dvc/config.local": "dvc remote modify --local",
                "benchmarks/results": "the benchmark scripts", "reports/cml-comment.md": "the CML workflow"}
CHECKED_EXT = (".py", ".md", ".sh", ".toml", ".yaml", ".yml")   # a path ending so is checked wherever it points
FILE_EXT = {"json", "py", "md", "npz", "npy", "keras", "h5", "yaml", "png", "txt", "tsv", "gz", "jpg"}
STALE_OK = {"docs/testing.md", "benchmarks/README.md"}


# ---------------------------------------------------------------------------------------- parsing

def split_markdown(text):
    """(code, prose): the fenced blocks and inline code spans, and the rest with code removed."""
    fences = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "\n", text, flags=re.S | re.M)
    spans = [m.group(2) for m in re.finditer(r"(`+)(.+?)\1", prose, flags=re.S)]
    prose = re.sub(r"(`+)(.+?)\1", " ", prose, flags=re.S)
    return fences + spans, prose


def params_keys(code_chunks):
    """Dotted names starting with a params.yaml section, as written in code: train.epochs, gan.lr=..."""
    sections = "|".join(map(re.escape, PARAMS))
    pattern = re.compile(rf"(?<![\w./$@-])(?:{sections})(?:\.\w+)+(?![\w/(-])")
    keys = set()
    for chunk in code_chunks:
        for m in pattern.finditer(chunk):
            key = m.group(0)
            if key.split(".")[-1] not in FILE_EXT:     # evaluate.json, evaluator.weights.h5: file names
                keys.add(key)
    return keys


def path_tokens(code_chunks):
    """Tokens that look like repository paths: a '/' inside, no URL, no absolute or home path."""
    tokens = set()
    for chunk in code_chunks:
        for tok in re.split(r"[\s'\"=()\[\]|;&]+", chunk):
            tok = tok.rstrip(".,:;")
            if "/" not in tok or "://" in tok or "@" in tok or tok.startswith(("/", "~", "..", "$")):
                continue
            if re.fullmatch(r"[\w.<>{}*,-]+(/[\w.<>{}*,-]*)+", tok):
                tokens.add(tok)
    return tokens


def links(prose):
    """Markdown link and image targets in prose (code removed), except URLs."""
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    """The #anchors a Markdown file offers (GitHub numbers repeated headings -1, -2, ...)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    seen, out = {}, set()
    for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M):
        s = slug(h)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


# ------------------------------------------------------------------------------------------ facts

@lru_cache(maxsize=None)
def metric_keys():
    """Dotted keys of the committed metrics files (what `dvc exp show` calls gan.fd, ...)."""
    keys = set()

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            keys.add(prefix)
    for f in [*ROOT.glob("metrics/*.json"), *ROOT.glob("dvclive/*/metrics.json")]:
        walk("", json.loads(f.read_text()))
    return keys


def params_key_exists(key):
    node = PARAMS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@lru_cache(maxsize=None)
def declared_paths():
    """Every out, metric and plot path of dvc.yaml (what the pipeline makes), matrix and ${...} expanded.
    Dependencies are not included: those that are not outputs are source files, which must exist."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    paths = set()

    def entries(items):
        for item in items or []:
            yield from (item if isinstance(item, dict) else {item: None})
    for stage in dvc["stages"].values():
        items = [*entries(stage.get("outs")), *entries(stage.get("metrics")), *entries(stage.get("plots"))]
        values = [{"item.model": m} for m in (stage.get("matrix") or {}).get("model", [None])]
        for v in values:
            for p in items:
                for k, x in v.items():
                    p = p.replace("${" + k + "}", str(x))
                paths.add(p.rstrip("/"))
    return paths


def expand(pattern):
    """Brace alternatives {a,b} expanded, <placeholder> made a wildcard."""
    pattern = re.sub(r"<[^>]*>", "*", pattern)
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [q for alt in m.group(1).split(",") for q in expand(pattern[:m.start()] + alt + pattern[m.end():])]


def path_problem(tok):
    """None if the repository path exists (or is a pipeline output), else why not."""
    first = tok.split("/")[0]
    top = {p.name for p in ROOT.iterdir()} | {p.split("/")[0] for p in declared_paths()}
    if first not in top and not tok.endswith(CHECKED_EXT):
        return None                                   # faces/, fashion-mnist/*.gz: not repository paths
    for pat in expand(tok.rstrip("/")):
        if glob.glob(str(ROOT / pat)):
            return None
        for d in declared_paths() | set(MADE_LOCALLY):
            if fnmatch.fnmatch(d, pat) or pat == d or pat.startswith(d + "/") or d.startswith(pat + "/"):
                return None
    return f"{tok}: no such file or folder, and not a dvc.yaml output"


@lru_cache(maxsize=None)
def top_level_names(path):
    tree = ast.parse(Path(path).read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names[n.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                names[(a.asname or a.name).split(".")[0]] = node
    return names


def dotted_problem(name):
    """None if genlab.a.b[.func[.attr]] is a module of the package and a name defined in it."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        module = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        if module.exists():
            break
    else:
        return f"{name}: no module {parts[0]}"
    rest = parts[i:]
    if not rest:
        return None
    names = top_level_names(module)
    if rest[0] not in names:
        return f"{name}: {'.'.join(parts[:i])} has no top-level name {rest[0]!r}"
    node = names[rest[0]]
    if len(rest) > 1:
        if not isinstance(node, ast.ClassDef):
            return f"{name}: {rest[0]} is not a class, so it has no attribute {rest[1]!r}"
        attrs = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        attrs |= {t.id for n in node.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                  for t in ast.walk(n) if isinstance(t, ast.Name)}
        if rest[1] not in attrs:
            return f"{name}: class {rest[0]} has no attribute {rest[1]!r}"
    return None


@lru_cache(maxsize=None)
def code_strings():
    """Every string literal of the project's Python files (a GENLAB_* name the code reads is one), and
    the variables bootstrap.sh reads (`${GENLAB_…}`)."""
    out = set(re.findall(r"\$\{(GENLAB_\w+)", (ROOT / "bootstrap.sh").read_text()))
    for folder in ("genlab", "stages", "tests", "benchmarks"):
        for f in (ROOT / folder).rglob("*.py"):
            if f.name == Path(__file__).name:
                continue
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    out.add(node.value)
    return out


# ------------------------------------------------------------------------------------ the checks

def problems(text, page=ROOT / "README.md"):
    """Every wrong name in one page's text, as readable lines."""
    code, prose = split_markdown(text)
    found = []
    for key in sorted(params_keys(code)):
        if not params_key_exists(key) and key not in metric_keys() and key not in NOT_PARAMS:
            found.append(f"params key {key}: not in params.yaml (nor a committed metric)")
    for tok in sorted(path_tokens(code)):
        if (p := path_problem(tok)):
            found.append(f"path {p}")
    for target in links(prose):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            found.append(f"link {target}: {dest} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            found.append(f"link {target}: no heading with anchor #{anchor} in {dest.name}")
    for name in sorted(set(re.findall(r"(?<![\w/.-])genlab(?:\.\w+)+", text))):
        if (p := dotted_problem(name)):
            found.append(f"name {p}")
    for name in sorted(set(re.findall(r"(?<![\w/.])stages\.(\w+)", text))):
        if not (ROOT / "stages" / f"{name}.py").exists():
            found.append(f"name stages.{name}: no stages/{name}.py")
    for var in sorted(set(re.findall(r"\bGENLAB_[A-Z0-9_]*[A-Z0-9]\b", text))):
        if var not in code_strings():
            found.append(f"environment variable {var}: the code never reads it")
    return found


@pytest.mark.parametrize("page", PAGES)
def test_the_docs_name_only_what_exists(page):
    path = ROOT / page
    assert path.exists(), f"{page} is missing"
    found = problems(path.read_text(), path)
    assert not found, f"{page} names things that do not exist:\n  " + "\n  ".join(found)


def test_every_docs_page_is_checked_and_linked_from_the_index():
    index = (ROOT / "docs" / "README.md").read_text()
    for p in (ROOT / "docs").glob("*.md"):
        if p.name != "README.md":
            assert f"]({p.name}" in index, f"docs/README.md does not link {p.name}"


@pytest.mark.parametrize("page", PAGES)
def test_tables_are_well_formed(page):
    """Every table has a header row above its |---| line, and every row has the header's cell count
    (GitHub splits cells at every | not escaped as \\|, inside code spans too)."""
    text = re.sub(r"^```.*?^```", "", (ROOT / page).read_text(), flags=re.S | re.M)
    lines = text.split("\n")

    def cells(line):
        return len(re.findall(r"(?<!\\)\|", line.strip().strip("|"))) + 1
    for i, line in enumerate(lines):
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+\s*", line):
            header = lines[i - 1] if i else ""
            assert header.startswith("|"), f"{page}:{i + 1}: a table without a header row"
            n = cells(header)
            assert cells(line) == n, f"{page}:{i + 1}: the |---| line has {cells(line)} cells, the header {n}"
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert cells(lines[j]) == n, f"{page}:{j + 1}: {cells(lines[j])} cells, the header has {n}"
                j += 1


def test_readme_is_short():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 12 * 1024, f"README.md is {size} bytes: move detail to a docs/ page (limit 12,288)"


@pytest.mark.parametrize("page", [p for p in PAGES if p not in STALE_OK])
def test_no_figure_that_goes_stale(page):
    text = (ROOT / page).read_text()
    stale = re.findall(r"\b\d[\d,]* tests\b|\bload average\b|\bload [≈~\d]|\b\d+ min \d+ s\b|\b\d+ minutes on\b",
                       text)
    assert not stale, f"{page}: {stale}: test counts, durations and loads belong in docs/testing.md or " \
                      "benchmarks/README.md"


def test_the_checks_catch_wrong_names():
    wrong = """Run `dvc exp run -S train.epochz=5` and read `genlab/trainig/loop.py` or `stages/sampel.py`;
see [the page](docs/nope.md), [a heading](docs/pipeline.md#no-such-heading), `genlab.models.load_model`,
genlab.models.load.load_modle, `genlab.nomodule`, python -m stages.nostage, GENLAB_NO_SUCH_VAR.
```bash
dvc exp run -S gan.los=ns
.venv/bin/python benchmarks/bench_nope.py
```"""
    found = "\n".join(problems(wrong))
    for name in ("train.epochz", "genlab/trainig/loop.py", "stages/sampel.py", "docs/nope.md", "#no-such-heading",
                 "genlab.models.load_model", "load_modle", "genlab.nomodule", "stages.nostage",
                 "GENLAB_NO_SUCH_VAR", "gan.los", "benchmarks/bench_nope.py"):
        assert name in found, f"{name} not caught:\n{found}"
    right = """`train.epochs`, `evaluate.min_evaluator_accuracy.mnist`, `gan.fd` (a metric), `metrics/evaluate.json`,
`models/gan/`, `samples/<model>.npz`, `data/processed/{train,val,test}_{x,y}.npy`, `tests/test_<name>.py`,
`genlab.models.load.load_model`, `genlab.training.loop`, `faces/smiling/0042.jpg`, [docs](docs/pipeline.md#report),
GENLAB_MIRROR, `python -m stages.fetch`."""
    assert problems(right) == []
