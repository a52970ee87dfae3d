"""Training entry points (`gid train <kind>`) and what all trainers share (checkpoints, LR, progress, DDP)."""
