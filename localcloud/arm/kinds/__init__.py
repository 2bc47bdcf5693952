"""One module per family of resource types; `registry()` maps a type name to its kind."""
