"""Confinement of user-supplied paths (datasets, models, artifacts) to a configured root folder."""

from __future__ import annotations

from pathlib import Path


class PathConfinementError(ValueError):
    """A user-supplied path would leave its configured root folder."""

    def __init__(self, path: str | Path, root: Path, what: str, reason: str, kind: str = "outside") -> None:
        self.path = str(path)
        self.root = root
        self.what = what
        self.kind = kind  # "empty", "absolute", "dotdot" or "symlink": what went wrong, without the server's paths
        super().__init__(f"{what} path {self.path!r} is not allowed: {reason} (root: {root})")


def confine(path: str | Path, root: Path, *, what: str) -> Path:
    """Resolve ``path`` relative to ``root`` (following symlinks) and refuse anything outside it.

    Absolute paths are refused outright; relative ones may not escape ``root`` with ``..`` or through
    a symlink. Returns the resolved path, which need not exist.
    """
    text = str(path)
    if not text or "\x00" in text:
        raise PathConfinementError(path, root, what, "empty path or NUL byte", "empty")
    candidate = Path(text).expanduser() if text.startswith("~") else Path(text)
    if candidate.is_absolute() or text.startswith(("/", "\\")):
        raise PathConfinementError(
            path, root, what, "absolute paths are refused; give a path relative to the root", "absolute"
        )
    real_root = Path(root).expanduser().resolve()
    resolved = (real_root / candidate).resolve()
    if not resolved.is_relative_to(real_root):
        if ".." in candidate.parts:
            reason, kind = "'..' escapes the root", "dotdot"
        else:
            reason, kind = f"it resolves to {resolved}, outside the root (symlink)", "symlink"
        raise PathConfinementError(path, real_root, what, reason, kind)
    return resolved
