"""The engine: repositories, sessions, change sets, the commit protocol and history.

Each module has one job; the public names are re-exported by `vrepo` itself.
"""
