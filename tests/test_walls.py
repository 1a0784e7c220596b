"""The walls between the package's three parts, found by walking the folders:

- core imports neither torch nor pandas (it runs where Snakemake builds the DAG);
- measuring never loads pandas, seaborn, matplotlib, Snakemake or the analysis side,
  not even while it measures a chunk (pyarrow would import pandas as it writes one);
- analysis never loads torch (it would pay ~1.7 s of import for nothing);
- the laws never load scipy.stats (~0.4 s of import, a quarter of their job);
- a shipped family's name appears in its own modules only (those its spec
  declares, and folders named after it): shared code asks the spec.
"""

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import shortcutbench
from shortcutbench.core import families


def modules_of(part):
    """The part's modules, those of its subpackages too (a family's own)."""
    package = f"shortcutbench.{part}"
    path = [str(REPO / "shortcutbench" / part)]
    return [package] + [m.name for m in pkgutil.walk_packages(path, prefix=f"{package}.")]


def python(code, *args):
    """The stdout of `code` run in a fresh interpreter (nothing loaded yet)."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded_after_import(module):
    return set(python(f"import sys, {module}; print(' '.join(sorted(sys.modules)))").split())


def top_level(names):
    return {name.split(".")[0] for name in names}


def test_every_module_belongs_to_one_part():
    top = [m.name for m in pkgutil.iter_modules(shortcutbench.__path__)]
    assert sorted(top) == ["analysis", "core", "measuring"]
    assert len(modules_of("core")) > 5 and len(modules_of("analysis")) > 5


@pytest.mark.parametrize("module", modules_of("core"))
def test_core_loads_neither_torch_nor_pandas(module):
    assert not top_level(loaded_after_import(module)) & {"torch", "pandas", "seaborn"}


@pytest.mark.parametrize("module", modules_of("measuring"))
def test_measuring_side_loads_no_analysis(module):
    loaded = loaded_after_import(module)
    assert not top_level(loaded) & {"pandas", "seaborn", "matplotlib", "snakemake"}
    assert not {name for name in loaded if name.startswith("shortcutbench.analysis")}


@pytest.mark.parametrize("module", modules_of("analysis"))
def test_analysis_side_never_loads_torch(module):
    loaded = loaded_after_import(module)
    assert "torch" not in top_level(loaded)
    assert not {name for name in loaded if name.startswith("shortcutbench.measuring")}


def imported_names(module):
    """Top-level packages a module's source imports anywhere, lazily inside a
    function included: the walls hold for the code, not only at import time."""
    import importlib.util
    import re
    from pathlib import Path

    source = Path(importlib.util.find_spec(module).origin).read_text()
    return set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", source, re.M))


@pytest.mark.parametrize("module", modules_of("core"))
def test_core_source_never_imports_torch_or_pandas(module):
    assert not imported_names(module) & {"torch", "pandas", "seaborn", "matplotlib"}


@pytest.mark.parametrize("module", modules_of("analysis"))
def test_analysis_source_never_imports_torch(module):
    assert "torch" not in imported_names(module)


def test_the_laws_do_not_load_scipy_stats():
    assert "scipy.stats" not in loaded_after_import("shortcutbench.analysis.mlp.laws")


MEASURE_A_CHUNK = """
import sys
from shortcutbench.core.sweep import Chunk
from shortcutbench.measuring.measure import run_chunk

options = {"activation": "gelu_tanh", "width": 3, "shortcut_scales": (1.0,),
           "inits": ("pytorch",), "branch_scales": ("1",)}
chunk = Chunk("mlp", "", "cpu", "float32", (122, 123), (1, 5), (False, True), ("none",), options)
out = sys.argv[1]
run_chunk(chunk.params(), out + "/chunk.parquet", out + "/machine.json", progress=None,
          partial_path=out + "/chunk.json")
print(" ".join(sorted(sys.modules)))
"""


def test_measuring_a_chunk_loads_no_pandas(tmp_path):
    """The job, not only its imports: writing the Parquet chunk must not
    pull pandas in through pyarrow (~0.26 s per measuring job)."""
    loaded = set(python(MEASURE_A_CHUNK, tmp_path).split())
    assert (tmp_path / "chunk.parquet").exists() and (tmp_path / "chunk.json").exists()
    assert "torch" in loaded
    assert not top_level(loaded) & {"pandas", "seaborn", "matplotlib", "snakemake"}


WRITE_THEN_PANDAS = """
import sys
from shortcutbench.core.records import COLUMNS
from shortcutbench.core.store import COLUMN_TYPES, read_records, write_records

