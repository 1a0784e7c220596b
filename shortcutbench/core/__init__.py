"""The torch-free, pandas-free core: records, the model families' registry
(families/, one module a family), the sweep planner, config, arms, cell states and
per-cell values, partial results, the store, files, devices, the book's
numbers, imports."""
