"""What the operator and the ticket see: pytest-html's hooks (plugin) and the HTML they put in the report
(html), the timeline (gantt), the story (story), the verdict and summary.json (verdict), the run's pytest
state (keys) and the secrets kept out of it all (scrub)."""
