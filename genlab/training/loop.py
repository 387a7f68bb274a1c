"""The compiled training loop shared by the GAN and VAE stages.

A *task* (GanTask in genlab.training.gan, VaeTask in genlab.training.vae) supplies
  model, name, metric_names, hint      the model being trained, the stage name, the losses the
                                       step returns, and what to advise when they diverge
  variables()                          every variable of its state (networks, optimizers)
  in_memory                            True: the data are resident (gather); False: streamed
  draw(key, batch_size) -> {name: t}   the iteration's global random draws, "idx" (batch_size,) the
                                       batch indices; key = int64 (seed, iteration)
  gather(idx) -> batch                 rows of the resident data (in_memory)
  host_batches(seed, start, stop, batch_size)   the streamed tf.data input (not in_memory)
  update(batch, draws, replicas) -> {loss: t}   one iteration (or one replica's share) as graph code
  after_update(step)                   graph code after each update, outside any replica context
                                       (the GAN's weight average); step = the iteration, from 0
  extra_metrics(step, means) -> {name: value}   host-side, at each log: values computed outside
                                       the step (the VAE's validation losses, the evaluator's
                                       validation accuracy); means: the logged loss means
  log_images(live, step), finish()     host-side extras at checkpoint/end
  snapshot() -> [arrays]               the weights that sampling needs (GAN: the generator, averaged
                                       with gan.ema; VAE: the decoder), kept every train.snapshot_every
                                       iterations in <live>/snapshots/ for the quality curves
`fit` runs the step inside one `tf.function` (XLA-compiled when `jit_compile`) that loops over a
chunk of iterations with `tf.while_loop`: the data stay on the device as variables (or are read
from memory-mapped files by tf.data, train.data_in_memory false), random batch
indices and noise come from stateless RNG keyed by (seed, iteration), losses are accumulated in
`keras.metrics.Mean`, and the first non-finite loss is recorded in graph. Python looks at the state
only at chunk ends (about every CHUNK_SECONDS, and at every log/checkpoint boundary), where it
checks for divergence, logs to dvclive, prints progress and writes checkpoints.

Because the RNG is keyed by the iteration and every variable (weights, BatchNorm statistics,
optimizer moments and counters, step, loss accumulators) is checkpointed, a resumed run computes
exactly what an uninterrupted one would: on the same machine the final weights are bit-identical.

Nothing before the last iteration depends on the run's length (no schedule uses it; chunk lengths
do not change the result; logs, checkpoints and their sample grids follow train.log_every and
train.ckpt_every only), and the final checkpoint is written *before* what only a run's end does
(a last log off the log_every schedule, task.finish(), the final sample grid). So that checkpoint
is also the state of every longer run at that iteration, and raising train.epochs continues a
finished run instead of starting over (its fingerprint leaves out the iteration count), from the
workspace's checkpoints or from the run store (genlab.training.checkpoint.run_store). The state at
every snapshot point (train.snapshot_every) is the final checkpoint of a run of that length, so it
goes to the run store too: a shorter run starts from the newest stored state at or below its length
(none left to train at a snapshot point), and a finished run keeps only its final checkpoint, so its
checkpoints/ folder is the same however far it trained itself.
"""

import contextlib
import functools
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genlab import identity
from genlab.data import processed
from genlab.errors import GenlabError
from genlab.models.store import SNAPSHOTS, save_model, save_weights
from genlab.training import checkpoint, devices

# Stateless RNG algorithm of every training draw: pinned, because "auto_select" picks another
# algorithm under XLA, so XLA and non-XLA code (a tf.data pipeline, a distributed step) would draw
# different batches from the same key.
RNG_ALG = "philox"
CHUNK_SECONDS = 2.0  # one compiled call runs about this long, so Ctrl-C/SIGTERM is handled within it


