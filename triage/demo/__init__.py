"""The demo: embedded broker, a worker, a synthetic week, simulated responders."""
