"""The lowest layer: errors, names, sizes, paths, file safety, keypoint definitions, threads and signals.

Imports nothing of the package (the layer rule, ``tests/test_layers.py``); everything else may import it.
"""
