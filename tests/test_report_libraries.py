"""The report's account of families built from libraries (transformers,
timm): how each family's shortcut was removed, a family that swept one
shortcut flag, and the version of every library a measuring job imported;
through the real renderer, on hand-made inputs."""

import importlib.metadata
import json
import math
import re

import pandas as pd
from test_report import FAMILY_FIGURES, PROVENANCE, TINY_SVG, make_gradients, text_of
from test_report import render as mlp_page

from shortcutbench.analysis import families, family_sections, provenance
from shortcutbench.analysis import render as page
from shortcutbench.analysis.mlp import tables
from shortcutbench.core import families as specs
from shortcutbench.core.host import imported_distributions
from shortcutbench.core.records import COLUMNS

SECTION = {"factory": "gpt2_family:build", "depths": [2, 4], "seeds": [0, 1],
           "shortcut": [False, True], "options": {"n_embd": 32},
           "blocks": r"transformer\.h\.(\d+)\.", "mode": "eval"}
# What the family check says of a library model without a `shortcut` argument.
GENERIC = {"means": "generic", "blocks": 12, "adds_per_block": 2,
           "where": ["modeling_gpt2.py:285", "modeling_gpt2.py:310"]}


def user_records(name="mine", depths=(2, 4), seeds=(0, 1), shortcuts=(False, True)):
    """Records of a user family as its measuring job writes them, made up:
    two parameters per block and a head; the gradient fades toward the
    input without shortcut and stays put with it."""
    rows = []
    for depth in depths:
        for shortcut in shortcuts:
            for seed in seeds:
                cell = {"model": name, "depth": depth, "width": 0, "seed": seed,
                        "shortcut": shortcut, "shortcut_scale": 1.0 if shortcut else 0.0,
                        "branch_scale": "1", "activation": "-", "init": "-", "norm": "-",
                        "device": "cpu", "dtype": "float32"}
                for layer in [*range(depth), -1]:
                    g = 0.1 if shortcut or layer < 0 else 0.1 * 0.2 ** (depth - 1 - layer)
                    g *= 1 + seed / 10
                    params = ["head.weight"] if layer < 0 else [
                        f"transformer.h.{layer}.{p}" for p in ("attn.weight", "mlp.weight")]
                    for param in params:
                        rows.append({**cell, "layer": layer, "param": param, "numel": 16,
                                     "grad_abs_mean": g, "grad_l2": 4 * g,
                                     "bias_grad_abs_mean": math.nan, "output_rms": math.nan,
                                     "grad_stream_cos": math.nan, "loss": 1.0,
                                     "output": math.nan, "token_cosine": math.nan,
                                     "finite": True})
    return pd.DataFrame(rows, columns=COLUMNS)


def numbers_of(mlp, user, section=SECTION):
    """results/families.json of the MLP's and a user family's records."""
    numbers = [families.family_numbers(tables.frames_of(mlp), "mlp"),
               families.family_numbers(tables.frames_of(user), "mine", section,
                                       section["seeds"])]
    return json.loads(json.dumps({"band": 2.0, "families": numbers}))


def page_of(numbers, switches=None, prov=PROVENANCE):
    figures = {figure: (TINY_SVG, f"results/figures/family/mine/{figure}.svg")
               for figure in specs.spec("mine").figures}
    return page.render(prov, numbers, {**FAMILY_FIGURES, "mine": figures}, switches=switches)


def words(html):
    """The text of a piece of the page, without the spaces its tags left
    before punctuation."""
    return re.sub(r"\( | (?=[,.)])", lambda m: m.group().strip(), text_of(html)).strip()


def section_text(html, name="mine"):
    return words(html.split(f'<section id="family-{name}">')[1].split("</section>")[0])


def lede(html):
    return words(html.split('<p class="lede">')[1].split("</p>")[0])


# ---------------------------------------------------------------- libraries

def machine_file(logs, chunk, params, packages):
    path = logs / "measure" / f"{chunk}.machine.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"chunk": params, "host": "h1", "os": "Linux", "cpu": "CPU",
                                "python": "3.11.7", "torch": "2.13.0+cpu", "device": "cpu",
                                "torch_threads": 1, "cells": 4, "started": 1.7e9,
                                "seconds": 2.0, "packages": packages}))


