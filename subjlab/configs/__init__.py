"""Packaged study configurations (`demo.toml`, `paper.toml`), read by `subjlab demo` and `subjlab run`.

A package (not a bare folder) so the TOML files ship inside wheels as package data.
"""
