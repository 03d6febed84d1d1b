"""Pacing requests: the rate limit (per process and shared per job), breaker, queue-depth gate."""
