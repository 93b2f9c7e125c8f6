"""Where the provider acts on the world: agent config files, restart commands, Tencent Cloud TSE.

Each backend is small and returns values; the provider turns failures into diagnostics.
"""
