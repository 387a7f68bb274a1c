"""plot_images: the curves of `dvc plots diff REV --json` as PNG images, and a Markdown section that
shows them, for the pull-request comment (.github/workflows/cml.yaml): this branch's training and
quality curves drawn over main's, where a comment cannot run DVC's interactive HTML.

DVC's JSON holds, per plot of dvc.yaml, a Vega-Lite spec with its data inline (one colour per
revision); vl-convert renders it with its bundled Vega, offline. Image plots (the sample grids dvclive
logs) are left out: main's images are not in a pull request's workspace.
"""

import json
import re
from pathlib import Path

from genlab.errors import GenlabError


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "plot"


def read_plots(path):
    """`dvc plots diff --json` output -> [(title, Vega-Lite spec)] of its vega plots, in dvc.yaml's order."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise GenlabError(f"{path} cannot be read ({type(e).__name__}): give the output of "
                          "`dvc plots diff REV --json`") from None
    plots = data.get("data", data) if isinstance(data, dict) else None
    if not isinstance(plots, dict):
        raise GenlabError(f"{path} is not the output of `dvc plots diff REV --json` (no plots in it)")
    return [(title, entry["content"]) for title, entries in plots.items() for entry in entries
            if isinstance(entry, dict) and entry.get("type") == "vega" and isinstance(entry.get("content"), dict)]


def render(plots_json, out_dir, md_path, scale=1.0):
    """Write one PNG per vega plot into out_dir (replaced whole, atomically) and md_path, a Markdown
    section linking them relative to its own folder. Returns the number of images."""
    import os

    import vl_convert

    from genlab.io import atomic_dir, atomic_file
    plots = read_plots(plots_json)
    names = {}
    with atomic_dir(out_dir) as tmp:
        for title, spec in plots:
            name = slug(title)
            while name + ".png" in names.values():
                name += "-2"
            names[title] = name + ".png"
            (Path(tmp) / names[title]).write_bytes(vl_convert.vegalite_to_png(spec, scale=scale))
    rel = os.path.relpath(out_dir, Path(md_path).parent).replace(os.sep, "/")
    lines = [f"**{title}**\n\n![{title}]({rel}/{name})\n" for title, name in names.items()]
    if not lines:
        lines = ["No curves to compare (`dvc plots diff` found no plot data).\n"]
    with atomic_file(md_path, "w") as f:
        f.write("\n".join(lines))
    return len(names)
