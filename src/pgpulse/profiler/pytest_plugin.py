"""pytest plugin (entry point pytest11): query budgets and N+1 failures."""
