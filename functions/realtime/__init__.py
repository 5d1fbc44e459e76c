"""Real-time events and presence: Lambda functions (domain modules + thin handlers)."""
