"""Pretrained priors about real photographs (depth), rebuilt in torch from permissively licensed weights."""
