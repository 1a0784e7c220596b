"""The measuring side (torch): model families and one chunk of cells -> records.
Never imports shortcutbench.analysis, pandas, seaborn or Snakemake."""
