"""Training integrations: the verl-backed RL trainer and SFT trajectory export."""
