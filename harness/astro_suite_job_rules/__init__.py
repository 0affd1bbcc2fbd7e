"""Galaxy job rules of the harness (loaded by Galaxy as the `rules_module` of the dynamic
environment that galaxy_server.job_conf() writes)."""
