"""Lambda entry points. Each module exposes `handler`; logic lives in the domain modules."""
