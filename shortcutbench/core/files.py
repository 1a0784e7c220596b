"""Small file helpers shared by every stage (no torch, no pandas)."""

import contextlib
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator
from os import PathLike
from typing import IO, TextIO


def _file_mode():
    """What open() gives a new file: 0666 less the umask (read once, at
    import, while nothing else can be creating files)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def _remove_stale_temporaries(directory, prefix):
    """Delete temporaries an earlier writer of the same file left behind
    when it was killed (SIGKILL, SIGTERM, power loss: no clean-up ran).
    Exactly mkstemp's names for this file, `prefix` + 8 characters, so the
    temporaries of other files are never touched.  Only one job writes a
    given output at a time (Snakemake's lock), so none of these is in use."""
    stale = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if stale.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside `path`; move it over `path` only if the
    block finishes.  A crash or kill never leaves a half-written `path`, and
    the temporary file a kill leaves is removed by the next write of `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    prefix = ".tmp-" + os.path.basename(path) + "-"
    _remove_stale_temporaries(directory, prefix)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
    except OSError as error:  # read-only or full: name the file, not the temporary
        raise _naming(error, path) from error
    try:
        # mkstemp makes the file 0600; give it the mode open() would (0644
        # under umask 022), or results and the report are private to one user.
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.filename is None and error.errno:
            # write() and fsync() errors (ENOSPC, EIO, EDQUOT) carry no file name.
            raise _naming(error, path) from error
        raise


def _naming(error, path):
    """`error` (an OSError) as the same kind of error about `path`:
    "[Errno 28] No space left on device: 'results/gradients.csv'"."""
    return type(error)(error.errno, error.strerror, os.fspath(path))


@contextlib.contextmanager
def job_log(path: PathLike) -> Iterator[TextIO]:
    """Send a Snakemake job's stderr to its log file, ending with the
    traceback if it fails, so `logs/` says what went wrong; the person
    running snakemake sees one line: the error and where the log is."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as log:
        saved, sys.stderr = sys.stderr, log
        try:
            yield log
        except BaseException as exc:
            traceback.print_exc(file=log)
            log.flush()
            sys.stderr = saved
            # A one-line summary where the person running snakemake sees it,
            # in one write: parallel jobs share that stream, and print()'s
            # two writes (text, newline) can be split by another job's line.
            sys.stderr.write(f"error: {type(exc).__name__}: {exc} (full traceback in {path})\n")
            sys.stderr.flush()
            if isinstance(exc, Exception):
                # The job fails with that line alone: the traceback is in the
                # log, not repeated in snakemake's output.
                raise SystemExit(1) from None
            raise  # KeyboardInterrupt, SystemExit: the job ends as they mean
        finally:
            sys.stderr = saved


def write_json(data, path: PathLike, compact: bool = False) -> None:
    """`data` as JSON (indented with sorted keys, for people; `compact`: no
    whitespace, keys as given, for machines), written atomically; same
    data, same bytes.  NaN and infinity are written as JSON's common
    extension (NaN, Infinity): a measurement may hold them."""
    import json

    with atomic_write(path) as f:
        if compact:
            f.write(compact_json(data))
        else:
            json.dump(data, f, allow_nan=True, default=str, indent=1, sort_keys=True)
        f.write("\n")


def compact_json(data) -> str:
    """`data` as JSON without whitespace, keys as given (write_json's
    compact form)."""
    import json

    # json.dumps without indent runs in C; json.dump to a file is pure
    # Python, ~3x slower (0.27 s against 0.10 s for a 6 MB partials.json).
    return json.dumps(data, allow_nan=True, default=str, separators=(",", ":"))


def sha256_of(path: PathLike) -> str:
    """The sha256 (hex) of a file's bytes, read a megabyte at a time."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: PathLike):
    import json

    with open(path) as f:
        return json.load(f)
