"""Plain helpers shared by the tests (fixtures live in tests/conftest.py): `from helpers.data import write_reviews`.

tests/ is on sys.path (pytest's rootdir conftest), so this package imports as `helpers`. kill_once.py is also
imported on its own, as `kill_once`, by the training subprocesses of tests/test_resume.py."""
