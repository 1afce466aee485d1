"""What the user sees: the ImFit sidebar panels, the menus and status bar, the add-on preferences."""

from . import menus, panel, pref

__all__ = ["menus", "panel", "pref"]
