"""The suite's scripts as the package astro_source_extraction (see pyproject.toml): each tool
script runs as `python scripts/<name>.py` or as its console command `astro-<name>`."""
