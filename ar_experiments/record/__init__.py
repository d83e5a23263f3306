"""results.json, the record every run leaves: its keys, each with its meaning and unit, defined once. The run
writes it (training/), the report checks and tabulates it (report/). Imports nothing else of the package, and
no torch: the report reads records without it."""
