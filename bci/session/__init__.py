"""Sessions: recording, loading recordings into neo, run folders."""

from bci.session.load import load
