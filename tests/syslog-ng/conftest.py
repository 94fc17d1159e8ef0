"""Fixtures for the syslog-ng tests: the integration tests' fixtures, reused as they are.

tests/integration/conftest.py is loaded under its own module name (both files would otherwise
be the module "conftest"), and its fixtures and helpers are re-exported from here, so the
tests of this directory get the same `server` fixture: a logcasterd (normally the ASan+UBSan
build) on ephemeral loopback ports with a private data directory, stopped with SIGTERM at
teardown and checked for a clean exit and a clean sanitizer report.

`make test` runs this directory too, where syslog-ng is the machine's log daemon (Debian's
syslog-ng-core and rsyslog conflict; the tests skip in one line elsewhere). `make
test-syslog-ng` installs it when missing, runs this directory and swaps back.
"""
import importlib.util
import os
import sys

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration")


def _load(name, filename):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(_DIR, filename))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_lc = _load("logcaster_integration_conftest", "conftest.py")
# Which system log daemon the machine has, for the skip reason.
logdaemon = _load("logdaemon", "logdaemon.py")

# The fixtures (pytest finds them by name in this module) and the helpers the tests use.
server = _lc.server
module_server = _lc.module_server
HOST = _lc.HOST
IO_TIMEOUT = _lc.IO_TIMEOUT
Row = _lc.Row
assert_clean_stderr = _lc.assert_clean_stderr
