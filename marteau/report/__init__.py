"""Reports: FunkLoad statistics, HTML and charts, summary.json, thresholds, diff and trend."""
