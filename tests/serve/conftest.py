"""The server tests' fixtures (``trained_project`` and ``served``) live in
``tests/conftest.py``: the control tests drive a live server too."""
