"""The test suite.

pytest imports this package before any conftest or test module, so this is where
the test process takes the template's Powertools settings, as Lambda gives them to
every function. The domain counts with Powertools' shared Metrics outside any
handler (the worker's handler flushes them in Lambda); in a long test nothing
flushes, Powertools flushes by itself at 100 values, and without the template's
namespace it refuses to. The benchmarks import tests.support, so they run with the
same settings, as the functions do in Lambda.
"""

import os

from devstack.template import load_template

_GLOBALS = load_template()["Globals"]["Function"]["Environment"]["Variables"]
for _name, _value in _GLOBALS.items():
    if _name.startswith("POWERTOOLS_") and isinstance(_value, str):
        os.environ.setdefault(_name, _value)
