"""``python -m caveat`` (and ``accelerate launch -m caveat``) run the CLI."""

from caveat.cli.app import main

if __name__ == "__main__":
    main()
