"""The run folder: the contract between the load test that writes it and the report that reads it.

File names, the per-request record schema, the run's schedule (steps) and what the generator-health
lines mean. Both apps import this; neither imports the other."""
