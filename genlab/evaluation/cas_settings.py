"""The cas.* params (classification accuracy score, genlab.evaluation.cas), validated without importing
TensorFlow (check_params reads them through stages/evaluate.py read_settings and must stay quick)."""

from dataclasses import dataclass

from genlab import config
from genlab.errors import GenlabError


@dataclass(frozen=True)
class CasSettings:
    """The cas: section of params.yaml: n training images, passes over them, batch size, Adam lr, seed."""
    n: int
    epochs: int
    batch_size: int
    lr: float
    seed: int

    def steps(self):
        """Optimizer updates of one classifier: epochs passes over n images in full batches."""
        return self.epochs * (self.n // self.batch_size)


def read_cas_settings(params):
    """CasSettings from a params dict, every value validated (keys cas.*)."""
    g = config.get
    s = CasSettings(n=g(params, "cas.n", int, lo=1), epochs=g(params, "cas.epochs", int, lo=1),
                    batch_size=g(params, "cas.batch_size", int, lo=1), lr=g(params, "cas.lr", float),
                    seed=g(params, "cas.seed", int, lo=0))
    if not s.lr > 0:
        raise GenlabError(f"cas.lr must be a number > 0, got {s.lr!r}")
    if s.batch_size > s.n:
        raise GenlabError(f"cas.batch_size {s.batch_size} exceeds cas.n {s.n} (the classifier's training images): "
                          "lower cas.batch_size or raise cas.n")
    return s
