"""Configure liblsl once, before its first use.

liblsl logs every outlet, inlet and resolve at INFO level to stderr, which buries our own messages in a
live session. We lower it to warnings unless the user points ``LSLAPICFG`` at a config of their own.
Importing any ``bci.acquisition`` module runs this first.
"""

from __future__ import annotations

import os

import pylsl

#: liblsl log levels: -2 errors, -1 warnings, 0 info, 1+ debug.
DEFAULT_LOG_LEVEL = -1

if "LSLAPICFG" not in os.environ:
    pylsl.set_config_content(f"[log]\nlevel = {DEFAULT_LOG_LEVEL}\n")
