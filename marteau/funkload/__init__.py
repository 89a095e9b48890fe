"""The FunkLoad test API on Python 3, and the `marteau test` / `marteau bench` commands."""
