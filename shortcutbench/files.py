"""Small file helpers shared by every stage (no torch, no pandas)."""

import contextlib
import os
import sys
import tempfile
import traceback


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Open a temporary file beside `path`; move it over `path` only if the
    block finishes.  A crash or kill never leaves a half-written `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path) + "-")
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
