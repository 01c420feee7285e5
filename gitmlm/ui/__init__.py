"""ui: `git mlm ui` (a local, read-only web app) and `git mlm report` (the same pages as files).

Reads only through the parts' APIs (tracking, models, data, monitor); nothing imports it but the
command line. The views (*_view.py) return plain data; app.py serves them, report.py writes
them; templates/ and static/ draw them.
"""
