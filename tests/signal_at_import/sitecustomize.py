"""Test hook (on PYTHONPATH only in tests): signal this process the moment a chosen module starts importing.

SIGNAL_AT_IMPORT=numpy.linalg:SIGINT reproduces, every time, a Ctrl-C that lands in the middle of numpy's import.
"""

import os
import signal
import sys

_target = os.environ.get("SIGNAL_AT_IMPORT")
if _target:
    _module, _, _name = _target.partition(":")

    class _Trigger:
        def find_spec(self, fullname, path=None, target=None):
            global _target
            if _target and fullname == _module:
                _target = None
                os.kill(os.getpid(), getattr(signal, _name))
            return None

    sys.meta_path.insert(0, _Trigger())
