"""UI code that only runs in an interactive Blender (panels, status bar): check what can be checked headless
against the real bpy RNA: every icon name exists, every operator a panel calls is registered by the add-on,
and the UILayout calls the panels make exist with those keyword arguments."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[1]
UI_FILES = ("panels.py", "preferences.py")


def _calls(name: str):
    tree = ast.parse((ROOT / "blender_addon" / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def test_icons_exist():
    icons = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())
    used = set()
    for name in UI_FILES:
        used |= set(re.findall(r'icon="([A-Z_0-9]+)"', (ROOT / "blender_addon" / name).read_text()))
        used |= set(re.findall(r'"([A-Z_]+)" if', (ROOT / "blender_addon" / name).read_text()))
    assert used and used <= icons, sorted(used - icons)


def test_panel_layout_calls_exist_with_their_keywords():
    funcs = bpy.types.UILayout.bl_rna.functions
    checked = 0
    for name in UI_FILES:
        for call in _calls(name):
            method = call.func.attr
            if method not in ("label", "prop", "operator", "progress", "prop_search", "row", "column", "box",
                              "separator"):
                continue
            params = set(funcs[method].parameters.keys())
            for kw in call.keywords:
                assert kw.arg in params, f"{name}: UILayout.{method}() has no keyword {kw.arg!r}"
            checked += 1
    assert checked > 20


def test_operators_used_by_panels_are_registered_by_the_addon():
    text = "".join((ROOT / "blender_addon" / n).read_text() for n in UI_FILES)
    used = set(re.findall(r'operator\("(gid\.[a-z_]+)"', text))
    defined = set(re.findall(r'bl_idname = "(gid\.[a-z_]+)"', "".join(
        p.read_text() for p in (ROOT / "blender_addon").glob("*.py"))))
    assert used and used <= defined, sorted(used - defined)
