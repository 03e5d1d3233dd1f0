"""Slide I/O: link files beside the slides (sidecars, CSV) and conversion with wsidicomizer."""
