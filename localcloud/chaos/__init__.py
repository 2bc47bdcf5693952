"""Faults from outside the controller and the chaos run that counts what they cost."""
