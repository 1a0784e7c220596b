"""The book's MLP's own analysis (its section is the config's top level):
every number its report sections print (`tables`), its laws (`laws`), its
overview and profile figures (`overview_figures`, `profile_figure`, from
`merged_tables`), the training runs' figure (`training_figure`) and what
its sections are rendered with (`report`).  Its spec names them
(core/families/mlp.py); nothing shared imports them."""
