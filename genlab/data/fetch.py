"""fetch: get a dataset's files, verify them by content, and write them to data/raw/ atomically.

Sources, tried in this order for every file:
  1. the mirror named by the environment variable GENLAB_MIRROR (a folder, a file:// or an
     http(s):// URL), laid out like ../shared/data: <mirror>/<dataset folder>/<file>[.gz].
     When a mirror is set it is the only source, so offline runs are predictable.
  2. known local folders (Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/);
  3. the canonical URLs, in order.
The whole fetch has a deadline, GENLAB_FETCH_TIMEOUT seconds (default 120): no new connection or retry
starts after it, and every wait (connect, each read) is cut to the time left, so a server that accepts
connections but never answers fails in that time, not after every retry of every file. A download that
keeps receiving data is not cut. Raise it for a slow link.
Each file is streamed to a temporary file, decompressed if gzipped, and its payload's sha256 is
compared with the recorded digest; only then is it moved into place. The output is the verified
payload bytes, so it is identical whichever source served them.
"""

import gzip
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from genlab.data import datasets
from genlab.errors import GenlabError
from genlab.identity import file_digest
from genlab.io import atomic_dir, write_json

MIRROR_ENV = "GENLAB_MIRROR"
DEADLINE_ENV = "GENLAB_FETCH_TIMEOUT"
DEADLINE_S = 120      # default of GENLAB_FETCH_TIMEOUT: seconds for the whole fetch
CHUNK = 1 << 20
TIMEOUT_S = 30
ATTEMPTS = 4          # per URL, for transient errors (timeouts, resets, HTTP 5xx/429)
BACKOFF_S = 1.0       # doubled after every failed attempt


class _Transient(Exception):
    """A network error worth retrying."""


class _Unavailable(Exception):
    """This source does not have the file (404, missing folder, no network): try the next one."""


def fetch_deadline():
    """time.monotonic() by which fetch must be done: now + GENLAB_FETCH_TIMEOUT (default DEADLINE_S)."""
    value = os.environ.get(DEADLINE_ENV, "").strip()
    try:
        seconds = float(value) if value else DEADLINE_S
    except ValueError:
        seconds = -1
    if not seconds > 0:
        raise GenlabError(f"{DEADLINE_ENV} must be a number of seconds > 0, got {value!r}: unset it or fix it")
    return time.monotonic() + seconds


def _time_left(deadline, url, last):
    left = deadline - time.monotonic()
    if left <= 0:
        budget = os.environ.get(DEADLINE_ENV, "").strip() or DEADLINE_S
        raise GenlabError(f"could not get {url} within {DEADLINE_ENV}={budget} s (last: {last}): "
                          f"check that the server answers, or raise {DEADLINE_ENV} for a slow link")
    return left


def _open_url(url, timeout=TIMEOUT_S):
    """Open url for reading; classify failures as transient or unavailable."""
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http/https/file only)
    except urllib.error.HTTPError as e:
        if e.code >= 500 or e.code == 429:
            raise _Transient(f"HTTP {e.code} from {url}") from None
        raise _Unavailable(f"HTTP {e.code} from {url}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, socket.gaierror):
            raise _Unavailable(f"cannot resolve host of {url} (no network?)") from None
        if isinstance(reason, (FileNotFoundError, NotADirectoryError)):
            raise _Unavailable(f"{url} does not exist") from None
        raise _Transient(f"{reason} for {url}") from None
    except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException) as e:
        raise _Transient(f"{e.__class__.__name__} for {url}") from None
    return resp


def _download(url, dest, timeout=TIMEOUT_S):
    """Stream url to dest, checking Content-Length; raise _Transient/_Unavailable on failure."""
    resp = _open_url(url, timeout)
    try:
        expected = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        got = 0
        with open(dest, "wb") as f:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                got += len(chunk)
        if expected is not None and expected.isdigit() and got != int(expected):
            raise _Transient(f"connection closed after {got} of {expected} bytes from {url}")
    except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException) as e:
        raise _Transient(f"{e.__class__.__name__} while reading {url}") from None
    finally:
        resp.close()


