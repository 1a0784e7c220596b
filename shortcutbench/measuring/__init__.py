"""The measuring side (torch): the contract every model family is measured
through, the families, and one chunk of cells -> records.  Never imports
shortcutbench.analysis, pandas, seaborn or Snakemake."""