path = sys.argv[1]
write_records([{c: COLUMN_TYPES[c]() for c in COLUMNS}] * 2, path)
import pandas as pd
import pyarrow as pa

frame = pd.read_parquet(path)
print(frame.equals(read_records(path).to_pandas()), list(frame.columns) == COLUMNS, len(frame))
print(pa.array(pd.Series(pd.Categorical(["a", "b"]))).type)
"""


def test_the_store_leaves_pyarrow_and_pandas_as_they_were(tmp_path):
    """Only the measuring job keeps pandas out (measure.write_chunk): a
    process that writes a chunk with the store, then uses pandas, gets
    pyarrow's full pandas support (a categorical Series stays a dictionary)."""
    out = python(WRITE_THEN_PANDAS, tmp_path / "chunk.parquet").splitlines()
    assert out[0] == "True True 2" and out[1].startswith("dictionary<")


BLOCK = """
import sys
import xml  # loaded before the block
from shortcutbench.core.imports import blocked_imports

with blocked_imports("colorsys", "xml"):
    try:
        import colorsys
    except ModuleNotFoundError:
        print("blocked colorsys")
    import xml.dom  # its package was loaded before the block: not refused
    print("xml.dom", "xml.dom" in sys.modules)
import colorsys
print("after", "colorsys" in sys.modules)
"""


def test_a_blocked_import_fails_inside_the_block_only():
    assert python(BLOCK).splitlines() == ["blocked colorsys", "xml.dom True", "after True"]


# ------------------------------------------------------------ family names

# Where the code is: what the names may not be in outside a family's own files.
CODE = ["shortcutbench", "scripts", "workflow", "Snakefile"]
# What is the config's or the docs' (they may name any family): the config's
# schema, the captions of Snakemake's report, and READMEs.
NOT_CODE = ["workflow/schemas/", "workflow/report/", "README.md"]


def module_file(where):
    """The file of a spec's "module:name" or "module"."""
    return str(Path(*where.split(":")[0].split(".")).with_suffix(".py"))


def own_files(found):
    """A shipped family's own files: its module here, the modules and files
    its spec names, and whatever sits in a folder named after it."""
    named = [found.measuring, found.analysis_hook, found.findings, found.sections,
             found.planning, *found.own_modules]
    return ({f"shortcutbench/core/families/{found.name}.py", found.rules,
             found.template and f"shortcutbench/analysis/templates/{found.template}"}
            | {module_file(where) for where in named if where}) - {None}


def owners(path):
    return {name for name, found in families.SPECS.items()
            if path in own_files(found) or f"/{name}/" in f"/{path}"}


def code_files():
    for top in CODE:
        paths = [REPO / top] if (REPO / top).is_file() else sorted((REPO / top).rglob("*"))
        for path in paths:
            relative = path.relative_to(REPO).as_posix()
            if path.is_file() and path.suffix not in (".pyc",) and \
                    not any(relative.startswith(n) or relative.endswith(n) for n in NOT_CODE):
                yield relative


def naming(names):
    """A pattern that finds any of `names` where strangers() looks for them."""
    return re.compile(rf"(?<![A-Za-z])(?i:{'|'.join(names)})(?![a-z0-9])")


def test_the_check_finds_a_name_inside_longer_names():
    pattern = naming(["mlp", "gpt", "resnet"])
    for line in ("from x.mlp_exact import y", "MLPFamily()", "tests/test_gpt.py",
                 "He et al.'s ResNet", "_resnet", "GPT's blocks"):
        assert pattern.search(line), line
    for line in ("transformers' gpt2", "timm's resnet18", "multilayer", "chatgpt"):
        assert not pattern.search(line), line


def strangers(path):
    """Each line of a file that names a shipped family it does not belong to,
    also inside a longer name (mlp_exact, MLPFamily, test_gpt.py), in any
    case; a name that goes on with letters or digits is another word (a
    library's gpt2 or resnet18)."""
    others = [name for name in families.SHIPPED if name not in owners(path)]
    pattern = naming(others)
    text = (REPO / path).read_text(errors="replace")
    return [f"{path}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
            if pattern.search(line)]


def test_a_familys_name_is_in_its_own_files_only():
    found = [line for path in code_files() for line in strangers(path)]
    assert not found, "a family named outside its own files:\n" + "\n".join(found)


def test_every_shipped_family_owns_its_declared_files():
    for found in families.SPECS.values():
        missing = [path for path in own_files(found) if not (REPO / path).is_file()]
        assert not missing, f"{found.name}'s spec names files that are not there: {missing}"


