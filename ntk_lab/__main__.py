"""``python -m ntk_lab`` is the ``ntk-lab`` command."""

import sys

if __name__ == "__main__":
  try:
    from ntk_lab.cli import main
  except KeyboardInterrupt:  # Ctrl-C while JAX is still importing
    print("ntk-lab: error: interrupted.", file=sys.stderr)
    sys.exit(130)
  sys.exit(main())
