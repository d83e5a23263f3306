"""Sweep folder -> report.md, report.csv, comparisons.csv and plots, with their statistics.

Reads results.json (its keys: record/), CSV files and predictions only: imports no torch, nothing of training
or data."""
