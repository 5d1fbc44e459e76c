"""Generated docs and tests and their checks (`make docs`, `make lint-docs`), and the import-linter contract."""
