"""shortcutbench: what shortcut (residual) connections do to gradients.

Three parts, and the walls between them are tested (tests/test_walls.py):

- `core`: records, the sweep planner, config, files, device names, the
  book's numbers.  Imports neither torch nor pandas: it runs inside Snakemake
  while the DAG is built.
- `measuring`: torch.  The model families and one chunk of cells -> records.
  Never imports the analysis side, pandas, seaborn or Snakemake.
- `analysis`: pandas, seaborn, Jinja2.  The merge, summaries, laws, figures
  and the report.  Never imports torch (~1.7 s of import for nothing).
"""

__version__ = "0.1.0"
