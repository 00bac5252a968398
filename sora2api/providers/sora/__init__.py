"""The Sora provider: its token lifecycle (account.py, refresh.py, probe.py)."""
