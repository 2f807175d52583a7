"""Progressive delivery: the canary state machine (pure) and the analysis that judges each step."""
