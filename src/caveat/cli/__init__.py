"""The command line: ``caveat train | tune | predict | evaluate | demo``."""
