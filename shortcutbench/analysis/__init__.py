"""The analysis side (pandas, seaborn, Jinja2): merge, summaries, laws,
figures and the report.  Never imports torch."""