@dataclass(frozen=True)
class TrainSettings:
    """The `train.*` params: iterations (= train.epochs, one batch each), batch size, seed, intervals."""
    iterations: int
    batch_size: int
    seed: int
    log_every: int
    ckpt_every: int
    strategy: str = "default"          # default | mirrored | multi_worker (genlab.training.devices)
    mixed_precision: str = "none"      # none | bf16 | fp16 (GPU only; ignored with a note on a CPU)
    xla: str = "auto"                  # auto | true | false
    data_in_memory: bool = True        # False: stream batches from the memory-mapped .npy files
    snapshot_every: int = 0            # keep the sampled network's weights every N iterations (0 = never)

    @classmethod
    def from_params(cls, train):
        """From the train: section (a genlab.params.Train): its `epochs` is the iteration count."""
        values = train.asdict()
        return cls(iterations=values.pop("epochs"), **values)


def load_training_data(data_dir, splits, in_memory=True):
    """{"meta": meta, split: (x, y) for split in splits} from the normalize stage's folder: in memory,
    or with in_memory=False the images memory-mapped (read batch by batch while training)."""
    out = {"meta": processed.load_meta(data_dir)}
    for split in splits:
        x, y = processed.load_split(data_dir, split, mmap=not in_memory)
        if in_memory or x.dtype != np.float32:
            x = np.ascontiguousarray(x, dtype=np.float32)
        out[split] = (x, np.ascontiguousarray(y, dtype=np.int32))
    return out


def run_fingerprint(stage, args, settings, dataset, splits, modules):
    """The identity of a training run (genlab.identity): every param the stage read (args +
    settings) except the iteration count, the data's meta and digest, the code of the modules that
    define the model and the step (modules: module objects, e.g. genlab.training.gan) with every
    genlab module they import, and the environment. Runs that differ only in length share it: the
    shorter one's checkpoints are states of the longer one (see the module docstring)."""
    train = {k: v for k, v in asdict(settings).items() if k != "iterations"}
    return identity.digest({
        "stage": stage, "args": args, "train": train,
        "data": {"meta": dataset["meta"], "sha256": identity.array_digest(*[a for s in splits for a in dataset[s]])},
        "code": identity.code_digest(*(m.__name__ for m in modules), __name__),
        "environment": identity.environment(),
    })


def device_data(array):
    """Training data as a non-trainable variable: placed once on the default device (GPU if any)."""
    return tf.Variable(array, trainable=False)