def _download_with_retries(url, dest, log, deadline):
    delay, last = BACKOFF_S, "no attempt yet"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _download(url, dest, timeout=min(TIMEOUT_S, _time_left(deadline, url, last)))
            return
        except _Transient as e:
            if attempt == ATTEMPTS:
                raise _Unavailable(f"{e} (gave up after {ATTEMPTS} attempts)") from None
            last = str(e)
            log(f"fetch: {e}; retrying in {delay:.0f}s ({attempt}/{ATTEMPTS})")
            time.sleep(min(delay, _time_left(deadline, url, last)))
            delay *= 2


def _payload_sha256(src, dest):
    """Copy src to dest, gunzipping if it is gzip; return the sha256 of what was written."""
    with open(src, "rb") as f:
        is_gz = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if is_gz else open
    try:
        with opener(src, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise GenlabError(f"{src} is a corrupt or truncated gzip file ({e}); delete it or fix the source") from None
    return file_digest(dest)


def _candidates(ds, remote_name, mirror):
    """Yield (description, location, is_url) for every place the file may be found."""
    in_folder = [remote_name + ".gz", remote_name] if ds.gzipped else [remote_name]
    on_web = remote_name + ".gz" if ds.gzipped else remote_name
    if mirror:
        if "://" in mirror:
            base = mirror.rstrip("/") + "/" + ds.folder + "/"
            yield from ((f"mirror {base}{n}", base + n, True) for n in in_folder)
        else:
            folder = Path(mirror) / ds.folder
            yield from ((f"mirror {folder / n}", folder / n, False) for n in in_folder)
        return
    for d in ds.local_dirs:
        yield from ((f"local copy {Path(d) / n}", Path(d) / n, False) for n in in_folder)
    for base in ds.urls:
        yield base + on_web, base + on_web, True


def _fetch_one(ds, name, sha256, remote_name, tmpdir, mirror, log, deadline):
    """Find, verify and place one payload file in tmpdir; return the source used."""
    tried = []
    for desc, loc, is_url in _candidates(ds, remote_name, mirror):
        if not is_url and not Path(loc).is_file():
            tried.append(f"{desc}: missing")
            continue
        blob = tmpdir / (name + ".download")
        try:
            if is_url:
                _download_with_retries(loc, blob, log, deadline)
            else:
                shutil.copyfile(loc, blob)
        except _Unavailable as e:
            tried.append(str(e))
            blob.unlink(missing_ok=True)
            continue
        try:
            digest = _payload_sha256(blob, tmpdir / name)
        finally:
            blob.unlink(missing_ok=True)
        if digest != sha256:
            (tmpdir / name).unlink(missing_ok=True)
            raise GenlabError(f"{name} from {desc} has sha256 {digest}, expected {sha256}: "
                              "the file is corrupt or not the expected dataset; delete or replace it")
        return desc
    hint = (f"check the files in the mirror {mirror} (or unset {MIRROR_ENV})" if mirror else
            f"connect to the internet, or set {MIRROR_ENV} to a folder or URL holding {ds.folder}/{remote_name}"
            + ("[.gz]" if ds.gzipped else "")
            + (" (or `apt-get install dataset-fashion-mnist`)" if ds.local_dirs else ""))
    raise GenlabError(f"could not get {remote_name} ({'; '.join(tried[-2:])}): {hint}")


def fetch(name, out_dir, url="", sha256="", mirror=None, log=None):
    """Fetch dataset `name` (built-in, or "url" with url+sha256) into out_dir atomically.

    out_dir receives the verified payload files and dataset.json (name, format, files with digests).
    Returns {payload name: source description}.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    ds = datasets.get(name, url, sha256)
    remote = ds.remote or {}
    sources = {}
    deadline = fetch_deadline()
    with atomic_dir(out_dir) as tmp:
        for fname, digest in ds.files.items():
            sources[fname] = _fetch_one(ds, fname, digest, remote.get(fname, fname), tmp, mirror, log, deadline)
            log(f"fetch: {fname} verified (sha256 {digest[:12]}...) from {sources[fname]}")
        write_json(tmp / "dataset.json", {
            "name": name, "format": ds.format, "files": ds.files, "counts": ds.counts,
            "image_shape": list(ds.image_shape) if ds.image_shape else None,
            "class_names": list(ds.class_names) if ds.class_names else None})
    return sources
