"""The Faust shell around the pure core. The only package that imports ``faust``."""
