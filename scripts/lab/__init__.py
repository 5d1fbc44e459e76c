"""The lab: benchmarks, fault injection, soak, cold starts, request counts and costs, and their simulators."""
