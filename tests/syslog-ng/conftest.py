"""Fixtures for the syslog-ng tests: the integration tests' fixtures, reused as they are.

tests/integration/conftest.py is loaded under its own module name (both files would otherwise
be the module "conftest"), and its fixtures and helpers are re-exported from here, so the
tests of this directory get the same `server` fixture: a logcasterd (normally the ASan+UBSan
build) on ephemeral loopback ports with a private data directory, stopped with SIGTERM at
teardown and checked for a clean exit and a clean sanitizer report.

These tests are not part of `make test`: Debian's syslog-ng-core conflicts with the rsyslog
that suite uses. `make test-syslog-ng` swaps the packages, runs this directory and swaps back.
"""
import importlib.util
import os
import sys

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration",
                     "conftest.py")
_NAME = "logcaster_integration_conftest"
if _NAME in sys.modules:
    _lc = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    _lc = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _lc
    _spec.loader.exec_module(_lc)

# The fixtures (pytest finds them by name in this module) and the helpers the tests use.
server = _lc.server
module_server = _lc.module_server
HOST = _lc.HOST
IO_TIMEOUT = _lc.IO_TIMEOUT
Row = _lc.Row
assert_clean_stderr = _lc.assert_clean_stderr
