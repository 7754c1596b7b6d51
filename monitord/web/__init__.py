"""The web desk and the JSON API served beside /metrics (issue 8)."""
