"""``python -m ntk_lab`` is the ``ntk-lab`` command."""

import sys

from ntk_lab.cli import main

if __name__ == "__main__":
  sys.exit(main())
