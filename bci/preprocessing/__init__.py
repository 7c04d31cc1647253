"""Causal preprocessing: band-pass with carried filter state, common reference, artifact blanking."""

from bci.preprocessing.artifacts import ArtifactBlanker
from bci.preprocessing.filters import BandPass, design_bandpass, trough_delay_samples
from bci.preprocessing.reference import CommonReference

__all__ = [
    "ArtifactBlanker",
    "BandPass",
    "CommonReference",
    "design_bandpass",
    "trough_delay_samples",
]
