"""Side-by-side benchmarks of every before/after claim pgpulse makes."""
