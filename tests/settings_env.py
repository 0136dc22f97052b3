"""Berth's settings as controlplane/settings.py makes them from a given environment.

settings.py reads the process environment once, at import, in plain
assignments. Running the file afresh under another environment shows a test
exactly what start-up would make of it: the same defaults, the same refusals.
"""

import os
import runpy
from collections.abc import Mapping
from unittest import mock

import controlplane.settings


def berth_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """Every BERTH_* setting made from `environ` (the whole environment); raises ImproperlyConfigured as start-up would."""
    with mock.patch.dict(os.environ, environ, clear=True):
        namespace = runpy.run_path(controlplane.settings.__file__)
    return {name: value for name, value in namespace.items() if name.startswith("BERTH_")}