def set_determinism(seed):
    """Seed Python, NumPy and TensorFlow/Keras, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _next_multiple(step, every):
    return (step // every + 1) * every


def _fmt_duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _own(method):
    """`method` as a function of its own for tf.function. TensorFlow's frequent-retracing detector
    counts the traces of a tf.function by its Python code, so the bound methods of every CompiledSteps
    (one per training; the metrics train several classifiers in one process) would count as one
    function traced again and again, and TensorFlow would warn. A functools.partial has no code of its
    own: the detector counts it alone, and each instance, traced once, never warns. Nothing traced changes."""
    return functools.partial(method)


class CompiledSteps:
    """The training state (step counter, loss means, first-divergence record) and `run(n)`, the one
    compiled function that performs n iterations of the task's step (used by fit and the benchmarks).

    Each iteration: draws = task.draw(key, batch_size) (global batch indices and noise, stateless,
    key = (seed, iteration)); the batch is task.gather(idx) of the resident data, or the next element
    of the streamed input (task.in_memory False); losses = task.update(batch, draws, replicas). Under
    a distribution strategy every replica runs update on its own slice of the global batch and the
    losses are averaged over replicas. Variables must be created in placement.scope()."""

    def __init__(self, task, settings, jit_compile, placement=None):
        self.task, self.settings = task, settings
        self.names = task.metric_names
        self.strategy = placement.strategy if placement is not None and placement.kind != "default" else None
        self.replicas = placement.replicas if placement is not None else 1
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.bad_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="bad_step")
        self.bad_values = tf.Variable(tf.zeros(len(self.names)), trainable=False, name="bad_values")
        self.means = [keras.metrics.Mean(name=k) for k in self.names]
        self.variables = (list(task.variables()) + [self.step, self.bad_step, self.bad_values]
                          + [v for m in self.means for v in m.variables])
        self._iterator = None
        if task.in_memory:
            self._compiled = tf.function(_own(self._run), jit_compile=jit_compile, autograph=False)
        else:  # a tf.data iterator cannot be XLA-compiled: compile the iteration, loop outside XLA
            self._one_fn = self._one
            if jit_compile:
                self._one_fn = tf.function(_own(self._one), jit_compile=True, autograph=False)
            self._compiled = tf.function(_own(self._run), autograph=False)

    def restart(self):
        """Back to iteration 0 with no losses and no divergence recorded (the task's variables are the
        task's business): the next run() starts over, reusing the traced function."""
        self.step.assign(0)
        self.bad_step.assign(-1)
        self.bad_values.assign(tf.zeros(len(self.names)))
        for m in self.means:
            m.reset_state()
        self._iterator = None

    def run(self, n):
        """n (int32 tensor) iterations; returns the step counter after them."""
        if not self.task.in_memory and self._iterator is None:  # starts at the (possibly restored) step
            s = self.settings
            self._iterator = iter(self.task.host_batches(s.seed, int(self.step.numpy()), s.iterations, s.batch_size))
        return self._compiled(n) if self.task.in_memory else self._compiled(n, self._iterator)

    def _replica_update(self, draws, batch):
        b = self.settings.batch_size // self.replicas
        start = tf.distribute.get_replica_context().replica_id_in_sync_group * b
        draws = {k: v[start:start + b] for k, v in draws.items()}
        batch = {k: v[start:start + b] for k, v in batch.items()} if batch else self.task.gather(draws["idx"])
        return self.task.update(batch, draws, self.replicas)

    def _one(self, batch=None):
        key = tf.stack([tf.constant(self.settings.seed, tf.int64), self.step])
        draws = self.task.draw(key, self.settings.batch_size)
        if self.strategy is None:
            losses = self.task.update(self.task.gather(draws["idx"]) if batch is None else batch, draws, 1)
        else:
            per_replica = self.strategy.run(self._replica_update, args=(draws, batch or {}))
            losses = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                      for k, v in per_replica.items()}
        self.task.after_update(self.step)
        values = tf.stack([tf.cast(losses[k], tf.float32) for k in self.names])
        for m, k in zip(self.means, self.names):
            m.update_state(losses[k])
        first_bad = tf.logical_and(self.bad_step < 0, tf.logical_not(tf.reduce_all(tf.math.is_finite(values))))
        self.bad_step.assign(tf.where(first_bad, self.step + 1, self.bad_step))
        self.bad_values.assign(tf.where(first_bad, values, self.bad_values))
        self.step.assign_add(1)

    def _run(self, n, iterator=None):
        def body(i):
            if iterator is None:
                self._one()
            else:
                self._one_fn(iterator.get_next())
            return (i + 1,)
        tf.while_loop(lambda i: i < n, body, (tf.constant(0, tf.int32),))
        return self.step.read_value()

    def divergence(self):
        """None, or the one-line error for the first iteration whose loss was NaN/Inf."""
        bad = int(self.bad_step.numpy())
        if bad < 0:
            return None
        values = self.bad_values.numpy()
        which = ", ".join(f"{k} is {v}" for k, v in zip(self.names, values) if not np.isfinite(v))
        return GenlabError(f"training diverged at iteration {bad}: {which}; {self.task.hint}")

    def pending(self):
        """Whether losses were accumulated since the last log."""
        return float(self.means[0].count.numpy()) > 0

    def read_means(self):
        values = {k: float(m.result()) for k, m in zip(self.names, self.means)}
        for m in self.means:
            m.reset_state()
        return values


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C (and SIGTERM, once genlab.stage.sigterm_as_interrupt made it one) inside the block are held
    and raised as KeyboardInterrupt by `check()`, or when the block ends, where the training can act on
    them. Raised where the signal lands, the interrupt could fall inside TensorFlow's Python code, whose
    bare `except:` (trace_type_builder.from_value) turned it into a TypeError: the stage died with a
    traceback and no checkpoint (train_evaluator, a clean-clone test run, 2026-12-05). A second signal
    is raised at once. Signals that do not raise KeyboardInterrupt (ignored, as in a background job, or
    SIGTERM's default) keep their handlers; outside the main thread nothing changes."""
    held, caught = [], {}

    def hold(signum, frame):
        if held:                 # asked twice: stop now
            raise KeyboardInterrupt
        held.append(signum)

    def check():
        if held:
            held.clear()
            raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is signal.default_int_handler:
                caught[sig] = signal.signal(sig, hold)
    try:
        yield check
    finally:
        for sig, handler in caught.items():
            signal.signal(sig, handler)
    check()


def run_steps(task, settings, jit_compile=False):
    """Train `task` for settings.iterations in compiled chunks, with no checkpoints, logs or snapshots:
    the engine for the short trainings the metrics make (genlab.evaluation.cas, .detect), which are
    a function of their arguments and cheaper to redo than to resume. Raises GenlabError at the first
    non-finite loss. Returns the CompiledSteps (its `task` holds the trained model).

    The task keeps its CompiledSteps per settings: run again with the same settings (a task of
    `reused_task`, its variables reloaded), the counters restart and the function traced the first
    time runs again."""
    kept = task.__dict__.setdefault("compiled_steps", {})
    state = kept.get((settings, jit_compile))
    if state is None:
        state = kept[settings, jit_compile] = CompiledSteps(task, settings, jit_compile)
    else:
        state.restart()
    step = 0
    with interrupts_deferred() as check:
        while step < settings.iterations:
            n = min(settings.iterations - step, settings.log_every)
            step = int(state.run(tf.constant(n, tf.int32)).numpy())
            error = state.divergence()
            if error:
                raise error
            check()
    return state


_REUSED = {}
REUSED_MAX = 8  # tasks kept per process (each holds its data: at most a few tens of MB)


def reused_task(cls, *signature):
    """The one task of class `cls` built with `signature` in this process (the least recently used of
    more than REUSED_MAX is dropped). The metrics train the same small network at the same sizes many
    times in one process (a pixel detector and a CAS classifier per quality-curve snapshot): a task whose
    graph reads nothing but its variables is built and traced once, and each training reloads its
    variables (`task.start(...)`: seeded initial weights, fresh optimizer, the data) and runs the traced
    function again, computing exactly what a newly built task would."""
    key = (cls, signature)
    task = _REUSED.pop(key, None)
    if task is None:
        task = cls(*signature)
        while len(_REUSED) >= REUSED_MAX:
            _REUSED.pop(next(iter(_REUSED)))
    _REUSED[key] = task
    return task


def restart(task, seed, data, values):
    """Load the next training of a reused metric task (see reused_task): the initial weights that
    `task._fresh()` builds after set_determinism(seed), its fresh optimizer, and `values` into the task's
    `data` variables (images, labels, batch order). Returns the task."""
    set_determinism(seed)
    model, opt = task._fresh()
    reload_variables(task.variables(), [*model.variables, *opt.variables])
    reload_variables(data, values)
    return task


def reload_variables(variables, fresh):
    """Assign the values of `fresh` (variables or arrays, in the same order and shapes) to `variables`."""
    variables, fresh = list(variables), list(fresh)
    if [tuple(v.shape) for v in variables] != [tuple(w.shape) for w in fresh]:
        raise GenlabError("a reused training task's variables do not match its fresh copy: report this as a bug")
    for v, w in zip(variables, fresh):
        v.assign(w)


def _open_live(live_dir, resume):
    from dvclive import Live
    return Live(str(live_dir), resume=resume, dvcyaml=False, save_dvc_exp=False)


def fit(task, settings, *, ckpt_dir, live_dir, run_fingerprint, jit_compile=True, on_log=None, out=None,
        placement=None, store=None):
    """Train `task` to settings.iterations, resuming from the newest matching checkpoint, or starting
    from a state of a run of another length with the same params (in ckpt_dir or in the run store:
    `store`, default genlab.training.checkpoint.run_store(); False = none). The states at snapshot points
    and a finished run's final checkpoint go to the store. ckpt_dir None: no checkpoints (and no store);
    live_dir None: no dvclive folder (no curves, sample grids or snapshots), progress lines only.

    on_log(step, values): optional callback after each logged interval. Raises GenlabError when a
    loss becomes NaN/Inf (nothing is checkpointed after that). On KeyboardInterrupt (Ctrl-C, or
    SIGTERM turned into one by genlab.stage.sigterm_as_interrupt), held until the running chunk ends
    (interrupts_deferred), a checkpoint of the current iteration is written before the interrupt
    propagates. placement: a genlab.training.devices.Placement (None = the default single device);
    call fit inside placement.scope(). With several workers only the chief writes checkpoints and logs
    (the others log into a temporary folder), and chunk lengths depend on the log/checkpoint intervals
    only, so that every worker makes the same calls.
    """
    return _Run(task, settings, ckpt_dir=ckpt_dir, live_dir=live_dir, fingerprint=run_fingerprint,
                jit_compile=jit_compile, on_log=on_log, out=out, placement=placement, store=store).train()


class _Run:
    """One call of `fit`: the compiled state, the dvclive logger, and what happens at each boundary."""

    def __init__(self, task, settings, *, ckpt_dir, live_dir, fingerprint, jit_compile, on_log, out, placement,
                 store):
        self.task, self.settings, self.on_log, self.fingerprint = task, settings, on_log, fingerprint
        self.chief = placement is None or placement.chief
        self.adaptive = placement is None or placement.kind != "multi_worker"
        self.out = out or sys.stderr
        if not self.chief:
            import tempfile
            live_dir = None if live_dir is None else Path(tempfile.mkdtemp(prefix="genlab-worker-live-"))
            self.out = open(os.devnull, "w")
        self.ckpt_dir, self.live_dir, self.live = ckpt_dir, live_dir, None
        self.state = CompiledSteps(task, settings, jit_compile, placement)
        # several workers: each must find the same checkpoint, so only the shared ckpt_dir is used
        use_store = store is None and self.adaptive and ckpt_dir is not None
        self.store = checkpoint.run_store() if use_store else (store or None)
        self.iterations, self.every = settings.iterations, settings.snapshot_every
        self.last_saved, self.final_path = -1, None
        self.chunk, self.t_first, self.steps_after_first = 1, None, 0

    def say(self, msg):
        print(msg, file=self.out, flush=True)

    def train(self):
        resumed = self.start()
        step = int(self.state.step.numpy())
        try:
            with interrupts_deferred() as check:   # an interrupt acts between chunks, never inside TensorFlow
                if resumed:
                    self.boundary(step)  # after a resume at the end, this also runs task.finish()
                while step < self.iterations:
                    step = self.advance(step)
                    self.boundary(step)
                    check()
        except KeyboardInterrupt:
            self.interrupted()
            raise
        if self.live is not None:
            self.live.end()
        if not self.chief:
            if self.live_dir is not None:
                shutil.rmtree(self.live_dir, ignore_errors=True)
        elif self.store is not None and self.final_path is not None:
            checkpoint.publish(self.final_path, self.store, self.task.name, self.fingerprint, log=self.say)
        return self.task.model

    def start(self):
        """Restore the newest usable checkpoint, if any, and open the logger; True if it resumed."""
        resumed = None
        if self.ckpt_dir is not None:
            resumed = _resume_point(self.task.name, self.state, self.iterations, self.ckpt_dir, self.store,
                                    self.fingerprint, self.say)
        if resumed:
            step, values, path = resumed
            for var, value in zip(self.state.variables, values):
                var.assign(value)
            if self.live_dir is not None:
                checkpoint.restore_live(path, self.live_dir)
            self.last_saved = step if Path(path).parent == Path(self.ckpt_dir) else -1
            self.final_path = path if step == self.iterations else None
        elif self.chief and self.live_dir is not None:  # a fresh run: no snapshot of another run may stay
            shutil.rmtree(Path(self.live_dir) / SNAPSHOTS, ignore_errors=True)
        if self.chief and self.live_dir is not None:  # there, even empty (train.snapshot_every 0): a DVC output
            (Path(self.live_dir) / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
        if self.live_dir is not None:
            self.live = _open_live(self.live_dir, resume=bool(resumed))
        return bool(resumed)

    def advance(self, step):
        """Run the compiled chunk up to the next boundary (or about CHUNK_SECONDS); return the new step."""
        s = self.settings
        nearest = min(_next_multiple(step, s.log_every), _next_multiple(step, s.ckpt_every),
                      _next_multiple(step, self.every) if self.every else self.iterations, self.iterations)
        n = min(nearest - step, self.chunk) if self.adaptive else nearest - step
        t0 = time.perf_counter()
        step = int(self.state.run(tf.constant(n, tf.int32)).numpy())
        elapsed = time.perf_counter() - t0
        if self.t_first is None:
            self.t_first = time.perf_counter()  # the first call includes tracing and compilation
        else:
            self.steps_after_first += n
            self.chunk = max(1, int(n / max(elapsed, 1e-6) * CHUNK_SECONDS))
        error = self.state.divergence()
        if error:
            raise error
        return step

    def boundary(self, at):
        """Log and checkpoint at `at` if it is a boundary and that was not done yet (it may be
        pending after a resume from a checkpoint written on interrupt). At the end, the final
        checkpoint holds the state a longer run has at `at`; then the end-only steps: a last log
        off the log_every schedule, task.finish(), the final sample grid."""
        s, every = self.settings, self.every
        if at % s.log_every == 0 and self.state.pending():
            self.log(at)
        if every and at % every == 0 and at > 0:
            self.save_snapshot(at)   # before the checkpoint, which carries it (in live/) to a resumed run
        if (at % s.ckpt_every == 0 or at == self.iterations) and self.last_saved != at:
            self.save_checkpoint(at)
        if every and at % every == 0 and 0 < at < self.iterations:
            self.store_state(at)     # the end of a run of `at` iterations, for any later run of that length
        if at == self.iterations:
            self.keep_final_checkpoint()
            if self.state.pending():
                self.log(at)
            self.task.finish()
            if self.live is not None:
                self.task.log_images(self.live, at)
            if every and at % every:
                self.save_snapshot(at)   # the curve's last point, off the schedule: not in the checkpoint

    def log(self, at):
        values = self.state.read_means()
        values.update(self.task.extra_metrics(at, values))
        bad = [k for k, v in values.items() if not np.isfinite(v)]
        if bad:
            raise GenlabError(f"training diverged at iteration {at}: {bad[0]} is {values[bad[0]]}; {self.task.hint}")
        if self.live is not None:
            self.live.step = at
            for k, v in values.items():
                self.live.log_metric(k, v)
            self.live.make_summary()
        done = self.steps_after_first
        rate = done / max(time.perf_counter() - self.t_first, 1e-6) if done else 0.0
        eta = _fmt_duration((self.iterations - at) / rate) if rate else "?"
        losses = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        self.say(f"{self.task.name} {at}/{self.iterations} {losses} | {rate:.1f} it/s | ETA {eta}")
        if self.on_log:
            self.on_log(at, values)

    def save_checkpoint(self, at):
        if at % self.settings.ckpt_every == 0 and self.live is not None:  # a grid on the schedule only
            self.task.log_images(self.live, at)
        if self.ckpt_dir is not None:
            values = [np.asarray(v.numpy()) for v in self.state.variables]  # on every worker: may all-reduce
            if self.chief:
                path = checkpoint.save(self.ckpt_dir, at, self.fingerprint, values, live_dir=self.live_dir,
                                       iterations=self.iterations)
                self.final_path = path if at == self.iterations else self.final_path
        self.last_saved = at  # only once written: an interrupt during the save saves again on the way out

    def store_state(self, at):
        """Keep the state at snapshot point `at` in the run store (checkpoint.store_state)."""
        if self.store is not None and self.chief:
            values = [np.asarray(v.numpy()) for v in self.state.variables]
            checkpoint.store_state(self.store, self.task.name, self.fingerprint, at, values, self.live_dir,
                                   self.iterations, log=self.say)

    def keep_final_checkpoint(self):
        """A finished run keeps its final checkpoint only (the earlier one was an interruption's fallback),
        so checkpoints/ holds the same whether the run trained every iteration or started from a stored state."""
        if self.ckpt_dir is not None and self.chief:
            for path in checkpoint.list_checkpoints(self.ckpt_dir)[1:]:
                shutil.rmtree(path, ignore_errors=True)

    def save_snapshot(self, at):
        arrays = self.task.snapshot()  # on every worker: reading may all-reduce
        if self.chief and self.live_dir is not None:
            save_weights(Path(self.live_dir) / SNAPSHOTS / f"{at:09d}.npz", arrays)

    def interrupted(self):
        """On Ctrl-C/SIGTERM: checkpoint the current iteration (one worker) and say how to go on."""
        now, last = int(self.state.step.numpy()), self.last_saved
        if self.ckpt_dir is None or not self.chief or self.state.divergence() is not None:
            return
        # several workers: reading the state is a collective the others may never join, so the
        # run resumes from its last periodic checkpoint instead
        if self.adaptive and now > max(last, 0):
            self.save_checkpoint(now)
            self.say(f"{self.task.name}: interrupted at iteration {now}; checkpoint saved, "
                     "run the stage again to resume")
        else:  # just after a checkpoint, or several workers
            self.say(f"{self.task.name}: interrupted at iteration {now}; " + (
                f"run the stage again to resume from its checkpoint at iteration {last}" if last > 0
                else "no checkpoint yet, run the stage again to start over"))


def _resume_point(name, state, iterations, ckpt_dir, store, run_fingerprint, say):
    """(step, values, path) to start from, or None: the newest usable state at or below `iterations` in
    ckpt_dir (this run's checkpoint, or one of a run of another length with the same params) or in the run
    store (a state at a snapshot point, or a finished run's end), whichever is further along. The checkpoint
    module's notes say what was dropped; this says, in one line, where the run starts and why."""
    shapes, notes = [v.shape for v in state.variables], []

    def note(msg):
        notes.append(msg)
        say(msg)
    found = checkpoint.load_latest(ckpt_dir, run_fingerprint, shapes, log=note, iterations=iterations)
    if store is not None and (found is None or found[0] < iterations):
        stored = checkpoint.load_stored(store, name, run_fingerprint, shapes, iterations, log=note)
        if stored and (found is None or stored[0] > found[0]):
            found = stored
    if found is None:
        say(f"{name}: starting this run over from iteration 0 (no usable checkpoint at or below {iterations})" if notes
            else f"{name}: training from scratch, iterations 0 to {iterations} (no stored state of these params)")
        return None
    step, _, path = found
    ran = int(checkpoint.read_manifest(path).get("iterations", step))
    where = f"run store {path}" if store is not None and Path(path).is_relative_to(store) else str(path)
    if step == iterations != ran:
        say(f"{name}: nothing to train: this run's end is iteration {step} of a {ran}-iteration run of the same "
            f"params ({where})")
    elif step == ran < iterations:
        say(f"{name}: continuing the finished run at iteration {step} to {iterations} ({iterations - step} iterations)"
            f" ({where})")
    elif ran != iterations:
        say(f"{name}: starting from iteration {step} of a {ran}-iteration run of the same params, to {iterations} "
            f"({iterations - step} iterations) ({where})")
    else:
        say(f"{name}: resuming from iteration {step} of {iterations} ({where})")
    return found


def train(make_task, *, stage, args, arch, settings, dataset, splits, modules, model_dir, ckpt_dir, live_dir,
          jit_compile=None, on_log=None, out=None):
    """The shared body of train_gan and train_vae: place the run (genlab.training.devices), fingerprint
    it (args: the stage's model params; modules: those defining its model and step), seed, build the
    task with make_task(placement) inside the placement's scope, `fit` it, and save the model (chief
    only). jit_compile ("auto", True, False) overrides settings.xla. Returns the trained model."""
    placement = devices.Placement(settings, arch)   # first: a multi-worker strategy must start before any op
    for note in placement.notes:
        print(note, file=out or sys.stderr, flush=True)
    jit = (placement.jit_compile if jit_compile is None
           else devices.use_xla(arch, jit_compile) and placement.replicas == 1)
    fp = run_fingerprint(stage, args, settings, dataset, splits, modules)
    set_determinism(settings.seed)
    with placement.scope():
        task = make_task(placement)
        model = fit(task, settings, ckpt_dir=ckpt_dir, live_dir=live_dir, run_fingerprint=fp,
                    jit_compile=jit, on_log=on_log, out=out, placement=placement)
    if placement.chief:
        save_model(model, model_dir)
    return model
