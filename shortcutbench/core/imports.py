"""Keeping a library's optional imports out of a job that never needs them.

Some libraries import an optional dependency only to look whether it is
there: pyarrow imports pandas (~0.26 s) while it builds a table from Python
lists, to check whether they are pandas objects.  `blocked_imports` makes
such an import fail for the length of a block, as if the dependency were
not installed, and the library goes on without it.
"""

import contextlib
import sys
from collections.abc import Iterator


class _Refuse:
    """A sys.meta_path finder that refuses `names` and their submodules."""

    def __init__(self, names):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == name or fullname.startswith(name + ".") for name in self.names):
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked here)",
                                      name=fullname)
        return None  # not ours: the next finder looks


@contextlib.contextmanager
def blocked_imports(*names: str) -> Iterator[None]:
    """Within the block, importing any of `names` (or a submodule) that is
    not loaded yet raises ModuleNotFoundError; after it, they import as
    usual.  A finder, not None in sys.modules: Cython code (pyarrow's)
    takes None found in sys.modules for the module itself.  The finder is
    the process's: another thread importing a blocked name meanwhile is
    refused too, so block only around work no other thread imports for."""
    refuse = _Refuse([name for name in names if name not in sys.modules])
    sys.meta_path.insert(0, refuse)
    try:
        yield
    finally:
        sys.meta_path.remove(refuse)
