"""Let ``python -m harness`` behave exactly like the ``harness`` command."""

from harness.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
