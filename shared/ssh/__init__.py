"""The controller's SSH layer: keys, quoting, a runner with a pinned host key, detached jobs."""
