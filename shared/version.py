"""labimage's own version (pyproject.toml's, which a test keeps equal): the Functions app is
deployed as files, not installed, so package metadata cannot tell it."""

LABIMAGE_VERSION = "0.1.0"
