"""Thin routes: parse, check (service/validation.py), hand over to the batcher, shape the answer."""
