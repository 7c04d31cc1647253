"""Spiking decoders: the network description shared by training (torch), export (NIR) and the
numpy runtime, and the decoder classes built on it."""