def test_the_software_table_names_every_library_a_family_imported(tmp_path):
    logs = tmp_path / "logs"
    core = {"numpy": "2.3.5", "pyarrow": "22.0.0", "torch": "2.13.0+cpu"}
    machine_file(logs, "cells/model~mlp/seeds~0", {"model": "mlp"}, core)
    machine_file(logs, "cells/model~gpt2/seeds~0", {"model": "gpt2"},
                 {**core, "huggingface-hub": "1.2.0", "safetensors": "0.6.2",
                  "tokenizers": "0.22.1", "transformers": "5.23.0"})
    machine_file(logs, "cells/model~vit/seeds~0", {"model": "vit"},
                 {**core, "huggingface_hub": "1.2.0", "timm": "1.0.31",
                  "torchvision": "0.28.0"})
    chunks = ["cells/model~mlp/seeds~0", "cells/model~gpt2/seeds~0", "cells/model~vit/seeds~0"]
    config = {"models": ["mlp", "gpt2", "vit"], "devices": ["cpu"]}
    facts = provenance.gather(config, ["cpu"], chunks, str(logs), str(tmp_path))
    json.dumps(facts)
    imported = {p["name"]: p for p in facts["job_packages"]}
    assert imported["transformers"] == {"name": "transformers", "versions": ["5.23.0"],
                                        "families": ["gpt2"]}
    # one distribution under its two spellings is one library
    assert imported["huggingface-hub"]["families"] == ["gpt2", "vit"]
    assert "huggingface_hub" not in imported
    # beside the pinned core packages, every library, with its version here
    assert list(facts["versions"])[:len(provenance.PACKAGES) + 1] == ["python",
                                                                      *provenance.PACKAGES]
    for name in ("transformers", "timm", "tokenizers", "safetensors", "torchvision",
                 "pyarrow", "huggingface-hub"):
        assert name in facts["versions"]
    assert facts["versions"]["transformers"] == importlib.metadata.version("transformers")
    rows = {r["name"]: r for r in page.software_rows(facts)}
    assert rows["transformers"]["jobs"] == ["5.23.0"] and rows["transformers"]["families"] == [
        "gpt2"]
    assert rows["torch"]["jobs"] == ["2.13.0+cpu"] and rows["torch"]["families"] == []
    assert rows["python"]["jobs"] == ["3.11.7"]
    assert rows["snakemake"]["jobs"] == []  # no job imported it
    text = words(page_of(numbers_of(make_gradients(), user_records()), prov=facts))
    software = text.split("Software")[1].split("Jobs")[0]
    assert "timm 1.0.31 1.0.31 (imported by vit only)" in software
    assert "huggingface-hub" in software and "(imported by gpt2, vit only)" in software


def test_a_job_names_the_distributions_of_the_modules_it_imported():
    found = imported_distributions({"yaml": 1, "torch.nn": 1, "json": 1, "os.path": 1,
                                    "my_own_module": 1, "__main__": 1})
    assert found == {"PyYAML": importlib.metadata.version("PyYAML"),
                     "torch": importlib.metadata.version("torch")}


def test_a_measuring_job_writes_the_libraries_it_imported(tmp_path):
    from test_partials import CHUNK

    from shortcutbench.measuring.measure import run_chunk

    run_chunk(CHUNK.params(), tmp_path / "chunk.parquet", tmp_path / "machine.json",
              progress=None)
    packages = json.loads((tmp_path / "machine.json").read_text())["packages"]
    for name in ("torch", "pyarrow", "numpy"):
        assert packages[name] == importlib.metadata.version(name)
    assert not {"json", "os", "sys"} & set(packages)


# ---------------------------------------------------------------- one flag

