"""The package's version, in one place: pyproject.toml reads it (``[tool.setuptools.dynamic]``) and
``ntk_lab.__version__`` re-exports it, so the installed metadata and the module never disagree."""

__version__ = "0.1.0"
