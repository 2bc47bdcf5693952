"""What the HTTP API does, free of the Functions types so it is testable on its own."""
