"""Which unlabeled images to label next (headstart suggest): the strategies, measured by python -m bench.suggest."""
