"""Robustness: attack a trained run (``attacks/``) and summarise what the attacks achieved (``metrics``).

``caveat attack`` (``run.attack_run``) is the entry point; docs/attacks.md lists the attacks,
their constraints and the metric keys.
"""
