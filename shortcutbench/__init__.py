"""shortcutbench: what shortcut (residual) connections do to gradients.

Three parts, and the walls between them are tested (tests/test_walls.py):

- `core`: records, the model families' registry, the sweep planner, config,
  cell states, partial results, the store, files, device names, the book's
  numbers.  Imports neither torch nor pandas: it runs inside Snakemake while
  the DAG is built.
- `measuring`: torch.  The contract every model family is measured through,
  the families, and one chunk of cells -> records.  Never imports the
  analysis side, pandas, seaborn or Snakemake.
- `analysis`: pandas, seaborn, Jinja2.  The merged partial results, every
  family's numbers, the findings, figures and the report.  Never imports
  torch (~1.7 s of import for nothing), nor a user's family.
"""

__version__ = "0.1.0"
