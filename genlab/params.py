"""The sections of params.yaml as validated, frozen objects, and the values each param allows.

One class per section (Data, Validate, Normalize, Train, Gan, Vae, Evaluator, Sample, Evaluate, Cas), its
fields named exactly as the section's keys, each field's check (kind, range, allowed values, or a
function) declared once beside it. `read(params, "gan")` checks every value of the section and
returns a Gan, or raises one GenlabError naming every bad value ("; "-joined); `read_all` reads
several sections the same way; `Gan.of(lr=..., ...)` builds one from values given in code (tests,
benchmarks) with the same checks. The library takes these objects whole (train_gan(..., gan=gan)),
so a new param is a field here, the line of code that uses it, params.yaml and dvc.yaml. `fields=`
reads only some keys of a section (a stage reads exactly the keys dvc.yaml lists for it): the
others stay None. The keys are read through genlab.config.get
(the GENLAB_PARAMS_AUDIT hook). No TensorFlow import: check_params runs every stage's checks in a second.

The allowed values below are the only copy: the library modules (models.gan, models.vae,
training.devices, data.datasets) import them. `train.epochs` keeps the recipe's name; the library
calls it iterations (genlab.training.loop.TrainSettings.from_params).
"""

from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields

from genlab import config
from genlab.errors import GenlabError

DATASETS = ("fashion_mnist", "mnist", "url", "image_folder")   # data.name (built-ins: genlab.data.datasets)
CHANNELS = (1, 3)                                               # data.channels (image_folder)
GAN_ARCHS = ("mlp", "dcgan")
GAN_LOSSES = ("ns", "hinge")
VAE_ARCHS = ("mlp", "conv")
VAE_VARIANTS = ("vae", "ae")
VAE_PRIORS = ("normal", "gmm")
STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = {"none": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}   # -> Keras dtype policy
XLA_MODES = ("auto", "true", "false")


def param(kind, *, lo=None, hi=None, choices=None, check=None):
    """A field checked by config.get(kind, lo, hi, choices), then by check(key, value) -> value."""
    return field(default=None, metadata={"kind": kind, "lo": lo, "hi": hi, "choices": choices, "check": check})


# ---- checks of one value beyond kind and range: check(key, value) -> the value to keep -------------

def _above_zero(key, value):
    """A number > 0 (a learning rate): 0 and negative values get the same message."""
    if not value > 0:
        raise GenlabError(f"{key} must be a number > 0, got {value!r}")
    return value


def _xla(key, value):
    """auto, true or false (YAML reads the last two as booleans) -> "auto" | "true" | "false"."""
    if value is True or value is False:
        return str(value).lower()
    if value not in XLA_MODES:
        raise GenlabError(f"{key} must be auto, true or false, got {value!r}")
    return value


def _value_range(key, value):
    if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise GenlabError(f"{key} must be a list of two numbers [low, high], got {value!r}")
    if not value[0] < value[1]:
        raise GenlabError(f"{key} must be [low, high] with low < high, got {value!r}")
    return value


def _positive_ints(key, value):
    if not value or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value):
        raise GenlabError(f"{key} must be a non-empty list of positive integers, got {value!r}")
    return value


def _class_pair(key, value):
    """[from_class, to_class]; that both exist in the data is checked where the data's meta is read."""
    if len(value) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in value) \
            or value[0] == value[1]:
        raise GenlabError(f"{key} must be [from_class, to_class], two different class ids, got {value!r}")
    return value


