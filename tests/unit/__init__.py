"""Unit tests of the pure core: lists in, lists out."""
