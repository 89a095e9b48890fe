"""Orchestration: the ansible-runner wrapper behind `marteau run`, and the Ansible content.

The playbooks, roles, default inventory and `ansible.cfg` live at the top of
the repository and are shipped inside this package (`ansible/`, symlinks in
the source tree, files in a wheel), so `content_dir()` finds them in a
checkout and in an installed Marteau alike.
"""

from __future__ import annotations

from pathlib import Path


def content_dir() -> Path:
    """The directory holding ansible.cfg, inventory/, playbooks/ and roles/."""
    return (Path(__file__).parent / "ansible").resolve()
