"""Partial results: what the analysis needs from one chunk, small, and
merged across chunks without ever holding the records of two of them.

The measuring job calls `chunk_partials(records, band)` on the records it has
just written and saves the result as results/partials/{chunk}.json
(`write_partial`); rule `merge` folds those files one at a time
(`merge_partials`) into results/{prefix}partials.json, from which the
summary, the tables and the laws are computed.  Memory and time of the merge
grow with the number of groups (cells without their seed), not with seeds.

Statistics are moments triples (n, mean, m2), m2 being the sum of squared
deviations from the mean, combined with Chan et al.'s parallel formula
(`combine`): the merged mean and variance equal the whole table's to
rounding.  Quantiles come from sparse log10 histograms (bins of
HIST_BIN = 0.05 decade: {bin: count}, bin = floor(log10(v) / HIST_BIN)).

Every table is {"columns": [...], "rows": [[...], ...]}, rows sorted by key:

- layers:  per CELL_COLUMNS minus seed, layer, param: for each of STATISTICS,
           n, n_finite, mean, m2 (finite values), n_pos, log10_mean,
           log10_m2 (usable values: finite, > 0), n_zero, n_subnormal; and a
           histogram of log10 grad_abs_mean.
- blocks:  per CELL_COLUMNS minus seed and layer of the family's gradient
           profile (core/cell_stats.py): n, n_finite, n_zero and log10
           moments (log10_n, log10_mean, log10_m2) of the layer's profile
           value.  None for a family with one record per layer: its profile
           is every layer's weight,
           the layers table's grad_abs_mean (analysis/partials_frame.py
           derives its rows).
- cells:   per CELL_COLUMNS minus seed: n_cells, the count of each state,
           and moments of every per-cell value of core/cell_stats.py.
- pairs:   per CELL_COLUMNS minus seed and the arm, and the with-arm's
           shortcut_scale and branch_scale: the first layer's gradient with
           over without shortcut, paired by seed (log10 moments of usable
           pairs), counts, the first excluded seeds.
- lines:   the 50 smallest seeds' grad_abs_mean profile per group.
- special: non-finite and all-zero cells per group: count, first 20 seeds,
           how many have an output of exactly 0.
- book:    the records of the book's cell (core.book.BOOK_CASE), both arms.
- outside: per CELL_COLUMNS minus seed, the parameters outside every block
           (layer -1) and the tied ones (records' `tied`): the parameter's
           position among the cell's, name, layer, element count, its
           other names, and where it sits (`side`: before the first
           block's parameters, after the last one's, or between); none
           for a family with one record per layer.  The report lists
           them: they are in no cell state.

The code is in four modules, one concept each, and every name is importable
from here: core/moments.py (the triples and their combination),
core/partial_tables.py (a chunk's records -> its tables),
core/partial_files.py (the files, with their content's sha256, read back
checked) and core/partial_merge.py (the tables of many chunks -> one).

numpy only: this runs inside the measuring job (no pandas, no torch).
"""

from shortcutbench.core.moments import Moments, combine, moments, usable  # noqa: F401
from shortcutbench.core.partial_files import (  # noqa: F401
    VERSION,
    CorruptPartial,
    chunk_tables,
    read_merged,
    read_partial,
    write_partial,
)
from shortcutbench.core.partial_merge import merge_partials  # noqa: F401
from shortcutbench.core.partial_tables import (  # noqa: F401
    BLOCK_KEY,
    CELL_COLUMNS,
    GROUP,
    HIST_BIN,
    LAYER_KEY,
    LINE_COLUMNS,
    LINES,
    OUTSIDE_COLUMNS,
    PAIR_KEY,
    SPECIAL_SEEDS,
    STATISTICS,
    TABLES,
    Partial,
    _blocks,
    _codes,
    block_columns,
    cell_columns,
    chunk_partials,
    empty_tables,
    layer_columns,
    pair_columns,
    special_columns,
)
from shortcutbench.core.store import CorruptChunk  # noqa: F401
