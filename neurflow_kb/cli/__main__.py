"""`python -m neurflow_kb.cli` runs the `neurflow-kb` command."""

from . import main

if __name__ == "__main__":
    main()
