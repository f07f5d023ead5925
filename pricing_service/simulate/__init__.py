"""The market simulator: the real engine against a synthetic market on a simulated clock."""
