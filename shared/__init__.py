"""labimage's controller library: everything the Functions app does lives here."""
