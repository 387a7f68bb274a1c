"""The report's Markdown (genlab.outputs.report.build) from small inputs, without the pipeline:
every params.yaml key is in its params table, and the metric labels take their k from the params."""

import yaml

from conftest import flat_keys, published
from genlab.outputs.report import build

META = {"dataset": "fashion_mnist", "n_classes": 10, "counts": {"train": 54000, "val": 6000, "test": 10000},
        "shape": [28, 28, 1], "class_names": [f"c{i}" for i in range(10)]}
EVALUATION = {"n": 1000, "gan": {"fd": 12.5, "precision": 0.5, "recall": 0.25},
              "vae": {"fd": 20.0, "precision": 0.4, "recall": 0.3}, "floor": {"fd": 1.0, "precision": 0.7}}


def report(tmp_path, params):
    return build(out_md=tmp_path / "report.md", meta=META, params=params, evaluation=EVALUATION,
                 evaluator={"test_accuracy": 0.91}, figures={}, curves={}, validation={"evaluated": 9, "failed": 0})


def test_params_table_lists_every_key_of_params_yaml(tmp_path):
    params = yaml.safe_load(published("params.yaml"))
    md = report(tmp_path, params)
    table = md[md.index("## Params"):]
    rows = {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}
    assert rows == set(flat_keys(params, leaves=True))
    assert "| `validate.class_balance_tolerance` | `0.2` |" in table


def test_precision_recall_labels_show_the_k_of_the_params(tmp_path):
    params = yaml.safe_load(published("params.yaml"))
    params["evaluate"]["pr_k"] = 5
    md = report(tmp_path, params)
    assert "| precision (k=5) | 0.500 | 0.400 | 0.700 | higher |" in md
    assert "| recall (k=5) |" in md and "k=3" not in md


def test_cas_row_the_skipped_model_and_the_study_table(tmp_path):
    params = yaml.safe_load(published("params.yaml"))
    evaluation = {**EVALUATION, "cas_n": 1000, "gan": {**EVALUATION["gan"], "cas": 0.75},
                  "floor": {**EVALUATION["floor"], "cas": 0.85}}
    study = {"date": "2026-12-02", "command": "python -m studies.augmentation", "rule": "Rule: the rule.",
             "rows": [{"fraction": 0.01, "n_real": 540, "real_only_mean": 0.7, "real_only_std": 0.01,
                       "augmented_mean": 0.75, "augmented_std": 0.02, "difference": 0.05, "noise": 0.03,
                       "verdict": "yes", "answer": "1 %: augmentation helped."}]}
    md = build(out_md=tmp_path / "report.md", meta=META, params=params, evaluation=evaluation,
               evaluator={"test_accuracy": 0.91}, figures={}, curves={}, validation={"evaluated": 9, "failed": 0},
               study=study)
    assert "| classification accuracy score | 0.750 | – | 0.850 | higher |" in md
    assert "classification accuracy score 0.750 (floor 0.850)" in md
    assert "no score where the VAE is unconditional (it cannot be asked for a class)" in md
    assert "| 1 % | 540 | 0.7000 ± 0.0100 | 0.7500 ± 0.0200 | +0.0500 | 0.0300 | yes |" in md
    assert "- 1 %: augmentation helped." in md and "Rule: the rule." in md
    assert "augmentation study" not in report(tmp_path, params)      # no results: no section