def check_image_folder(image_size, channels, test_fraction):
    """Refuse image_folder values the models cannot use (the conv GAN/VAE halve the side twice)."""
    if image_size < 4 or image_size % 4:
        raise GenlabError(f"data.image_size must be a multiple of 4 (the conv GAN and VAE halve it twice), "
                          f"got {image_size}: use e.g. 28, 32 or 64")
    if channels not in CHANNELS:
        raise GenlabError(f"data.channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if not 0.0 < test_fraction <= 0.5:
        raise GenlabError(f"data.test_fraction must be in (0, 0.5], got {test_fraction!r}")


def check_gates(gates, key="evaluate.min_evaluator_accuracy"):
    """A mapping {dataset name: minimum test accuracy} with every value a number in [0, 1]; the values
    as floats."""
    for dataset, gate in gates.items():
        if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0 <= gate <= 1:
            raise GenlabError(f"{key}.{dataset} must be a number in [0, 1], got {gate!r}")
    return {dataset: float(gate) for dataset, gate in gates.items()}


# ---- the sections ----------------------------------------------------------------------------------

class Section:
    """What every section object has: of() (built from values in code), asdict() (the fields read) and
    check() (between its fields)."""

    @classmethod
    def of(cls, **values):
        """The section from values given in code (tests, benchmarks), every field required and checked
        as read() checks params.yaml (ints accepted for floats): Gan.of(arch="mlp", ...)."""
        name = next(k for k, c in SECTIONS.items() if c is cls)
        names = [f.name for f in dataclass_fields(cls)]
        unknown, missing = sorted(set(values) - set(names)), [n for n in names if n not in values]
        if unknown or missing:
            raise GenlabError(f"{cls.__name__}.of needs exactly the {name}.* params, got unknown {unknown}, "
                              f"missing {missing}")
        return read({name: values}, name)

    def replace(self, **changes):
        """A copy with some values changed, checked like of()."""
        return type(self).of(**{**self.asdict(), **changes})

    def asdict(self):
        """{key: value} of the fields that were read (a partial read leaves the others None)."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self) if getattr(self, f.name) is not None}

    def check(self):
        """Checks between fields, run by read() after a full read of valid values (raise GenlabError)."""

    @classmethod
    def bounds(cls, name):
        """(lo, hi) a field's values must lie in (None: no bound)."""
        meta = next(f.metadata for f in dataclass_fields(cls) if f.name == name)
        return meta["lo"], meta["hi"]


@dataclass(frozen=True)
class Data(Section):
    """data: the dataset fetch brings (built-in, a URL, or a folder of images)."""
    name: str = param(str, choices=DATASETS)
    url: str = param(str)
    sha256: str = param(str)
    path: str = param(str)
    image_size: int = param(int, lo=4, hi=1024)
    channels: int = param(int, choices=CHANNELS)
    test_fraction: float = param(float, lo=0.0, hi=0.5)
    seed: int = param(int, lo=0)

    def check(self):
        check_image_folder(self.image_size, self.channels, self.test_fraction)


@dataclass(frozen=True)
class Validate(Section):
    """validate: the limits of the great-expectations suite."""
    class_balance_tolerance: float = param(float, lo=0.0, hi=1.0)
    max_blank_fraction: float = param(float, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class Normalize(Section):
    """normalize: pixel range of data/processed and the train/validation split."""
    range: list = param(list, check=_value_range)
    val_fraction: float = param(float, lo=0.0, hi=0.5)
    seed: int = param(int, lo=0)


@dataclass(frozen=True)
class Train(Section):
    """train: the loop shared by train_gan and train_vae (epochs = iterations of one batch each), and
    where and how it runs. xla is normalised to "auto" | "true" | "false"."""
    epochs: int = param(int, lo=1)
    batch_size: int = param(int, lo=1)
    seed: int = param(int, lo=0)
    log_every: int = param(int, lo=1)
    ckpt_every: int = param(int, lo=1)
    snapshot_every: int = param(int, lo=0)
    strategy: str = param(str, choices=STRATEGIES)
    mixed_precision: str = param(str, choices=PRECISIONS)
    xla: str = param(object, check=_xla)
    data_in_memory: bool = param(bool)


@dataclass(frozen=True)
class Gan(Section):
    """gan: the GAN's networks (genlab.models.gan.gan_config) and optimisers (genlab.training.gan.GanTask)."""
    arch: str = param(str, choices=GAN_ARCHS)
    conditional: bool = param(bool)
    latent_dim: int = param(int, lo=1)
    hidden: int = param(int, lo=1)
    filters: int = param(int, lo=1)
    lr: float = param(float, check=_above_zero)
    beta_1: float = param(float, lo=0.0, hi=0.9999)
    beta_2: float = param(float, lo=0.0, hi=0.9999)
    d_lr: float = param(float, lo=0.0)
    loss: str = param(str, choices=GAN_LOSSES)
    ema: float = param(float, lo=0.0, hi=0.9999)


@dataclass(frozen=True)
class Vae(Section):
    """vae: the (variational) autoencoder's networks (genlab.models.vae.vae_config), optimiser and prior
    (genlab.training.vae.VaeTask)."""
    arch: str = param(str, choices=VAE_ARCHS)
    variant: str = param(str, choices=VAE_VARIANTS)
    latent_dim: int = param(int, lo=1)
    beta: float = param(float, lo=0.0)
    hidden: int = param(int, lo=2)
    filters: int = param(int, lo=1)
    lr: float = param(float, check=_above_zero)
    prior: str = param(str, choices=VAE_PRIORS)
    prior_components: int = param(int, lo=1)
    temperature: float = param(float, check=_above_zero)


@dataclass(frozen=True)
class Evaluator(Section):
    """evaluator: the yardstick CNN (keyword arguments of genlab.evaluation.evaluator.train_evaluator)."""
    filters: list = param(list, check=_positive_ints)
    feature_dim: int = param(int, lo=1)
    dropout: float = param(float, lo=0.0, hi=0.9)
    epochs: int = param(int, lo=1)
    warmup_epochs: int = param(int, lo=0)
    batch_size: int = param(int, lo=1)
    lr: float = param(float, lo=1e-6, hi=1.0)
    seed: int = param(int, lo=0)

    def check(self):
        if self.warmup_epochs >= self.epochs:
            raise GenlabError(f"evaluator.warmup_epochs ({self.warmup_epochs}) must be less than evaluator.epochs "
                              f"({self.epochs}): lower evaluator.warmup_epochs or raise evaluator.epochs")


@dataclass(frozen=True)
class Sample(Section):
    """sample: how many images each model draws, and its figures."""
    n: int = param(int, lo=1)
    seed: int = param(int, lo=0)
    grid: int = param(int, lo=1, hi=32)
    steps: int = param(int, lo=2, hi=32)
    rows: int = param(int, lo=1, hi=32)
    attribute: list = param(list, check=_class_pair)


@dataclass(frozen=True)
class Evaluate(Section):
    """evaluate: the scoring protocol (genlab.evaluation.scoring reads it as its settings)."""
    n_samples: int = param(int, lo=2)
    min_evaluator_accuracy: dict = param(dict, check=lambda key, value: check_gates(value, key))
    iw_k: int = param(int, lo=1)
    binarize_threshold: float = param(float, lo=0.0, hi=1.0)
    kid_subset_size: int = param(int, lo=2)
    kid_subsets: int = param(int, lo=1)
    pr_k: int = param(int, lo=1)
    coverage_min_share: float = param(float, lo=0.0, hi=1.0)
    two_sample_l2: float = param(float, lo=0.0)
    two_sample_max_iter: int = param(int, lo=1)
    pixel_detector_epochs: int = param(int, lo=1)
    curve_n: int = param(int, lo=4)
    seed: int = param(int, lo=0)


@dataclass(frozen=True)
class Cas(Section):
    """cas: the classification accuracy score's classifier (genlab.evaluation.cas): n training images,
    passes over them, batch size, Adam lr, seed."""
    n: int = param(int, lo=1)
    epochs: int = param(int, lo=1)
    batch_size: int = param(int, lo=1)
    lr: float = param(float, check=_above_zero)
    seed: int = param(int, lo=0)

    def check(self):
        if self.batch_size > self.n:
            raise GenlabError(f"cas.batch_size {self.batch_size} exceeds cas.n {self.n} (the classifier's training "
                              "images): lower cas.batch_size or raise cas.n")

    def steps(self):
        """Optimizer updates of one classifier: epochs passes over n images in full batches."""
        return self.epochs * (self.n // self.batch_size)


SECTIONS = {"data": Data, "validate": Validate, "normalize": Normalize, "train": Train, "gan": Gan, "vae": Vae,
            "evaluator": Evaluator, "sample": Sample, "evaluate": Evaluate, "cas": Cas}


def _read(params, section, fields, errors):
    cls = SECTIONS[section]
    names = [f.name for f in dataclass_fields(cls)]
    unknown = set(fields or ()) - set(names)
    if unknown:
        raise ValueError(f"{section} has no field {sorted(unknown)[0]!r}")
    values, bad = {}, []
    for f in dataclass_fields(cls):
        if fields is not None and f.name not in fields:
            continue
        key, m = f"{section}.{f.name}", f.metadata
        try:
            value = config.get(params, key, m["kind"], choices=m["choices"], lo=m["lo"], hi=m["hi"])
            values[f.name] = m["check"](key, value) if m["check"] else value
        except GenlabError as e:
            bad.append(str(e))
    if not bad and fields is None:
        try:
            cls(**values).check()
        except GenlabError as e:
            bad.append(str(e))
    errors += bad
    return cls(**values)


def read_all(params, *sections):
    """One object per section (a name such as "gan", or (name, fields) to read only those keys), every
    value checked; one GenlabError naming every bad value of them all."""
    errors, out = [], []
    for s in sections:
        name, fields = (s, None) if isinstance(s, str) else s
        out.append(_read(params, name, fields, errors))
    if errors:
        raise GenlabError("; ".join(errors))
    return tuple(out)


def read(params, section, fields=None):
    """The section's object (e.g. read(params, "gan") -> Gan), every value checked (fields: only these
    keys, the others None); one GenlabError naming every bad value."""
    return read_all(params, (section, fields))[0]
