"""Baking on a render farm: `gid bake` (one object's frames A..B of a .blend, headless) and what drives it."""
