"""The analysis side (pandas, seaborn, Jinja2): the merged partial results,
every family's numbers, the findings, figures and the report.  Never imports
torch, nor a user's own family."""
