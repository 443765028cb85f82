"""The benchmark: `python -m bench` prints figures and ratios measured in one run, and writes them as JSON."""
