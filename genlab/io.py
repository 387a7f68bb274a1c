"""Atomic outputs: a stage's result appears whole or not at all (the one way files are written)."""

import contextlib
import errno
import json
import math
import os
import resource
import shutil
import tempfile
from pathlib import Path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sibling_tmp(path, kind):
    """A new temporary file or directory beside path, with the usual permissions (not 0600). Its name
    carries this process's id, so another writer of the same path (two queued experiments sharing the
    run store) leaves it alone while this process lives (remove_stale_tmp)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.tmp-{os.getpid()}-"
    if kind == "dir":
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        return tmp
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def writer_alive(tmp):
    """Whether the process that made temporary sibling `tmp` (its id is in the name) still runs."""
    pid = tmp.name.rsplit(".tmp-", 1)[-1].split("-")[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(path):
    """Delete temporary siblings of `path` left by a run that was killed (kill -9, power loss), not
    those another live process is writing."""
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            if writer_alive(stale):
                continue
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def ensure_space(folder, nbytes, what):
    """Raise OSError(ENOSPC/EFBIG) unless `folder`'s disk has room for `nbytes` (with a margin) and
    the file-size limit allows them. Used before HDF5 writes: h5py/HDF5 can crash the interpreter
    (SIGSEGV) when a write fails, instead of raising an error."""
    need = int(nbytes * 1.5) + (1 << 20)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and need > limit:
        raise OSError(errno.EFBIG, f"{what} needs about {need >> 10} KiB but the file-size limit is "
                                   f"{limit >> 10} KiB", str(folder))
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need > free:
        raise OSError(errno.ENOSPC, f"{what} needs about {need >> 20} MiB but {free >> 20} MiB are free",
                      str(folder))


@contextlib.contextmanager
def atomic_dir(path, replace=True):
    """Yield a temporary directory beside `path`; on success it replaces `path` whole.

    On any exception the temporary directory is removed and `path` is left as it was. replace=False:
    a `path` that exists by then (another writer of the same content was first) is kept and the
    temporary directory dropped, so a reader never sees `path` missing while it is swapped.
    """
    path = Path(path)
    remove_stale_tmp(path)
    tmp = _sibling_tmp(path, "dir")
    try:
        yield tmp
        if not replace:
            try:
                tmp.rename(path)
            except OSError:
                if not path.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        elif path.exists():
            old = _sibling_tmp(path, "dir")
            old.rmdir()
            path.rename(old)
            try:
                tmp.rename(path)
            except BaseException:
                old.rename(path)  # put the previous output back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Yield a file object writing to a temporary file that is moved onto `path` on success."""
    path = Path(path)
    tmp = _sibling_tmp(path, "file")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _finite(obj):
    """Replace NaN/Inf by None so JSON files stay valid for DVC (which refuses NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path, obj):
    """Write obj as indented JSON atomically; non-finite floats become null."""
    with atomic_file(path, "w") as f:
        json.dump(_finite(obj), f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def write_npz(path, **arrays):
    """Write arrays as an uncompressed .npz (readable by np.load) atomically, with fixed zip
    timestamps: the same arrays give the same bytes, so DVC sees an unchanged output as unchanged
    and skips the stages downstream of it (np.savez stamps the current time into the zip)."""
    import zipfile

    import numpy as np
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _existing(path):
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_outputs(targets, stage):
    """Before a long run: every output folder or file in targets ({path: bytes it will need}) can be written
    (a probe file is created and deleted where the folder, or the folder it will be created in, is) and
    its disk has room for the sum of the needs of the folders on it. Raises one GenlabError naming
    every folder that fails, so nothing is trained only to fail at the first write."""
    from genlab.errors import GenlabError
    problems, need_by_disk = [], {}
    for target, nbytes in targets.items():
        target = Path(target)
        probes = dict.fromkeys(d for d in (_existing(target), _existing(target.parent)) if d.is_dir())
        for d in probes:
            try:
                fd, name = tempfile.mkstemp(prefix=".genlab-probe-", dir=d)
                os.close(fd)
                os.unlink(name)
            except OSError as e:
                why = e.strerror or type(e).__name__
                problems.append(f"{target} cannot be written ({why} in {d}): make the output folder writable")
                break
        else:
            disk = os.stat(_existing(target)).st_dev
            folder, total, names = need_by_disk.get(disk, (_existing(target), 0, []))
            need_by_disk[disk] = (folder, total + int(nbytes), names + [str(target)])
    for folder, total, names in need_by_disk.values():
        need = int(total * 1.2) + (1 << 20)
        free = shutil.disk_usage(folder).free
        if need > free:
            problems.append(f"{', '.join(names)} need about {need / 1e6:.1f} MB but {free / 1e6:.1f} MB are free "
                            f"on the disk of {folder}: free some disk space")
    if problems:
        raise GenlabError(f"{stage} cannot write its outputs: " + "; ".join(problems)
                          + "; then run the stage again (nothing was written or deleted)")
