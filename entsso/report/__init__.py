"""What the operator and the ticket see: the pytest-html hooks and the HTML (plugin), the timeline (gantt),
the story and the verdict (story)."""
