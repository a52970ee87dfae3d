"""Rendering (SPEC section 4): softmax splatting, the feature-pyramid IBR network, the splat preview, the API."""
