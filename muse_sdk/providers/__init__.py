"""Built-in providers, one module each; none of them knows about the others.

They are found through :mod:`muse_sdk.registry`, never by importing this package's modules by name.
"""
