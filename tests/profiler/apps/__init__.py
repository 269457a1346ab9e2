"""Apps of the profiler tests' own (not CitizenApp): the shapes real applications have."""
