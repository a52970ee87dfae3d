"""Image encoders for the IBR renderer."""
