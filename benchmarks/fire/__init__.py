"""Scenarios of benchmarks/service_fire.py, one module per kind: load (scenarios), fuzz (fuzzing), batch file."""
