"""The torch-free, pandas-free core: records, sweep, config, files, devices, book,
imports."""
