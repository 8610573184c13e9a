"""``python -m jaxvision ...`` is the same as the ``jaxvision`` command."""

from jaxvision.train.cli import main

if __name__ == "__main__":
  raise SystemExit(main())
