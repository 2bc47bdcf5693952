"""Build manifests: what an image holds (base image version, locked packages, blob digests,
commits, notebook outputs), stored content-addressed, compared, and used to rebuild exactly."""
