"""Features computed online from sorted spikes (and, later, from the LFP)."""

from bci.features.binning import BinningError, SpikeBinner

__all__ = ["BinningError", "SpikeBinner"]
