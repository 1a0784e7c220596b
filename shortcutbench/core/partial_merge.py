"""Partial results merged across chunks, one chunk at a time, never
holding the records of two: moments combined exactly (core/moments.py),
counts and histograms summed, the first seeds of a list kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from shortcutbench.core.moments import combine
from shortcutbench.core.partial_files import VERSION
from shortcutbench.core.partial_tables import (
    BLOCK_KEY,
    GROUP,
    LAYER_KEY,
    LINES,
    PAIR_KEY,
    SPECIAL_SEEDS,
    Partial,
    _table,
    empty_tables,
)


def _moment_triples(columns):
    """Column index triples (n, mean, m2) of a table's moments."""
    triples = []
    names = {c: i for i, c in enumerate(columns)}
    for i, c in enumerate(columns):
        if c.endswith("_m2"):
            stem = c[:-3]
            mean = names[stem + "_mean"]
            if stem.endswith("_log10"):  # layers: {s}_n_pos, {s}_log10_mean, {s}_log10_m2
                n = names[stem[:-len("_log10")] + "_n_pos"]
            elif stem in ("log10_ratio",):
                n = names["n_usable"]
            elif f"{stem}_n_finite" in names:  # layers' plain moments
                n = names[f"{stem}_n_finite"]
            else:
                n = names[stem + "_n"]
            triples.append((n, mean, i))
    return triples


class _Merger:
    """One table, folded in a chunk at a time."""

    def __init__(self, name, columns):
        self.name, self.columns = name, list(columns)
        names = self.columns
        if name == "lines":
            self.key = [names.index(c) for c in GROUP]
            self.seed = names.index("seed")
        elif name in ("book", "outside"):
            self.key = list(range(len(names)))
        else:
            key = {"layers": LAYER_KEY, "blocks": BLOCK_KEY, "cells": GROUP,
                   "pairs": PAIR_KEY, "special": GROUP + ["kind"]}[name]
            self.key = [names.index(c) for c in key]
        self.triples = (_moment_triples(names) if name in ("layers", "blocks", "cells", "pairs")
                        else [])
        moment = {i for t in self.triples for i in t}
        self.lists = [i for i, c in enumerate(names) if c in ("seeds", "excluded_seeds")]
        self.hists = [i for i, c in enumerate(names) if c.endswith("_hist")]
        self.flags = [i for i, c in enumerate(names) if c == "output_zero"]
        self.sums = [i for i, c in enumerate(names)
                     if i not in self.key and i not in moment and i not in self.lists
                     and i not in self.hists and i not in self.flags]
        self.rows = {}

    def add(self, table):
        if table["columns"] != self.columns and table["rows"]:
            raise ValueError(f"table {self.name} has columns {table['columns']}, "
                             f"expected {self.columns}")
        for row in table["rows"]:
            key = tuple(row[i] for i in self.key)
            if self.name == "lines":
                self._add_line(key, row)
            elif self.name in ("book", "outside"):
                self.rows[key] = row
            elif key not in self.rows:
                self.rows[key] = list(row)
            else:
                self._fold(self.rows[key], row)

    def _add_line(self, key, row):
        """Keep the LINES smallest seeds of each group."""
        seeds = self.rows.setdefault(key, {})
        seed = row[self.seed]
        if len(seeds) < LINES:
            seeds[seed] = row
        else:
            largest = max(seeds)
            if seed < largest:
                del seeds[largest]
                seeds[seed] = row

    def _fold(self, acc, row):
        for n, mean, m2 in self.triples:
            acc[n], acc[mean], acc[m2] = combine((acc[n], acc[mean], acc[m2]),
                                                 (row[n], row[mean], row[m2]))
        for i in self.sums:
            acc[i] += row[i]
        for i in self.lists:
            acc[i] = sorted(acc[i] + row[i])[:SPECIAL_SEEDS]
        for i in self.hists:
            merged = dict(acc[i])
            for b, c in row[i].items():
                merged[b] = merged.get(b, 0) + c
            acc[i] = merged
        for i in self.flags:
            acc[i] = acc[i] and row[i]

    def table(self):
        if self.name == "lines":
            rows = [row for seeds in self.rows.values() for row in seeds.values()]
        else:
            rows = list(self.rows.values())
        return _table(self.columns, rows)


def merge_partials(partials: Iterable[Partial]) -> Partial:
    """Partial results (dicts, or a generator of them: each is folded in and
    dropped) -> one partial result of the same form, whose statistics are
    those of all the chunks' records together, in any order up to the
    last bit of a float sum: the merge folds them in the chunks' name order
    (analysis/partials_frame.py), so that its bytes never depend on the jobs."""
    mergers = {name: _Merger(name, columns) for name, columns in empty_tables().items()}
    meta = {"version": VERSION, "n_cells": 0, "n_chunks": 0, "band": None}
    for partial in partials:
        meta["n_cells"] += partial.get("n_cells", 0) or 0
        meta["n_chunks"] += 1
        if meta["band"] is None:
            meta["band"] = partial.get("band")
        elif partial.get("band") not in (None, meta["band"]):
            raise ValueError(f"chunks made with different healthy bands: {meta['band']} "
                             f"and {partial.get('band')}")
        for name, merger in mergers.items():
            merger.add(partial[name])
    return {**meta, **{name: merger.table() for name, merger in mergers.items()}}
