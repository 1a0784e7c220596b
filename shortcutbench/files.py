"""Small file helpers shared by every stage (no torch, no pandas)."""

import contextlib
import os
import re
import sys
import tempfile
import traceback


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
def atomic_write(path, mode="w", **open_kwargs):
    """Open a temporary file beside `path`; move it over `path` only if the
    block finishes.  A crash or kill never leaves a half-written `path`, and
    the temporary file a kill leaves is removed by the next write of `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    prefix = ".tmp-" + os.path.basename(path) + "-"
    _remove_stale_temporaries(directory, prefix)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def job_log(path):
    """Send a Snakemake job's stderr to its log file, ending with the
    traceback if it fails, so `logs/` says what went wrong."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as log:
        saved, sys.stderr = sys.stderr, log
        try:
            yield log
        except BaseException:
            traceback.print_exc(file=log)
            log.flush()
            sys.stderr = saved
            # A one-line summary where the person running snakemake sees it.
            exc = sys.exc_info()[1]
            print(f"error: {type(exc).__name__}: {exc} (full traceback in {path})",
                  file=sys.stderr)
            raise
        finally:
            sys.stderr = saved
