"""Build state: the record, its transitions, and where it is kept."""
