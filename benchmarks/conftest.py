"""The benchmark suites run with kbench's pytest plugin (see kbench/pytest_plugin.py)."""

pytest_plugins = ["kbench.pytest_plugin"]
