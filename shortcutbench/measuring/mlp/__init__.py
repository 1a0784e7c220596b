"""The book's MLP (ch. 4.4) on the measuring side: its network (`model`),
its side of the measurement contract (`family`), its exact fast path
(`exact`) and its batched engine (`batched`), and its training runs
(`training`, `batched_training`).  Registered by core/families/mlp.py."""
