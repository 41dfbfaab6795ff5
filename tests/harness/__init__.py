"""Real throwaway servers (PostgreSQL, Redis, HTTP) and an ansible-playbook runner.

Shared by the pytest fixtures in tests/conftest.py and by the `make demo` sandbox.
"""
