"""The CLI's side: the Reporter (the one place that prints), shared click options, and each result's tables."""
