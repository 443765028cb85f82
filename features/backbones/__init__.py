"""The backbones: every frozen feature extractor headstart can run, one registry entry each, and how each is built.

`registry.py` is plain Python (names, widths, weights, preprocessing), importable without torch; `network.py` builds
an entry's network with torchvision and checks weights files against it.
"""

from headstart.features.lazy import lazy_names

_PUBLIC = {
    "DEFAULT_BACKBONE": "registry",
    "ENTRIES": "registry",
    "BackboneEntry": "registry",
    "UnknownBackboneError": "registry",
    "backbone_entry": "registry",
    "build_network": "network",
    "weights_cached": "network",
}
__all__ = list(_PUBLIC)

__getattr__ = lazy_names(__name__, _PUBLIC)