def test_one_shortcut_flag_says_why_there_is_no_ratio():
    section = {**SECTION, "shortcut": [True]}
    numbers = numbers_of(make_gradients(), user_records(shortcuts=(True,)), section)
    html = page_of(numbers)
    text = section_text(html)
    assert ("No with \u00f7 without ratio: only with its shortcut was measured "
            "(families.mine.shortcut: [true]).") in text
    assert "with shortcut only" in text
    # the section's table drops the ratio's columns it cannot fill
    table = html.split('<section id="family-mine">')[1].split("</table>")[0]
    assert "with &divide; without" not in table
    headline = words(html.split('<section id="headline">')[1].split("</section>")[0])
    assert "none: with shortcut only" in headline
    assert ("No with \u00f7 without ratio for Your family \u201cmine\u201d: only with its "
            "shortcut was measured (families.mine.shortcut: [true]).") in headline
    # the introduction follows what was swept
    assert lede(html).endswith("with and without the shortcut (with it only: Your family "
                         "\u201cmine\u201d).")


def test_the_introduction_follows_the_flags_every_family_swept():
    without = page_of(numbers_of(make_gradients(shortcuts=(False,)),
                                 user_records(shortcuts=(False,)),
                                 {**SECTION, "shortcut": [False]}))
    assert lede(without).endswith("weight, without the shortcut only.")
    assert "only without its shortcut was measured (families.mine.shortcut: [false])" in \
        section_text(without)
    both = page_of(numbers_of(make_gradients(), user_records()))
    assert lede(both).endswith(
        "weight, with and without the shortcut.")
    assert "No with \u00f7 without ratio" not in text_of(both)


# ---------------------------------------------------------------- the switch

def test_a_library_familys_section_says_the_generic_switch_removed_its_adds():
    html = page_of(numbers_of(make_gradients(), user_records()), {"mine": GENERIC})
    text = section_text(html)
    assert ("How the shortcut is removed. By the generic switch: 2 residual adds per block "
            "(in each of the 12 blocks its check traced), at modeling_gpt2.py:285, "
            "modeling_gpt2.py:310.") in text
    assert "by tracing which operands of an add share the block\u2019s input" in text
    assert "\u03bb\u00b7skip + \u03b1\u00b7branch" in text
    # the factory is called without a shortcut argument, which it does not take
    assert 'gpt2_family:build(depth=depth, n_embd=32)' in text
    assert "<code>modeling_gpt2.py:285</code>" in html


def test_a_factory_that_takes_shortcut_is_said_to_use_its_own():
    own = {"means": "own"}
    text = section_text(page_of(numbers_of(make_gradients(), user_records()), {"mine": own}))
    assert "By its factory\u2019s own shortcut argument." in text
    assert "generic switch" not in text
    assert "gpt2_family:build(depth=depth, shortcut=shortcut, n_embd=32)" in text
    # with shortcut_scales or branch_scales, the generic switch scales its adds
    scaled = {"means": "own", "blocks": 2, "adds_per_block": 1, "where": ["highway.py:21"]}
    text = section_text(page_of(numbers_of(make_gradients(), user_records()), {"mine": scaled}))
    assert ("By its factory\u2019s own shortcut argument; its shortcut_scales and branch_scales "
            "by the generic switch: 1 residual add per block (in each of the 2 blocks its check "
            "traced), at highway.py:21.") in text


def test_a_check_that_did_not_say_leaves_the_switch_out():
    """An older kept check has no `switch`: no sentence, nothing guessed."""
    text = section_text(page_of(numbers_of(make_gradients(), user_records())))
    assert "How the shortcut is removed" not in text
    assert family_sections.switch_words("mine") is None


def test_the_shipped_families_describe_their_own_switch_in_their_specs():
    for name in specs.SHIPPED:
        said = family_sections.switch_words(name, GENERIC)  # a check's word never overrides a spec
        assert said["means"] == "its own shortcut argument" and not said["generic"]
        assert "residual add" in said["adds"] and "shortcutbench/measuring/" in said["adds"]
    assert "two residual adds per block" in specs.spec("gpt").switch
    assert specs.spec("mine").switch == ""  # a user family's comes from its check
    mlp = words(mlp_page(make_gradients())).split("The book\u2019s MLP at depth")[1]
    assert "By its own shortcut argument: one residual add per layer" in mlp
