"""Plain helpers shared by the tests (fixtures live in tests/conftest.py): `from helpers.data import write_reviews`.

tests/ is on sys.path (pytest's rootdir conftest), so this package imports as `helpers`; the training subprocesses
of tests/test_resume.py get tests/ on their PYTHONPATH for `helpers.kill_once.KillOnce`."""
