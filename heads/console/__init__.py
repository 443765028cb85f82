"""What the CLI shows: the Reporter (the one place that prints) and the rich tables of each command's result."""
