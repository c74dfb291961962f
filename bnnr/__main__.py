"""``python -m bnnr``: the same command line as ``bnnr``."""

from bnnr_core.cli import main

if __name__ == "__main__":
    main()
