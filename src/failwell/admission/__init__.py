"""Admission control at the edge: rate limits (GCRA, in-process or shared through Redis) and
concurrency limits with a short priority queue and shedding."""
